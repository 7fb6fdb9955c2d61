/* trainer/store/finite.c — the guard that keeps NaN and infinity out of every file lorafit
 * writes (see store.h).
 *
 * Why here, on the encoded bytes: both tensor writers (safetensors_write.c, gguf_write.c)
 * call it on each tensor's bytes just before they reach the file, so every path that writes
 * a tensor (checkpoints, the final adapter, export, merge, GGUF) is covered, also one added
 * later; and what is checked is what lands on disk, so a finite float that overflows its
 * conversion (1e5 as F16, a Q8_0 block whose scale does not fit F16) is caught too. A tensor
 * is read once more than before, which costs far less than producing and writing it. */
#include <stdio.h>
#include <string.h>

#include "trainer/store/store.h"

/* Elements are tested a block at a time with a reduction the compiler vectorizes (a merge
 * writes gigabytes through here); only a block that holds a bad one is searched for it. */
#define CHECK_BLOCK 4096

/* The index of the first of n elements of type T (2, 4 or 8 bytes), `stride` bytes apart,
 * whose bits under mask are all ones (exponent all ones: NaN or infinity); -1 when there is
 * none. *bits gets that element's bits, for naming the value. */
#define FIRST_ALL_ONES(T)                                                                          \
    static int64_t first_all_ones_##T(const uint8_t *p, int64_t n, size_t stride, uint64_t mask,   \
                                      uint64_t *bits) {                                            \
        const T m = (T)mask;                                                                       \
        for (int64_t b = 0; b < n; b += CHECK_BLOCK) {                                             \
            int64_t e = b + CHECK_BLOCK < n ? b + CHECK_BLOCK : n;                                 \
            int hit = 0;                                                                           \
            _Pragma("omp simd reduction(| : hit)") for (int64_t i = b; i < e; i++) {               \
                T v;                                                                               \
                memcpy(&v, p + (size_t)i * stride, sizeof v); /* little-endian host */             \
                hit |= (v & m) == m;                                                               \
            }                                                                                      \
            for (int64_t i = b; hit && i < e; i++) {                                               \
                T v;                                                                               \
                memcpy(&v, p + (size_t)i * stride, sizeof v);                                      \
                if ((v & m) == m) {                                                                \
                    *bits = v;                                                                     \
                    return i;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        return -1;                                                                                 \
    }
FIRST_ALL_ONES(uint16_t)
FIRST_ALL_ONES(uint32_t)
FIRST_ALL_ONES(uint64_t)

int store_check_finite(StoreEncoding enc, const void *data, size_t nbytes, const char *path,
                       const char *tensor, char *err, size_t errlen) {
    static const struct {
        const char *name;
        int size;          /* bytes of an element (a Q8_0 block's f16 scale: 2 of 34) */
        size_t stride;     /* bytes from one element to the next */
        uint64_t exponent; /* its exponent bits */
        uint64_t mantissa; /* its mantissa bits (NaN: some set) */
        uint64_t sign;
    } E[] = {
        [STORE_F64] = {"F64", 8, 8, 0x7ff0000000000000ull, 0x000fffffffffffffull, 1ull << 63},
        [STORE_F32] = {"F32", 4, 4, 0x7f800000u, 0x007fffffu, 1ull << 31},
        [STORE_F16] = {"F16", 2, 2, 0x7c00u, 0x03ffu, 1u << 15},
        [STORE_BF16] = {"BF16", 2, 2, 0x7f80u, 0x007fu, 1u << 15},
        [STORE_Q8_0] = {"Q8_0", 2, GGML_Q8_0_BLOCK_BYTES, 0x7c00u, 0x03ffu, 1u << 15},
    };
    if ((unsigned)enc >= sizeof E / sizeof E[0]) return 0; /* not floating point */
    const uint8_t *p = data;
    int64_t n = (int64_t)(nbytes / E[enc].stride), at = -1;
    uint64_t bits = 0;
    /* Q8_0's stride steps over each block's 32 weights to the scale that starts the next */
    if (E[enc].size == 2)
        at = first_all_ones_uint16_t(p, n, E[enc].stride, E[enc].exponent, &bits);
    else if (E[enc].size == 4)
        at = first_all_ones_uint32_t(p, n, E[enc].stride, E[enc].exponent, &bits);
    else
        at = first_all_ones_uint64_t(p, n, E[enc].stride, E[enc].exponent, &bits);
    if (at < 0) return 0;
    const char *value = bits & E[enc].mantissa ? "NaN" : bits & E[enc].sign ? "-inf" : "inf";
    long long element = enc == STORE_Q8_0 ? (long long)at * GGML_QK8_0 : (long long)at;
    return store_error(
        err, errlen, 0,
        "%s: tensor '%s' holds %s at element %lld%s (as %s); lorafit never writes a value that "
        "is not finite, so nothing was written%s",
        path, tensor, value, element, enc == STORE_Q8_0 ? " (the scale of its Q8_0 block)" : "",
        E[enc].name,
        enc == STORE_F16 && !(bits & E[enc].mantissa)
            ? " (F16 holds at most ±65504: a larger value becomes inf; write bf16 or f32)"
        : enc == STORE_Q8_0 ? " (a Q8_0 block's scale, its largest |value| / 127, must fit F16)"
                            : "");
}
