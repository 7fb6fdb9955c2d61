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

static int put_chunk(FsioFile *f, const char *type, const uint8_t *data, uint32_t len, char *err,
                     size_t errlen) {
    uint8_t head[8];
    be32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    uint8_t tail[4];
    be32(tail, (uint32_t)crc);
    if (fsio_write(f, head, 8, err, errlen) != 0) return -1;
    if (len && fsio_write(f, data, len, err, errlen) != 0) return -1;
    return fsio_write(f, tail, 4, err, errlen);
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
    FsioFile *f = fsio_create(path, err, errlen);
    int rc = f ? 0 : -1;
    if (rc == 0) rc = fsio_write(f, signature, 8, err, errlen);
    if (rc == 0) rc = put_chunk(f, "IHDR", ihdr, 13, err, errlen);
    if (rc == 0) rc = put_chunk(f, "IDAT", z, (uint32_t)z_len, err, errlen);
    if (rc == 0) rc = put_chunk(f, "IEND", NULL, 0, err, errlen);
    free(z);
    if (!f) return -1;
    if (rc != 0) {
        fsio_abort(f);
        return -1;
    }
    return fsio_commit(f, err, errlen);
}
