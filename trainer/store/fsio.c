/* trainer/store/fsio.c — crash-safe file output (see fsio.h for the contract).
 *
 * The recipe is the classic one: write "<path>.tmp-<pid>-<n>" in the same directory (so the
 * rename cannot cross a file system), fsync the file, rename it over the final name, then
 * fsync the directory so the rename itself is durable. A crash before the rename leaves the
 * old file and an orphan temporary; a crash after it leaves the new file. Nothing in between
 * is ever visible under the final name.
 *
 * Every write, fsync and rename goes through one wrapper per kind that consults the
 * fault-injection counters, so tests can make the n-th call of a kind fail with EIO. */
#include "trainer/store/fsio.h"
#include "trainer/store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct FsioFile {
    int fd;
    char *path;         /* final name */
    char *tmp;          /* temporary name in the same directory */
    uint32_t crc;       /* zlib CRC-32 of everything written */
    uint64_t size;      /* bytes written */
    int failed;         /* a write failed: the content is incomplete, commit must refuse */
    unsigned char *buf; /* (FSIO_BUFFER) small writes gathered into one system call */
    size_t buffered;
};

/* Writes of a file are gathered up to this size: a safetensors file is written tensor by
 * tensor, and one system call per small tensor would only add syscalls (and fault points). */
#define FSIO_BUFFER ((size_t)1 << 16)

/* ---- fault injection ---------------------------------------------------------------- */

/* What an armed fault point does when its call comes: fail it with EIO (in-process tests and
 * LORAFIT_FAULT="write:N"), or kill / stop the whole process right there, before the call
 * runs (LORAFIT_FAULT="kill:write:N", "stop:step:N"): a crash or a pause at an exact,
 * repeatable instant, which tests walk point by point instead of guessing with timers. */
typedef enum { FAULT_EIO, FAULT_KILL, FAULT_STOP } FaultAction;

static long fault_nth[FSIO_OP_COUNT];   /* fire at the call whose ordinal equals this; 0 = off */
static long fault_calls[FSIO_OP_COUNT]; /* calls of each kind since the fault was armed */
static FaultAction fault_action[FSIO_OP_COUNT];
static int64_t fault_step = -1; /* kill or stop when this optimizer step has finished */
static FaultAction fault_step_action;
#define MAX_NAN_STEPS 16
static int64_t nan_steps[MAX_NAN_STEPS]; /* "nan:step:N": steps whose gradient is poisoned */
static int n_nan_steps;

void fsio_inject_fault(FsioOp op, long nth) {
    if ((int)op < 0 || op >= FSIO_OP_COUNT) return;
    fault_nth[op] = nth > 0 ? nth : 0;
    fault_calls[op] = 0;
    fault_action[op] = FAULT_EIO;
}

/* One point of LORAFIT_FAULT, e of len bytes: "[kill:|stop:]write:N" (or fsync:N, rename:N),
 * "kill:step:N" / "stop:step:N", or "nan:step:N". Malformed points are ignored. */
static void arm_point(const char *e, size_t len) {
    char point[64];
    if (len >= sizeof point) return;
    memcpy(point, e, len);
    point[len] = '\0';
    e = point;
    FaultAction action = FAULT_EIO;
    bool nan = strncmp(e, "nan:", 4) == 0;
    if (strncmp(e, "kill:", 5) == 0) {
        action = FAULT_KILL;
        e += 5;
    } else if (strncmp(e, "stop:", 5) == 0) {
        action = FAULT_STOP;
        e += 5;
    } else if (nan) {
        e += 4;
    }
    static const char *const names[FSIO_OP_COUNT + 1] = {"write:", "fsync:", "rename:", "step:"};
    for (int op = 0; op <= FSIO_OP_COUNT; op++) {
        size_t n = strlen(names[op]);
        if (strncmp(e, names[op], n) != 0) continue;
        char *end;
        long nth = strtol(e + n, &end, 10);
        if (*end != '\0' || nth <= 0) return;
        if (op == FSIO_OP_COUNT && nan) {
            if (n_nan_steps < MAX_NAN_STEPS) nan_steps[n_nan_steps++] = nth;
        } else if (op == FSIO_OP_COUNT) {
            if (action == FAULT_EIO) return; /* a step cannot fail with EIO */
            fault_step = nth;
            fault_step_action = action;
        } else if (!nan) {
            fsio_inject_fault((FsioOp)op, nth);
            fault_action[op] = action;
        }
    }
}

/* Test-only: LORAFIT_FAULT, a comma-separated list of points (see arm_point), arms faults in a
 * child lorafit process. Read once, at the first fault point reached. */
static void fault_from_env(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *e = getenv("LORAFIT_FAULT");
    while (e && *e) {
        size_t len = strcspn(e, ",");
        arm_point(e, len);
        e += len + (e[len] == ',');
    }
}

static void fault_act(FaultAction action) {
    if (action == FAULT_KILL) raise(SIGKILL);
    if (action == FAULT_STOP) raise(SIGSTOP); /* returns once SIGCONT arrives */
}

