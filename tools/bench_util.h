/* tools/bench_util.h — the clock and memory readings every benchmark prints. Header-only:
 * each program in tools/ is built on its own. */
#ifndef LORAFIT_BENCH_UTIL_H
#define LORAFIT_BENCH_UTIL_H

#include <sys/resource.h>
#include <time.h>

/* Monotonic seconds. */
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak resident set size of this process so far, in KB (VmHWM). */
static inline long bench_peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

#endif
