/* tensor/profile.c — where a step's time goes, by op class (make bench's breakdown).
 *
 * Off unless tensor_profile_begin() turned it on; then each op's forward (PROFILE_OP in the
 * op), each tape entry's backward (graph.c, under the class its op was recorded in) and
 * each matrix product (mm_sgemm, mm_gemm) add their wall time to a class. Classes nest:
 * time inside a product counts as products, not as the op around it, so the classes add up
 * to the time spent in ops. Ops run on the main thread; a product called from inside an
 * OpenMP region (attention's per-head blocks) adds its elapsed time divided by the team's
 * size, moved from the enclosing class to products — a share, not an exact split. */
#include "tensor/profile.h"

#include <omp.h>
#include <string.h>
#include <time.h>

/* What the products add up: per thread in g_tally, or shared. */
typedef struct {
    double inner[TENSOR_OP_CLASSES]; /* products inside OpenMP regions, by enclosing class */
    double flops;
    double owned_seconds[TENSOR_OP_CLASSES], owned_flops[TENSOR_OP_CLASSES];
} Counts;

static struct {
    bool on;
    TensorOpClass current;
    double mark; /* when `current` last started counting */
    double seconds[TENSOR_OP_CLASSES];
    TensorOpClass product_owner; /* the class around the running serial product */
    Counts shared;               /* threads beyond TALLIES, one at a time */
} g_prof;

/* Each thread adds its products into a tally of its own, a cache line apart from the
 * others': attention calls a product per block pair from both threads (tens of thousands
 * a SmolLM-135M step), and atomic adds to one shared line made the profiled bf16 step 2-39 ms
 * slower (12 on average over four runs of steps alternating between the two, AMD EPYC Zen 5). */
#define TALLIES 256
static struct { _Alignas(64) Counts counts; /* each tally on lines of its own */ } g_tally[TALLIES];
static int g_tallies; /* handed out so far (atomic) */
static _Thread_local Counts *t_counts;

/* This thread's counts, NULL once all TALLIES are taken (then g_prof.shared, in turn). */
static Counts *my_counts(void) {
    if (!t_counts) {
        int i = __atomic_fetch_add(&g_tallies, 1, __ATOMIC_RELAXED);
        if (i < TALLIES) t_counts = &g_tally[i].counts;
    }
    return t_counts;
}

/* One product's flops and seconds into `to`, owned by `owner`; inner: inside a region, where
 * they also leave the enclosing class. */
static void count(Counts *to, TensorOpClass owner, double flops, double seconds, bool inner) {
    to->flops += flops;
    to->owned_flops[owner] += flops;
    to->owned_seconds[owner] += seconds;
    if (inner) to->inner[g_prof.current] += seconds;
}

static void add_counts(Counts *to, const Counts *from) {
    to->flops += from->flops;
    for (int c = 0; c < TENSOR_OP_CLASSES; c++) {
        to->inner[c] += from->inner[c];
        to->owned_seconds[c] += from->owned_seconds[c];
        to->owned_flops[c] += from->owned_flops[c];
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tensor_profile_begin(void) {
    memset(&g_prof, 0, sizeof g_prof);
    memset(g_tally, 0, sizeof g_tally);
    g_prof.current = TENSOR_OP_OTHER;
    g_prof.mark = now_seconds();
    g_prof.on = true;
}

void tensor_profile_end(TensorProfile *out) {
    if (g_prof.on) g_prof.seconds[g_prof.current] += now_seconds() - g_prof.mark;
    g_prof.on = false;
    Counts sum = g_prof.shared;
    for (int i = 0; i < TALLIES; i++) add_counts(&sum, &g_tally[i].counts);
    memset(out, 0, sizeof *out);
    for (int c = 0; c < TENSOR_OP_CLASSES; c++) {
        out->seconds[c] = g_prof.seconds[c] - sum.inner[c];
        out->seconds[TENSOR_OP_PRODUCTS] += sum.inner[c];
    }
    out->product_flops = sum.flops;
    memcpy(out->product_seconds_in, sum.owned_seconds, sizeof out->product_seconds_in);
    memcpy(out->product_flops_in, sum.owned_flops, sizeof out->product_flops_in);
}

const char *tensor_op_class_name(TensorOpClass c) {
    static const char *const names[TENSOR_OP_CLASSES] = {
        [TENSOR_OP_OTHER] = "outside ops",
        [TENSOR_OP_PRODUCTS] = "matrix products",
        [TENSOR_OP_EMBEDDING] = "embedding",
        [TENSOR_OP_NORM] = "RMSNorm",
        [TENSOR_OP_ROPE] = "RoPE",
        [TENSOR_OP_ATTENTION] = "attention softmax",
        [TENSOR_OP_SWIGLU] = "SwiGLU",
        [TENSOR_OP_RESIDUAL] = "residual add",
        [TENSOR_OP_DROPOUT] = "dropout",
        [TENSOR_OP_LINEAR] = "linear, LoRA element-wise",
        [TENSOR_OP_LOSS] = "lm_head softmax+loss",
        [TENSOR_OP_CONVERSION] = "bf16 conversion",
        [TENSOR_OP_DELTANET] = "DeltaNet element-wise",
    };
    return c >= 0 && c < TENSOR_OP_CLASSES ? names[c] : "?";
}

TensorOpClass profile_current(void) {
    return g_prof.current;
}

ProfileScope profile_enter(TensorOpClass c) {
    ProfileScope s = {false, TENSOR_OP_OTHER};
    if (!g_prof.on || omp_in_parallel()) return s;
    double t = now_seconds();
    g_prof.seconds[g_prof.current] += t - g_prof.mark;
    g_prof.mark = t;
    s = (ProfileScope){true, g_prof.current};
    if (c == TENSOR_OP_PRODUCTS && g_prof.current != TENSOR_OP_PRODUCTS)
        g_prof.product_owner = g_prof.current;
    g_prof.current = c;
    return s;
}

void profile_leave(ProfileScope *s) {
    if (!s->active || !g_prof.on) return;
    double t = now_seconds();
    g_prof.seconds[g_prof.current] += t - g_prof.mark;
    g_prof.mark = t;
    g_prof.current = s->outer;
}

double profile_product_start(void) {
    return g_prof.on ? now_seconds() : 0.0;
}

void profile_product_done(double start, int m, int n, int k) {
    if (!g_prof.on) return;
    double flops = 2.0 * m * n * k;
    /* a team of one thread is not "in parallel" to OpenMP, but its ops ran profile_enter:
     * a product there is inner unless its own PROFILE_OP already counts it */
    bool inner = omp_in_parallel() || (omp_get_level() > 0 && g_prof.current != TENSOR_OP_PRODUCTS);
    /* inside a region: this thread's share of the team's time */
    double seconds = (now_seconds() - start) / (inner ? omp_get_num_threads() : 1);
    TensorOpClass owner =
        g_prof.current == TENSOR_OP_PRODUCTS ? g_prof.product_owner : g_prof.current;
    Counts *my = my_counts();
    if (my) {
        count(my, owner, flops, seconds, inner);
        return;
    }
#pragma omp critical(profile_shared)
    count(&g_prof.shared, owner, flops, seconds, inner);
}
