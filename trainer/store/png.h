/* trainer/store/png.h — a minimal PNG writer: 8-bit RGB, one IDAT compressed with zlib,
 * written through fsio (temporary name, fsync, rename). Enough for the loss-curve picture
 * of a model card without a new library. */
#ifndef LORAFIT_PNG_H
#define LORAFIT_PNG_H

#include <stddef.h>
#include <stdint.h>

/* rgb holds height rows of width pixels, 3 bytes each, top row first. 0 or -1 with err. */
int png_write_rgb(const char *path, int width, int height, const uint8_t *rgb, char *err,
                  size_t errlen);

#endif
