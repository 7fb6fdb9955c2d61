/* trainer/train/ranks.c — the MPI calls behind ranks.h, and nothing else.
 *
 * Why MPI_Init only under a launcher: MPI_Init without one starts a "singleton" (OpenMPI
 * spawns a helper daemon and a session directory), which a plain `lorafit train` must never
 * do. The launchers all leave their mark in the environment before exec: OpenMPI's mpirun
 * OMPI_COMM_WORLD_SIZE, PMIx launchers (OpenMPI 4+, srun --mpi=pmix) PMIX_RANK, PMI ones
 * (MPICH's hydra, srun --mpi=pmi2) PMI_RANK.
 *
 * Why gather-then-add instead of MPI_Allreduce: MPI may add partial sums in any order (and
 * OpenMPI picks its algorithm by message size and rank count), so floats could come out
 * differently run to run. Here each rank receives one slice of every rank's buffer
 * (MPI_Alltoallv), adds the N pieces in rank order, and the summed slices are gathered back
 * (MPI_Allgatherv): the bytes of a reduce-scatter plus an allgather, as a ring allreduce
 * moves, with an order fixed by the rank numbers alone.
 *
 * Why the stop signals are blocked rather than caught under a launcher: a caught signal runs
 * its handler on whichever thread the kernel picks (an OpenMP worker, an MPI progress
 * thread), possibly after the main thread has looked at the flag; blocked in every thread it
 * simply stays pending, and the main thread's sigpending() at the end of a step sees it for
 * certain. Every rank then decides on the same step. */
#include "trainer/train/ranks.h"

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest piece one MPI call moves: counts are int, and buffers this size keep the receive
 * buffer of ranks_sum_floats bounded however large the LoRA is. */
#define RANKS_BLOCK ((size_t)1 << 26)

/* One rank's part of a vote, as sent: 8-byte fields, so no padding. */
typedef struct VoteWire {
    int64_t status, stop, same, count;
    double value, sums[RANKS_VOTE_SUMS];
} VoteWire;

static bool initialized;
static int my_rank, n_ranks = 1;
static VoteWire *votes; /* (n_ranks) the last vote's parts, in rank order */
/* (n_ranks) of a ranks_sum_floats block: each rank's slice of it (counts, displs), and
 * where each rank's copy of this rank's slice lands in the scratch (recv_*) */
static int *counts, *displs, *recv_counts, *recv_displs;

/* The signals that stop a launched job after a step: SIGINT and SIGTERM as for one process,
 * and SIGUSR1, which OpenMPI's mpirun forwards to every rank at once. */
static void stop_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGUSR1);
}

bool ranks_stop_requested(void) {
    if (!initialized) return false;
    sigset_t pending;
    if (sigpending(&pending) != 0) return false;
    return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1 ||
           sigismember(&pending, SIGUSR1) == 1;
}

