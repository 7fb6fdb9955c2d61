/* trainer/store/png_write.c — the PNG writer (see png.h).
 *
 * A PNG is the 8-byte signature and chunks (u32 big-endian length, 4-byte type, data,
 * CRC-32 of type + data): IHDR (size, bit depth 8, color type 2 = RGB), IDAT (the zlib
 * stream of the rows, each prefixed by filter byte 0 = none) and IEND. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "trainer/store/fsio.h"
#include "trainer/store/png.h"
#include "trainer/store/store.h"

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends a chunk at *at: length, type, data, CRC-32 of type and data. */
static void put_chunk(uint8_t *out, size_t *at, const char *type, const uint8_t *data,
                      uint32_t len) {
    be32(out + *at, len);
    memcpy(out + *at + 4, type, 4);
    if (len) memcpy(out + *at + 8, data, len);
    be32(out + *at + 8 + len, (uint32_t)crc32(0L, out + *at + 4, len + 4));
    *at += 12 + len;
}

int png_write_rgb(const char *path, int width, int height, const uint8_t *rgb, char *err,
                  size_t errlen) {
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
        return store_error(err, errlen, 0, "%s: picture size %dx%d out of range", path, width,
                           height);
    size_t stride = (size_t)width * 3, raw_len = (stride + 1) * (size_t)height;
    uint8_t *raw = malloc(raw_len);
    uLongf z_len = compressBound((uLong)raw_len);
    uint8_t *z = malloc(z_len);
    if (!raw || !z) {
        free(raw);
        free(z);
        return store_error(err, errlen, 0, "%s: out of memory encoding the picture", path);
    }
    for (int y = 0; y < height; y++) {
        raw[(size_t)y * (stride + 1)] = 0; /* filter: none */
        memcpy(raw + (size_t)y * (stride + 1) + 1, rgb + (size_t)y * stride, stride);
    }
    int zrc = compress2(z, &z_len, raw, (uLong)raw_len, 9);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return store_error(err, errlen, 0, "%s: zlib failed (%d) compressing the picture", path,
                           zrc);
    }
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)width);
    be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;  /* bits per channel */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /* One buffer, one write: a picture is one fault point, not one per chunk. */
    size_t len = 8 + (12 + 13) + (12 + (size_t)z_len) + 12, at = 8;
    uint8_t *png = malloc(len);
    if (!png) {
        free(z);
        return store_error(err, errlen, 0, "%s: out of memory encoding the picture", path);
    }
    memcpy(png, signature, 8);
    put_chunk(png, &at, "IHDR", ihdr, 13);
    put_chunk(png, &at, "IDAT", z, (uint32_t)z_len);
    put_chunk(png, &at, "IEND", NULL, 0);
    free(z);
    int rc = fsio_write_file(path, png, at, err, errlen);
    free(png);
    return rc;
}