/* 1 when this call of kind op must fail (errno is then EIO). The fault fires once. */
static int fault_fires(FsioOp op) {
    fault_from_env();
    if (fault_nth[op] <= 0) return 0;
    if (++fault_calls[op] != fault_nth[op]) return 0;
    fault_nth[op] = 0;
    if (fault_action[op] != FAULT_EIO) {
        fault_act(fault_action[op]);
        return 0;
    }
    errno = EIO;
    return 1;
}

void fsio_fault_point_step(int64_t step) {
    fault_from_env();
    if (step != fault_step) return;
    fault_step = -1;
    fault_act(fault_step_action);
}

bool fsio_fault_nan_step(int64_t step) {
    fault_from_env();
    for (int i = 0; i < n_nan_steps; i++)
        if (nan_steps[i] == step) return true;
    return false;
}

static ssize_t sys_write(int fd, const void *buf, size_t len) {
    if (fault_fires(FSIO_OP_WRITE)) return -1;
    return write(fd, buf, len);
}

static int sys_fsync(int fd) {
    if (fault_fires(FSIO_OP_FSYNC)) return -1;
    return fsync(fd);
}

static int sys_rename(const char *from, const char *to) {
    if (fault_fires(FSIO_OP_RENAME)) return -1;
    return rename(from, to);
}

/* ---- helpers -------------------------------------------------------------------------- */

/* The directory part of path ("." when there is none). Caller frees. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* fsync the directory holding path, making a rename into it durable. */
static int fsync_parent(const char *path, char *err, size_t errlen) {
    char *dir = parent_dir(path);
    if (!dir) {
        store_error(err, errlen, 0, "%s: out of memory", path);
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        store_error(err, errlen, errno, "cannot open directory %s to sync it", dir);
        free(dir);
        return -1;
    }
    int rc = 0;
    if (sys_fsync(fd) != 0) {
        store_error(err, errlen, errno, "fsync of directory %s failed", dir);
        rc = -1;
    }
    close(fd);
    free(dir);
    return rc;
}

static void file_free(FsioFile *f) {
    free(f->buf);
    free(f->path);
    free(f->tmp);
    free(f);
}

/* ---- files ---------------------------------------------------------------------------- */

FsioFile *fsio_create(const char *path, char *err, size_t errlen) {
    static unsigned long serial; /* distinguishes temporaries of one process */
    if (!path || !*path) {
        store_error(err, errlen, 0, "empty output path");
        return NULL;
    }
    FsioFile *f = calloc(1, sizeof *f);
    size_t tmplen = strlen(path) + 64;
    if (f) {
        f->path = strdup(path);
        f->tmp = malloc(tmplen);
        f->buf = malloc(FSIO_BUFFER);
    }
    if (!f || !f->path || !f->tmp || !f->buf) {
        store_error(err, errlen, 0, "%s: out of memory", path);
        if (f) file_free(f);
        return NULL;
    }
    snprintf(f->tmp, tmplen, "%s.tmp-%ld-%lu", path, (long)getpid(), ++serial);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int e = errno;
        store_error(err, errlen, e, "cannot create %s", f->tmp);
        if (e == ENOENT && err) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (does the directory exist?)");
        }
        file_free(f);
        return NULL;
    }
    f->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    return f;
}