static bool launcher_present(void) {
    static const char *const marks[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (getenv(marks[i])) return true;
    return false;
}

int ranks_init(char *err, size_t errlen) {
    if (initialized || !launcher_present()) return 0;
    /* Before MPI starts its threads (and before OpenMP starts any), so that every thread
     * inherits the mask and the signals wait, pending, for ranks_stop_requested(). */
    sigset_t stop;
    stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    int provided = 0;
    /* OpenMP threads compute; only the main thread calls MPI. */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed under the launcher");
        return -1;
    }
    initialized = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    votes = calloc((size_t)n_ranks, sizeof *votes);
    counts = calloc((size_t)n_ranks, sizeof *counts);
    displs = calloc((size_t)n_ranks, sizeof *displs);
    recv_counts = calloc((size_t)n_ranks, sizeof *recv_counts);
    recv_displs = calloc((size_t)n_ranks, sizeof *recv_displs);
    if (!votes || !counts || !displs || !recv_counts || !recv_displs) {
        /* The other ranks are already on their way to the first vote, which this one can no
         * longer join: the job must end here, and MPI_Abort is the only call that ends it. */
        fprintf(stderr, "lorafit: rank %d: out of memory for the tables of %d ranks\n", my_rank,
                n_ranks);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 0;
}

void ranks_finalize(void) {
    if (!initialized) return;
    MPI_Finalize();
    free(votes);
    free(counts);
    free(displs);
    free(recv_counts);
    free(recv_displs);
    votes = NULL, counts = displs = recv_counts = recv_displs = NULL;
    initialized = false;
    my_rank = 0, n_ranks = 1;
}

bool ranks_launched(void) {
    return initialized;
}

int ranks_rank(void) {
    return my_rank;
}

int ranks_size(void) {
    return n_ranks;
}

/* "rank R of N: " before err, as far as it fits. */
static void prefix_rank(char *err, size_t errlen) {
    char head[48];
    int h = snprintf(head, sizeof head, "rank %d of %d: ", my_rank, n_ranks);
    size_t len = strlen(err);
    if (errlen == 0 || (size_t)h >= errlen) return;
    if (len + (size_t)h >= errlen) len = errlen - 1 - (size_t)h;
    memmove(err + h, err, len);
    memcpy(err, head, (size_t)h);
    err[len + (size_t)h] = '\0';
}

void ranks_vote(RankVote *v, char *err, size_t errlen) {
    v->failed_rank = v->status != 0 ? my_rank : -1;
    v->differ = false;
    if (n_ranks == 1) return;
    VoteWire mine = {v->status, v->stop, v->same, v->count, v->value, {0}};
    memcpy(mine.sums, v->sums, sizeof mine.sums);
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, votes, (int)sizeof mine, MPI_BYTE,
                  MPI_COMM_WORLD);
    int n_failed = 0;
    v->status = 0, v->failed_rank = -1, v->stop = false, v->same = votes[0].same;
    v->count = 0, v->value = 0.0;
    memset(v->sums, 0, sizeof v->sums);
    for (int r = 0; r < n_ranks; r++) {
        const VoteWire *w = &votes[r];
        if (w->status != 0 && n_failed++ == 0) v->status = (int)w->status, v->failed_rank = r;
        v->stop = v->stop || w->stop != 0;
        v->differ = v->differ || w->same != votes[0].same;
        v->count += w->count;
        v->value += w->value;
        for (int k = 0; k < RANKS_VOTE_SUMS; k++) v->sums[k] += w->sums[k];
    }
    if (v->failed_rank != my_rank) {
        if (errlen) err[0] = '\0';
    } else if (n_failed < n_ranks) {
        prefix_rank(err, errlen);
    }
}

size_t ranks_sum_scratch(size_t n) {
    size_t block = n < RANKS_BLOCK ? n : RANKS_BLOCK;
    return (size_t)n_ranks * ((block + (size_t)n_ranks - 1) / (size_t)n_ranks) + 1;
}

/* One block of ranks_sum_floats: x (n), n <= RANKS_BLOCK, in n_ranks slices of `slice`
 * elements (the last ones shorter or empty); this rank adds up slice my_rank. */
static void sum_block(float *x, size_t n, float *scratch) {
    size_t slice = (n + (size_t)n_ranks - 1) / (size_t)n_ranks;
    for (int j = 0; j < n_ranks; j++) {
        size_t lo = (size_t)j * slice < n ? (size_t)j * slice : n;
        size_t hi = lo + slice < n ? lo + slice : n;
        counts[j] = (int)(hi - lo);
        displs[j] = (int)lo;
    }
    int mine = counts[my_rank];
    for (int i = 0; i < n_ranks; i++) {
        recv_counts[i] = mine;
        recv_displs[i] = (int)((size_t)i * slice);
    }
    /* scratch (n_ranks, slice): row i is rank i's values of this rank's slice */
    MPI_Alltoallv(x, counts, displs, MPI_FLOAT, scratch, recv_counts, recv_displs, MPI_FLOAT,
                  MPI_COMM_WORLD);
    float *out = x + displs[my_rank];
    for (int k = 0; k < mine; k++) {
        double acc = 0.0;
        for (int i = 0; i < n_ranks; i++) acc += (double)scratch[(size_t)i * slice + (size_t)k];
        out[k] = (float)acc;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT,
                   MPI_COMM_WORLD);
}

void ranks_sum_floats(float *x, size_t n, float *scratch) {
    if (n_ranks == 1) return;
    for (size_t off = 0; off < n; off += RANKS_BLOCK)
        sum_block(x + off, n - off < RANKS_BLOCK ? n - off : RANKS_BLOCK, scratch);
}

void ranks_broadcast(void *buf, size_t bytes) {
    if (n_ranks == 1) return;
    for (size_t off = 0; off < bytes; off += RANKS_BLOCK) {
        size_t len = bytes - off < RANKS_BLOCK ? bytes - off : RANKS_BLOCK;
        MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

void ranks_gather(const void *mine, void *all, size_t bytes) {
    if (n_ranks == 1) {
        memmove(all, mine, bytes);
        return;
    }
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}
