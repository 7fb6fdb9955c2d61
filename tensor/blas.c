/* tensor/blas.c — OpenBLAS's kernels for this CPU: when it does not know the CPU, tell it.
 *
 * Debian's OpenBLAS (0.3.21, built DYNAMIC_ARCH) picks its kernels by CPU model when the
 * library loads, and on a model newer than it knows it falls back to "Prescott", its SSE3
 * kernels. Seen on an Intel Xeon of family 6 model 207 (Emerald Rapids, AVX-512): sgemm
 * 39 GFLOP/s at 1024^3 on 2 cores, 221 with its SkylakeX kernels, which that CPU runs.
 * It also takes every AVX512-BF16 CPU for a Cooper Lake, AMD's Zen 4 among them, and there its
 * Cooperlake build of the SkylakeX sgemm is the slower one: seen on an AMD EPYC of family 25
 * model 17, sgemm 166 GFLOP/s against 184 at 1024^3, and lorafit's f32 step at the SmolLM-135M
 * shape 4.4-4.9 s against 3.7-4.0 s (lorafit never uses OpenBLAS's bf16 routines).
 * OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the one remedy from inside the
 * program is to set it and run the program again: tensor_blas_use_cpu_kernels does that, as
 * the first thing main does, before any thread or file exists.
 *
 * With OMP_PROC_BIND or OMP_PLACES set, libgomp has already bound this (initial) thread to
 * the first place when main starts, and a program run again inherits that one thread's
 * CPUs: seen on 2 cores with OMP_PROC_BIND=close, the second run had OMP_PLACES '{0}' and ran
 * every thread on one core, at half speed (a 64-core machine would run at 1/64). So the
 * CPUs of every place, which libgomp took from the affinity the program was started with,
 * are given back before running again. */
#include "tensor/tensor.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tensor_blas_better_core(const char *core, bool amd, bool avx512, bool avx2_fma) {
    if (!core) return NULL;
    if (strcmp(core, "Cooperlake") == 0) return amd && avx512 ? "SkylakeX" : NULL;
    if (strcmp(core, "Prescott") != 0) return NULL; /* OpenBLAS knew the CPU */
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return NULL;
}

/* This thread's CPUs = those of every OpenMP place (nothing to do without places: then
 * libgomp bound nothing). */
static void unbind_from_first_place(void) {
    int places = omp_get_num_places();
    if (places <= 0) return;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    for (int p = 0; p < places; p++) {
        int n = omp_get_place_num_procs(p);
        if (n <= 0) continue;
        int ids[n];
        omp_get_place_proc_ids(p, ids);
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], &cpus);
    }
    if (CPU_COUNT(&cpus) > 0) sched_setaffinity(0, sizeof cpus, &cpus); /* best effort */
}

const char *tensor_blas_core(void) {
    return openblas_get_corename();
}

void tensor_blas_use_cpu_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice, or already done */
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* what OpenBLAS's SkylakeX and Haswell kernels use; libgcc also checks that the OS
     * saves the AVX and AVX-512 registers */
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512cd");
    bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    bool amd = __builtin_cpu_is("amd");
    const char *core = tensor_blas_core();
    const char *better = tensor_blas_better_core(core, amd, avx512, avx2_fma);
    if (!better || setenv("OPENBLAS_CORETYPE", better, 1) != 0) return;
    unbind_from_first_place();
    execv("/proc/self/exe", argv);
    fprintf(stderr,
            "lorafit: warning: OpenBLAS runs its %s kernels on this CPU, slower than its %s ones, "
            "and running again with OPENBLAS_CORETYPE=%s failed; set it yourself for faster f32 "
            "products\n",
            core, better, better);
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
}
