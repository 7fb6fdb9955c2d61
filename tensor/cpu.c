/* tensor/cpu.c — does this CPU multiply bf16 natively? (AVX512-BF16 or AMX-BF16)
 *
 * oneDNN has bf16 matmul kernels only for CPUs with AVX512-BF16 (avx512_core_bf16: AMD Zen 4
 * and later, Intel Cooper Lake and later) or AMX-BF16 (Intel Sapphire Rapids and later);
 * elsewhere (AVX2 machines) it reports the bf16 matmul unimplemented, and tensor/ emulates
 * the bf16 products with OpenBLAS sgemm on bf16-rounded inputs instead.
 * An instruction set counts only when the OS saves its register state (XCR0): AVX-512 needs
 * the opmask and ZMM states, AMX the tile config and tile data states, and on Linux a
 * process must also ask for permission to use the tile data (arch_prctl). The answer is
 * cached; LORAFIT_CPU_BF16=0|1 overrides it (tests use this to force either path). */
#include "tensor/tensor.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static bool detect_native_bf16(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(1, 0, a, b, c, d);
    if (!(c & (1u << 27))) return false; /* OSXSAVE: XGETBV usable */
    uint64_t xcr0 = xgetbv0();
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub = a;
    bool avx512_core = (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1);
    bool amx_bf16 = (d >> 22 & 1) && (d >> 24 & 1); /* AMX-BF16 and AMX-TILE */
    bool avx512_bf16 = false;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        avx512_bf16 = a >> 5 & 1;
    }
    /* XCR0 bits 1, 2 (SSE, AVX), 5, 6, 7 (opmask, ZMM_Hi256, Hi16_ZMM); 17, 18 (tiles) */
    bool avx512_state = (xcr0 & 0xe6) == 0xe6;
    bool amx_state = (xcr0 & (3u << 17)) == (3u << 17);
    if (!avx512_core || !avx512_state) return false; /* oneDNN's bf16 kernels need both */
    if (avx512_bf16) return true;
    return amx_bf16 && amx_state &&
           syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#else
static bool detect_native_bf16(void) {
    return false;
}
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static bool detected;

static void detect(void) {
    detected = detect_native_bf16();
}

bool tensor_cpu_has_native_bf16(void) {
    const char *env = getenv("LORAFIT_CPU_BF16");
    if (env && strcmp(env, "0") == 0) return false;
    if (env && strcmp(env, "1") == 0) return true;
    pthread_once(&detect_once, detect);
    return detected;
}
