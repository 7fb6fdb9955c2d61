/* trainer/store/fsio.h — crash-safe file output and the test hook that injects I/O faults.
 *
 * Every file lorafit writes goes through here: written under a temporary name in the same
 * directory, fsync'd, renamed over the final name, and the directory fsync'd, so a crash at
 * any instant leaves either the old file or the new one, never a torn one. Checkpoint
 * directories use the same idea one level up (build "DIR.tmp-XXXX", then rename to DIR).
 *
 * Fault injection: fsio_inject_fault(op, n) makes the n-th later call of that kind (1 = the
 * next) fail with EIO as if the OS had refused it. Tests use it to prove that a failing
 * write, fsync or rename at any point never costs the last complete checkpoint. */
#ifndef LORAFIT_FSIO_H
#define LORAFIT_FSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct FsioFile FsioFile;

/* Opens "<path>.tmp-<pid>-<n>" for writing. NULL with err filled on failure. */
FsioFile *fsio_create(const char *path, char *err, size_t errlen);
/* Appends bytes (small writes are gathered into 64 KB system calls, so an OS error may be
 * reported by a later write or by fsio_commit); returns 0 or -1 (err names the file and the
 * OS error). */
int fsio_write(FsioFile *f, const void *data, size_t len, char *err, size_t errlen);
/* fsync, close, rename over the final path, fsync the directory. Frees f either way;
 * on failure the temporary file is removed and the final path is untouched. */
int fsio_commit(FsioFile *f, char *err, size_t errlen);
/* Closes and removes the temporary file; frees f. */
void fsio_abort(FsioFile *f);
/* CRC-32 (zlib) and size of everything written so far through f. */
uint32_t fsio_crc32(const FsioFile *f);
uint64_t fsio_size(const FsioFile *f);

/* Reading: maps the regular file at path read-only (*map NULL for an empty file) and sets
 * *size; 0, or -1 with err naming the file and the OS error. Unmap with munmap(*map, *size). */
int fsio_map_read(const char *path, const void **map, size_t *size, char *err, size_t errlen);

/* One-call form: the whole file from a buffer. */
int fsio_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Directory helpers: mkdir -p; rename a finished directory into place and fsync the parent;
 * remove a directory tree (used for old checkpoints and abandoned temporaries). */
int fsio_mkdirs(const char *path, char *err, size_t errlen);
int fsio_rename_dir(const char *from, const char *to, char *err, size_t errlen);
int fsio_remove_tree(const char *path, char *err, size_t errlen);

/* One writer per directory: an exclusive lock on DIR/.lock (fcntl, so the kernel drops it
 * when the process ends, however it ends; a lock left by a killed run never blocks). Returns
 * 0 with *fd holding the lock until it is closed, 1 when another process holds it (err names
 * the directory and that process's pid), -1 on an I/O error. */
int fsio_lock_dir(const char *dir, int *fd, char *err, size_t errlen);

/* Test hook. */
typedef enum { FSIO_OP_WRITE, FSIO_OP_FSYNC, FSIO_OP_RENAME, FSIO_OP_COUNT } FsioOp;
void fsio_inject_fault(FsioOp op, long nth); /* nth <= 0 clears */
/* Test-only, for a child lorafit process: the environment variable LORAFIT_FAULT="write:N",
 * "fsync:N" or "rename:N" arms fsio_inject_fault(op, N) once, at the first fault point
 * reached. With a "kill:" or "stop:" prefix ("kill:rename:3") the process instead kills
 * itself with SIGKILL, or stops itself with SIGSTOP, just before that call; "kill:step:N" and
 * "stop:step:N" do the same when optimizer step N has finished (checkpoint included).
 * "nan:step:N" makes the gradient of optimizer step N NaN (fsio_fault_nan_step). Several
 * points are separated by commas: "nan:step:3,nan:step:4,kill:step:5".
 * Never set it in production. */
/* The training loop's fault point: call once after each finished step. */
void fsio_fault_point_step(int64_t step);
/* The training loop's gradient fault point: true when LORAFIT_FAULT asks for optimizer
 * step `step` (1-based) to get a NaN gradient, as a diverging run or a bad batch would. */
bool fsio_fault_nan_step(int64_t step);

#endif
