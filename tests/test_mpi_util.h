/* tests/test_mpi_util.h — helpers of the MPI tests (test_mpi.c, test_mpi_faults.c): how
 * mpirun is started, the job they train, and bounded waits. */
#ifndef LORAFIT_TEST_MPI_UTIL_H
#define LORAFIT_TEST_MPI_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* How the tests start OpenMPI, in one place: as root (tests run as root in containers),
 * more ranks than cores allowed, no binding (the machine is shared), shared memory only,
 * and no single-copy (CMA) transfers, which containers without ptrace rights refuse. */
#define MPIRUN                                                                                     \
    "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader "              \
    "--mca btl_vader_single_copy_mechanism none"

/* 1 when mpirun is there; else records the skip of `test` (failing it under CI) and
 * returns 0. Under `make asan` it also points LeakSanitizer at the OpenMPI suppressions. */
int have_mpirun(const char *test);
#define NEED_MPIRUN()                                                                              \
    if (!have_mpirun(__func__)) return;

/* The job: stories260K on TinyStories with packing, shuffling, accumulation, a validation
 * set, checkpoints every 2 steps; 2 rows per rank and one thread. DIR/job.yaml; the path
 * (caller frees). */
char *write_job(const char *dir, const char *shared);
/* "exec mpirun ... -np NP lorafit ARGS" (ARGS shell-quoted by the caller). */
void mpi_command(char *cmd, size_t len, int np, const char *args);
/* Runs the shell command in the foreground, output to DIR/NAME; its exit code. */
int run_logged(const char *dir, const char *cmd, const char *name);
/* `mpirun -np NP lorafit ARGS`, output in DIR/log.txt; fails the test unless it exits
 * want_rc. */
void mpi_expect(const char *dir, int np, const char *args, int want_rc);
/* sh -c CMD in the background, output to log_path; the shell execs, so the pid is the
 * command's own (mpirun's). */
pid_t spawn_command(const char *cmd, const char *log_path);
int count_of(const char *text, const char *needle); /* occurrences of needle */
/* DIR/out/adapter/adapter_model.safetensors */
void adapter_path(char *out, size_t len, const char *dir);
/* The job, uninterrupted, on 2 ranks in a fresh directory (returned; caller frees). */
char *reference_run(const char *shared);
/* On the model of tests/data/train/FIXTURE (vocabulary vocab), 48 random rows packed into
 * sequences of 32 with LoRA dropout on every linear: np 2 with batch_size 2 trains what one
 * process trains with batch_size 4. The first step's loss and gradient norm within 1e-6 (the
 * same weights, sums in another order), later steps within test_mpi.c's bounds (Adam
 * amplifies last-bit differences), the adapters within 0.1. */
void check_fixture_two_ranks(const char *fixture, int vocab);

#endif
