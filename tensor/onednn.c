/* tensor/onednn.c — a process-wide cache of oneDNN matmul primitives (see onednn.h).
 *
 * Creating a primitive JITs its kernel (milliseconds), so each distinct product — type,
 * shape, leading dimensions, transposition, alpha, beta — gets one primitive the first
 * time it is asked for, kept until the process ends. A training step asks for the same few
 * dozen shapes every time, so after the first step nothing is created or allocated:
 *   - the primitive runs with a user scratchpad: one buffer per thread, grown to the largest
 *     scratchpad any primitive needs and then kept;
 *   - each entry has one set of memory objects per thread, whose data handles are pointed
 *     at the caller's buffers on each call (oneDNN's CPU memory objects do not copy);
 *   - each thread has its own stream.
 * Thread index = omp_get_thread_num(): tensor/ calls this from the main thread or from the
 * threads of an OpenMP region, never from other threads. A thread index beyond the
 * per-entry sets (more threads than processors) gets temporary memory objects.
 * Lookups and creation hold a mutex; execution does not. */
#include "tensor/onednn.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_THREADS 1024 /* per-thread streams and scratchpads */

typedef struct {
    int type, m, n, k, transb;
    int64_t lda, ldb, ldc;
    float alpha, beta;
} Key;

typedef struct {
    dnnl_memory_t a, b, c, scratch;
} MemorySet;

typedef struct {
    Key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md_a, md_b, md_c, md_scratch;
    size_t scratch_bytes;
    int n_sets;
    MemorySet *sets; /* (n_sets) one per thread, created on first use */
} Entry;

typedef struct {
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_bytes;
} ThreadState;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static bool engine_failed;
static Entry **table; /* open addressing, cap slots */
static size_t cap, used;
static ThreadState threads[MAX_THREADS];

static uint64_t key_hash(const Key *k) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)k;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static dnnl_engine_t get_engine(void) {
    if (!engine && !engine_failed && dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        engine = NULL;
        engine_failed = true;
    }
    return engine;
}

static int grow_table(void) {
    size_t ncap = cap ? cap * 2 : 256;
    Entry **nt = calloc(ncap, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < cap; i++) {
        if (!table[i]) continue;
        size_t j = key_hash(&table[i]->key) & (ncap - 1);
        while (nt[j]) j = (j + 1) & (ncap - 1);
        nt[j] = table[i];
    }
    free(table);
    table = nt;
    cap = ncap;
    return 0;
}

static void md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t row_stride,
                  int64_t col_stride, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

/* oneDNN does not survive running out of address space while it generates a kernel (a
 * SIGSEGV in its JIT, seen under `ulimit -v` at the edge of the memory a step needs), so a
 * primitive is created only if HEADROOM bytes could be mapped just before: otherwise the
 * product fails as out of memory, which the caller reports. One mmap per distinct product. */
#define HEADROOM ((size_t)ONEDNN_HEADROOM_MB << 20)

