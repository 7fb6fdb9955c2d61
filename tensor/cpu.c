/* tensor/cpu.c — does this CPU multiply bf16 natively (AVX512-BF16 or AMX-BF16), and is that
 * faster than f32?
 *
 * oneDNN has bf16 matmul kernels only for CPUs with AVX512-BF16 (avx512_core_bf16: AMD Zen 4
 * and later, Intel Cooper Lake and later) or AMX-BF16 (Intel Sapphire Rapids and later);
 * elsewhere (AVX2 machines) it reports the bf16 matmul unimplemented, and tensor/ emulates
 * the bf16 products with OpenBLAS sgemm on bf16-rounded inputs instead.
 * An instruction set counts only when the OS saves its register state (XCR0): AVX-512 needs
 * the opmask and ZMM states, AMX the tile config and tile data states, and on Linux a
 * process must also ask for permission to use the tile data (arch_prctl).
 * Faster: AMX-BF16 always; AVX512-BF16 alone only on cores that run VDPBF16PS (32 products)
 * at the rate of two f32 FMAs (AMD Zen 4/5, Intel Cooper Lake). Intel's cores with
 * AVX512-FP16 (Sapphire Rapids and later) run one VDPBF16PS a cycle against two 16-wide
 * FMAs, so without AMX (hidden, e.g. by a hypervisor) bf16 is no faster: seen on an Emerald
 * Rapids VM without AMX, oneDNN 2.6 bf16 matmul 150 GFLOP/s, f32 250, on 2 cores.
 * The answer is cached; LORAFIT_CPU_BF16=0|1|slow overrides it (tests use this to force
 * each path): 0 none, 1 native and faster, slow native but no faster. */
#include "tensor/tensor.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    CPU_BF16_NONE,      /* no native bf16 products: BF16 precision is emulated */
    CPU_BF16_NO_FASTER, /* native, but no faster than f32 */
    CPU_BF16_FASTER
} CpuBf16;

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

static CpuBf16 detect_bf16(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return CPU_BF16_NONE;
    __cpuid_count(1, 0, a, b, c, d);
    if (!(c & (1u << 27))) return CPU_BF16_NONE; /* OSXSAVE: XGETBV usable */
    uint64_t xcr0 = xgetbv0();
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub = a;
    bool avx512_core = (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1);
    bool amx_bf16 = (d >> 22 & 1) && (d >> 24 & 1); /* AMX-BF16 and AMX-TILE */
    bool avx512_fp16 = d >> 23 & 1;
    bool avx512_bf16 = false;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        avx512_bf16 = a >> 5 & 1;
    }
    /* XCR0 bits 1, 2 (SSE, AVX), 5, 6, 7 (opmask, ZMM_Hi256, Hi16_ZMM); 17, 18 (tiles) */
    bool avx512_state = (xcr0 & 0xe6) == 0xe6;
    bool amx_state = (xcr0 & (3u << 17)) == (3u << 17);
    if (!avx512_core || !avx512_state) return CPU_BF16_NONE; /* oneDNN's kernels need both */
    if (amx_bf16 && amx_state &&
        syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
        return CPU_BF16_FASTER;
    if (!avx512_bf16) return CPU_BF16_NONE;
    return avx512_fp16 ? CPU_BF16_NO_FASTER : CPU_BF16_FASTER;
}
#else
static CpuBf16 detect_bf16(void) {
    return CPU_BF16_NONE;
}
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static CpuBf16 detected;

static void detect(void) {
    detected = detect_bf16();
}

static CpuBf16 cpu_bf16(void) {
    const char *env = getenv("LORAFIT_CPU_BF16");
    if (env && strcmp(env, "0") == 0) return CPU_BF16_NONE;
    if (env && strcmp(env, "1") == 0) return CPU_BF16_FASTER;
    if (env && strcmp(env, "slow") == 0) return CPU_BF16_NO_FASTER;
    pthread_once(&detect_once, detect);
    return detected;
}

bool tensor_cpu_has_native_bf16(void) {
    return cpu_bf16() != CPU_BF16_NONE;
}

bool tensor_cpu_bf16_faster(void) {
    return cpu_bf16() == CPU_BF16_FASTER;
}