/* Writes len bytes to the file descriptor, whatever the number of calls it takes. */
static int write_all(FsioFile *f, const unsigned char *p, size_t left, char *err, size_t errlen) {
    while (left > 0) {
        ssize_t n = sys_write(f->fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            store_error(err, errlen, n < 0 ? errno : ENOSPC, "write to %s failed", f->tmp);
            f->failed = 1;
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

static int flush_buffer(FsioFile *f, char *err, size_t errlen) {
    size_t n = f->buffered;
    f->buffered = 0;
    return n ? write_all(f, f->buf, n, err, errlen) : 0;
}

int fsio_write(FsioFile *f, const void *data, size_t len, char *err, size_t errlen) {
    if (f->failed) {
        store_error(err, errlen, 0, "%s: an earlier write failed", f->tmp);
        return -1;
    }
    const unsigned char *p = data;
    if (f->buffered + len > FSIO_BUFFER && flush_buffer(f, err, errlen) != 0) return -1;
    if (len >= FSIO_BUFFER) {
        if (write_all(f, p, len, err, errlen) != 0) return -1;
    } else {
        memcpy(f->buf + f->buffered, p, len);
        f->buffered += len;
    }
    /* zlib's length is a uInt: feed large buffers in slices. */
    for (size_t left = len; left > 0;) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        f->crc = (uint32_t)crc32(f->crc, p, chunk);
        p += chunk;
        left -= chunk;
    }
    f->size += len;
    return 0;
}

int fsio_commit(FsioFile *f, char *err, size_t errlen) {
    int rc = -1;
    if (!f->failed && flush_buffer(f, err, errlen) != 0) {
        close(f->fd); /* err says which write failed */
    } else if (f->failed) {
        store_error(err, errlen, 0, "%s: not committed because a write failed", f->path);
        close(f->fd);
    } else if (sys_fsync(f->fd) != 0) {
        store_error(err, errlen, errno, "fsync of %s failed", f->tmp);
        close(f->fd);
    } else if (close(f->fd) != 0) {
        store_error(err, errlen, errno, "close of %s failed", f->tmp);
    } else if (sys_rename(f->tmp, f->path) != 0) {
        store_error(err, errlen, errno, "rename of %s onto %s failed", f->tmp, f->path);
    } else {
        /* The new file is in place; a failing directory sync means it may not survive a
         * power loss, which the caller must hear about. */
        rc = fsync_parent(f->path, err, errlen);
        file_free(f);
        return rc;
    }
    unlink(f->tmp);
    file_free(f);
    return rc;
}

void fsio_abort(FsioFile *f) {
    if (!f) return;
    close(f->fd);
    unlink(f->tmp);
    file_free(f);
}

uint32_t fsio_crc32(const FsioFile *f) {
    return f->crc;
}

uint64_t fsio_size(const FsioFile *f) {
    return f->size;
}

int fsio_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    FsioFile *f = fsio_create(path, err, errlen);
    if (!f) return -1;
    if (fsio_write(f, data, len, err, errlen) != 0) {
        fsio_abort(f);
        return -1;
    }
    return fsio_commit(f, err, errlen);
}

/* ---- directories ---------------------------------------------------------------------- */

int fsio_mkdirs(const char *path, char *err, size_t errlen) {
    if (!path || !*path) {
        store_error(err, errlen, 0, "empty directory path");
        return -1;
    }
    char *buf = strdup(path);
    if (!buf) {
        store_error(err, errlen, 0, "%s: out of memory", path);
        return -1;
    }
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        int end = *p == '\0';
        if (*p == '/' || end) {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                store_error(err, errlen, errno, "cannot create directory %s", buf);
                rc = -1;
                break;
            }
            *p = saved;
            if (end) break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
            store_error(err, errlen, 0, "%s exists and is not a directory", buf);
            rc = -1;
        }
    }
    free(buf);
    return rc;
}

int fsio_rename_dir(const char *from, const char *to, char *err, size_t errlen) {
    if (sys_rename(from, to) != 0) {
        store_error(err, errlen, errno, "cannot rename directory %s to %s", from, to);
        return -1;
    }
    return fsync_parent(to, err, errlen);
}

int fsio_lock_dir(const char *dir, int *fd, char *err, size_t errlen) {
    char path[4200];
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path) {
        store_error(err, errlen, 0, "%.200s...: path too long", dir);
        return -1;
    }
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        store_error(err, errlen, errno, "cannot open the lock file %s", path);
        return -1;
    }
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(f, F_SETLK, &lk) != 0) {
        int e = errno;
        if (e != EAGAIN && e != EACCES) {
            store_error(err, errlen, e, "cannot lock %s", path);
            close(f);
            return -1;
        }
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        long pid = fcntl(f, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
        close(f);
        if (pid > 0)
            store_error(err, errlen, 0,
                        "%s is in use by another lorafit process (pid %ld); wait for it to end or "
                        "stop it, or choose another directory",
                        dir, pid);
        else
            store_error(err, errlen, 0,
                        "%s is in use by another lorafit process; wait for it to end or choose "
                        "another directory",
                        dir);
        return 1;
    }
    /* For people looking at the directory: who holds it. The lock, not this text, decides. */
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, text, (size_t)n, 0) != n) {
        store_error(err, errlen, errno, "cannot write the lock file %s", path);
        close(f);
        return -1;
    }
    *fd = f;
    return 0;
}

/* nftw passes no user pointer: the first error is kept here (not thread-safe, by design). */
static char *remove_err;
static size_t remove_errlen;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    int rc = (type == FTW_DP || type == FTW_D || type == FTW_DNR) ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT) {
        store_error(remove_err, remove_errlen, errno, "cannot remove %s", path);
        return -1;
    }
    return 0;
}

int fsio_remove_tree(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (!path || !*path || strcmp(path, "/") == 0) {
        store_error(err, errlen, 0, "refusing to remove '%s'", path ? path : "");
        return -1;
    }
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0; /* already gone: what the caller wanted */
        store_error(err, errlen, errno, "cannot inspect %s", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) { /* a file or a symlink: remove the link, never its target */
        if (unlink(path) != 0) {
            store_error(err, errlen, errno, "cannot remove %s", path);
            return -1;
        }
        return 0;
    }
    if (err && errlen) err[0] = '\0';
    remove_err = err;
    remove_errlen = errlen;
    /* FTW_PHYS: symlinks are removed as links, never followed out of the tree;
     * FTW_MOUNT: never descend into another file system mounted inside it. */
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    remove_err = NULL;
    remove_errlen = 0;
    if (rc != 0) {
        if (err && errlen && !*err) store_error(err, errlen, errno, "cannot remove tree %s", path);
        return -1;
    }
    return 0;
}

int fsio_map_read(const char *path, const void **map, size_t *size, char *err, size_t errlen) {
    *map = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        *map = m;
        *size = (size_t)sb.st_size;
    }
    close(fd);
    return 0;
}