static bool headroom_left(void) {
    void *p = mmap(NULL, HEADROOM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    munmap(p, HEADROOM);
    return true;
}

/* A primitive for key k, or NULL (unimplemented, or out of memory: *oom). */
static Entry *create_entry(const Key *k, bool *oom) {
    dnnl_engine_t eng = get_engine();
    if (!eng) return NULL;
    if (!headroom_left()) {
        *oom = true;
        return NULL;
    }
    Entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = *k;
    dnnl_data_type_t dt = k->type == ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
    md_2d(&e->md_a, k->m, k->k, k->lda, 1, dt);
    if (k->transb)
        md_2d(&e->md_b, k->k, k->n, 1, k->ldb, dt);
    else
        md_2d(&e->md_b, k->k, k->n, k->ldb, 1, dt);
    md_2d(&e->md_c, k->m, k->n, k->ldc, 1, dnnl_f32);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok =
        dnnl_matmul_desc_init(&desc, &e->md_a, &e->md_b, NULL, &e->md_c) == dnnl_success &&
        dnnl_primitive_attr_create(&attr) == dnnl_success &&
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && k->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
    if (ok && k->beta != 0.0f)
        ok = dnnl_post_ops_create(&post) == dnnl_success &&
             dnnl_post_ops_append_sum(post, k->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL) == dnnl_success;
    if (ok) {
        const dnnl_memory_desc_t *smd =
            dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        e->md_scratch = *smd;
        e->scratch_bytes = dnnl_memory_desc_get_size(smd);
        ok = dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post) dnnl_post_ops_destroy(post);
    if (attr) dnnl_primitive_attr_destroy(attr);
    int procs = omp_get_num_procs(), maxt = omp_get_max_threads();
    e->n_sets = procs > maxt ? procs : maxt;
    e->sets = ok ? calloc((size_t)e->n_sets, sizeof *e->sets) : NULL;
    if (!ok || !e->sets) {
        if (e->prim) dnnl_primitive_destroy(e->prim);
        free(e->sets);
        free(e);
        return NULL;
    }
    return e;
}

static Entry *lookup(const Key *k, bool *oom) {
    pthread_mutex_lock(&lock);
    Entry *found = NULL;
    if (cap) {
        for (size_t j = key_hash(k) & (cap - 1); table[j]; j = (j + 1) & (cap - 1))
            if (memcmp(&table[j]->key, k, sizeof *k) == 0) {
                found = table[j];
                break;
            }
    }
    if (!found && ((used + 1) * 4 <= cap * 3 || grow_table() == 0)) {
        found = create_entry(k, oom);
        if (found) {
            size_t j = key_hash(k) & (cap - 1);
            while (table[j]) j = (j + 1) & (cap - 1);
            table[j] = found;
            used++;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

static int make_set(const Entry *e, MemorySet *s) {
    dnnl_engine_t eng = engine;
    if (dnnl_memory_create(&s->a, &e->md_a, eng, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&s->b, &e->md_b, eng, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&s->c, &e->md_c, eng, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&s->scratch, &e->md_scratch, eng, DNNL_MEMORY_NONE) != dnnl_success)
        return -1;
    return 0;
}

static void free_set(MemorySet *s) {
    if (s->a) dnnl_memory_destroy(s->a);
    if (s->b) dnnl_memory_destroy(s->b);
    if (s->c) dnnl_memory_destroy(s->c);
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    memset(s, 0, sizeof *s);
}

/* This thread's stream and a scratchpad of at least `bytes`. */
static ThreadState *thread_state(int tid, size_t bytes) {
    if (tid < 0 || tid >= MAX_THREADS) return NULL;
    ThreadState *t = &threads[tid];
    if (!t->stream &&
        dnnl_stream_create(&t->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        t->stream = NULL;
        return NULL;
    }
    if (bytes > t->scratch_bytes) {
        size_t rounded = (bytes + 4095) / 4096 * 4096;
        void *p = aligned_alloc(4096, rounded);
        if (!p) return NULL;
        free(t->scratch);
        t->scratch = p;
        t->scratch_bytes = rounded;
    }
    return t;
}

/* The primitive of this product, or NULL with *rc ONEDNN_OUT_OF_MEMORY or -1. */
static Entry *entry_for(OnednnType type, int m, int n, int k, float alpha, int64_t lda, int64_t ldb,
                        bool transb, float beta, int64_t ldc, int *rc) {
    Key key;
    memset(&key, 0, sizeof key); /* padding bytes take part in hash and compare */
    key.type = type, key.m = m, key.n = n, key.k = k, key.transb = transb;
    key.lda = lda, key.ldb = ldb, key.ldc = ldc, key.alpha = alpha, key.beta = beta;
    bool oom = false;
    Entry *e = lookup(&key, &oom);
    if (!e) *rc = oom ? ONEDNN_OUT_OF_MEMORY : -1;
    return e;
}

/* Runs e on the calling thread (oneDNN single-threaded inside a parallel region). */
static int run_on_thread(Entry *e, const void *a, const void *b, float *c) {
    int tid = omp_get_thread_num();
    ThreadState *t = thread_state(tid, e->scratch_bytes);
    if (!t) return -1;
    MemorySet tmp = {0}, *s = tid < e->n_sets ? &e->sets[tid] : &tmp;
    if (!s->a && make_set(e, s) != 0) {
        free_set(s);
        return -1;
    }
    int rc = -1;
    if (dnnl_memory_set_data_handle(s->a, (void *)a) == dnnl_success &&
        dnnl_memory_set_data_handle(s->b, (void *)b) == dnnl_success &&
        dnnl_memory_set_data_handle(s->c, c) == dnnl_success &&
        dnnl_memory_set_data_handle(s->scratch, t->scratch) == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->a},
                                   {DNNL_ARG_WEIGHTS, s->b},
                                   {DNNL_ARG_DST, s->c},
                                   {DNNL_ARG_SCRATCHPAD, s->scratch}};
        if (dnnl_primitive_execute(e->prim, t->stream, 4, args) == dnnl_success &&
            dnnl_stream_wait(t->stream) == dnnl_success)
            rc = 0;
    }
    if (s == &tmp) free_set(&tmp);
    return rc;
}

/* Outside a parallel region the rows of A and C are split into one contiguous band per
 * thread (a multiple of SPLIT_ROWS rows each, the last band what remains), each band a
 * single-threaded product: oneDNN's own split of these shapes over 2 threads waits at its
 * barriers, 5-15% slower (AMD EPYC Zen 5, bf16: 1024 x 576 x 576 0.94 -> 0.78 ms, the
 * lm_head's 1024 x 49152 x 576 88.5 -> 76.7 ms; f32 alike). A row of C got the same bits
 * either way on every shape tried (oneDNN's blocking over K does not depend on M there); the
 * bands depend only on M and the thread count. Both bands' primitives exist before either
 * runs, so a failure leaves C untouched. */
#define SPLIT_ROWS 16

int onednn_gemm(OnednnType type, int m, int n, int k, float alpha, const void *a, int64_t lda,
                const void *b, int64_t ldb, bool transb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return 0;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads(), rc = 0;
    int band = ((m + threads - 1) / threads + SPLIT_ROWS - 1) / SPLIT_ROWS * SPLIT_ROWS;
    if (threads < 2 || band >= m) {
        Entry *e = entry_for(type, m, n, k, alpha, lda, ldb, transb, beta, ldc, &rc);
        return e ? run_on_thread(e, a, b, c) : rc;
    }
    int bands = (m + band - 1) / band, last = m - (bands - 1) * band;
    Entry *full = entry_for(type, band, n, k, alpha, lda, ldb, transb, beta, ldc, &rc);
    Entry *tail =
        full ? entry_for(type, last, n, k, alpha, lda, ldb, transb, beta, ldc, &rc) : NULL;
    if (!tail) return rc;
    size_t elem = type == ONEDNN_BF16 ? sizeof(uint16_t) : sizeof(float);
#pragma omp parallel for num_threads(bands) schedule(static, 1) reduction(min : rc)
    for (int i = 0; i < bands; i++) {
        int r0 = i * band,
            ok = run_on_thread(i < bands - 1 ? full : tail,
                               (const char *)a + (size_t)r0 * lda * elem, b, c + (size_t)r0 * ldc);
        rc = ok < rc ? ok : rc;
    }
    return rc;
}

int onednn_gemm_whole(OnednnType type, int m, int n, int k, const void *a, const void *b,
                      bool transb, float *c) {
    int rc = 0;
    Entry *e = entry_for(type, m, n, k, 1.0f, k, transb ? k : n, transb, 0.0f, n, &rc);
    return e ? run_on_thread(e, a, b, c) : rc;
}

const char *onednn_impl_name(OnednnType type) {
    static char names[2][128];
    static bool probed[2];
    pthread_mutex_lock(&lock);
    if (!probed[type]) {
        probed[type] = true;
        dnnl_engine_t eng = get_engine();
        dnnl_memory_desc_t md_a, md_b, md_c;
        dnnl_data_type_t dt = type == ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
        md_2d(&md_a, 256, 256, 256, 1, dt);
        md_2d(&md_b, 256, 256, 1, 256, dt);
        md_2d(&md_c, 256, 256, 256, 1, dnnl_f32);
        dnnl_matmul_desc_t desc;
        dnnl_primitive_desc_t pd = NULL;
        const char *impl = NULL;
        if (eng && dnnl_matmul_desc_init(&desc, &md_a, &md_b, NULL, &md_c) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL) == dnnl_success &&
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
            impl)
            snprintf(names[type], sizeof names[type], "%s", impl);
        if (pd) dnnl_primitive_desc_destroy(pd);
    }
    pthread_mutex_unlock(&lock);
    return names[type][0] ? names[type] : NULL;
}
