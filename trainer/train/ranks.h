/* trainer/train/ranks.h — the processes (ranks) of one job started by an MPI launcher.
 *
 * `mpirun -np N lorafit train job.yaml` runs N copies of lorafit; this is everything they
 * say to each other, and the only place lorafit calls MPI, so the rest of the code reads
 * without MPI types. ranks_init() calls MPI_Init only when the environment shows a launcher
 * (OpenMPI's mpirun, or a PMIx / PMI launcher such as `srun --mpi=pmix`): a plain `lorafit train`
 * never initializes MPI, needs no mpirun, and is one rank of one, on which every function below
 * returns at once without exchanging anything.
 *
 * Determinism: a sum over ranks is always taken in rank order 0, 1, ..., N-1 (each rank's
 * part is gathered, then added up locally), never with MPI_Allreduce, whose order MPI leaves
 * open; so the same N gives the same bits run after run.
 *
 * A peer that dies makes the launcher end the job (OpenMPI's mpirun: SIGTERM to the others,
 * then SIGKILL); an MPI error is fatal to the job, as MPI's default handler makes it. */
#ifndef LORAFIT_RANKS_H
#define LORAFIT_RANKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MPI_Init when a launcher's environment is present; a no-op otherwise, and on a second
 * call. 0, or -1 with err when MPI_Init fails (out of memory right after it, when the other
 * ranks are already waiting, ends the whole job with MPI_Abort). */
int ranks_init(char *err, size_t errlen);
/* MPI_Finalize when ranks_init initialized MPI (every rank calls it before it exits, or the
 * launcher takes the exit for a crash). */
void ranks_finalize(void);
bool ranks_launched(void); /* MPI is initialized (even as a job of one rank) */
/* Under a launcher ranks_init blocks SIGINT, SIGTERM and SIGUSR1 in every thread; this says
 * whether one of them is pending (arrived), and is false without a launcher, where the
 * training loop catches SIGINT and SIGTERM itself. */
bool ranks_stop_requested(void);
int ranks_rank(void); /* 0 .. ranks_size() - 1; 0 without a launcher */
int ranks_size(void); /* 1 without a launcher */

#define RANKS_VOTE_SUMS 10 /* the doubles a vote adds up besides `value` */

/* One collective decision of the job. Every rank fills the in-fields and calls ranks_vote at
 * the same point of its run; on return every rank holds the same out-fields. */
typedef struct RankVote {
    int status;      /* in: this rank's, 0 = fine; out: the first nonzero one in rank order */
    int failed_rank; /* out: the rank that status came from (-1 when every rank is fine) */
    bool stop;       /* in: a stop signal reached this rank; out: one reached any rank */
    int64_t same;    /* in: a value every rank should agree on; out: rank 0's */
    bool differ;     /* out: some rank's `same` differs from rank 0's */
    int64_t count;   /* in: this rank's; out: the sum over ranks */
    double value;    /* in: this rank's; out: the sum over ranks, in rank order */
    double sums[RANKS_VOTE_SUMS]; /* in: this rank's; out: each the sum over ranks, in order */
} RankVote;
/* err is this rank's message when its status is nonzero. Afterwards the failed rank keeps
 * it (prefixed "rank R of N: " when some rank did not fail, so the user learns where), and
 * every other rank's err is emptied: the job's error is printed once. Without a launcher
 * nothing is exchanged and v and err stay as they are. */
void ranks_vote(RankVote *v, char *err, size_t errlen);

/* x (n) becomes the sum over ranks of every rank's x, element by element in rank order
 * (accumulated in double, rounded once to float). The work is split: each rank adds up one
 * slice of every rank's buffer, then the slices are gathered. scratch holds
 * ranks_sum_scratch(n) floats (the caller allocates it once, before the first step). */
void ranks_sum_floats(float *x, size_t n, float *scratch);
size_t ranks_sum_scratch(size_t n);
/* Rank 0's `bytes` bytes at buf, to every rank's buf. */
void ranks_broadcast(void *buf, size_t bytes);
/* Every rank's `bytes` bytes at mine, in rank order, to every rank's all (ranks_size() x
 * bytes; bytes < 2^31). */
void ranks_gather(const void *mine, void *all, size_t bytes);

#endif
