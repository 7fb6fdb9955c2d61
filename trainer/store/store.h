/* trainer/store/store.h — the store: everything lorafit reads from and writes to disk, and
 * nothing about what the bytes mean for training. This header is the folder's whole API;
 * code outside trainer/store/ includes only it.
 *
 *   fsio.h         crash-safe files (temporary + fsync + rename), directory locks, the
 *                  deterministic fault points tests use
 *   safetensors.h  the strict safetensors reader, writer and sharded-index lookup
 *   manifest.h     the MANIFEST that makes a checkpoint directory verifiable
 *   gguf.h         the GGUF writer (llama.cpp / Ollama) and ggml's F16, BF16, Q8_0 encodings
 *   gguf_read.h    the GGUF reader: memory-mapped, every bound checked at open
 *   png.h          a small PNG writer (zlib) for the loss-curve picture of a model card
 *   below          error messages, path joining and whole-file reads shared by every module,
 *                  and the guard that keeps non-finite values out of every tensor written
 *
 * Where new file formats go: a file here next to safetensors_write.c and gguf_write.c,
 * with its declarations in a header of its own included below.
 *
 * Dependencies: libc, zlib, jansson, and tensor/ for its BF16/F16 rounding. Nothing of data/
 * or the other trainer/ folders. */
#ifndef LORAFIT_STORE_H
#define LORAFIT_STORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "trainer/store/fsio.h"
#include "trainer/store/gguf.h"
#include "trainer/store/gguf_read.h"
#include "trainer/store/manifest.h"
#include "trainer/store/png.h"
#include "trainer/store/safetensors.h"

/* lorafit's version (--version, model cards, GGUF and safetensors metadata, the man page),
 * e.g. "0.1.0": the Makefile passes it from debian/changelog, the one place it is written. */
#ifndef LORAFIT_VERSION
#error "LORAFIT_VERSION is defined by the Makefile (from debian/changelog)"
#endif

/* The one way lorafit formats an error message: printf-style into err (when not NULL),
 * then ": <strerror(errnum)>" when errnum is not 0. Always returns -1, so a failing
 * function can end with `return store_error(...)`. */
__attribute__((format(printf, 4, 5))) int store_error(char *err, size_t errlen, int errnum,
                                                      const char *fmt, ...);
int store_verror(char *err, size_t errlen, int errnum, const char *fmt, va_list ap);

/* out = dir + "/" + name (name alone when dir is NULL or empty). Returns 0, or -1 with err
 * naming the path when it does not fit in outlen: a path is never silently cut. */
int path_join(char *out, size_t outlen, const char *dir, const char *name, char *err,
              size_t errlen);
/* Removes "." components, empty components and "dir/.." pairs in place, lexically (as
 * Python's os.path.normpath does): "configs/../runs/x" becomes "runs/x". A ".." with
 * nothing before it stays in a relative path and goes at the root. */
void path_normalize(char *path);

/* The whole file, NUL-terminated (the terminator not counted in *len), at most max_bytes.
 * NULL with err (naming the file: missing, unreadable, larger than max_bytes, out of
 * memory). The caller frees. */
char *store_read_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen);
/* The same for a file that may be absent: NULL with *failed false when path does not exist,
 * NULL with *failed true and err for any other failure. */
char *store_read_file_if_there(const char *path, size_t max_bytes, size_t *len, bool *failed,
                               char *err, size_t errlen);

/* How a tensor writer encodes floating-point values, for store_check_finite (Q8_0: ggml's
 * blocks of an F16 scale and 32 int8; STORE_NOT_FLOAT for integers and bytes). */
typedef enum {
    STORE_F64,
    STORE_F32,
    STORE_F16,
    STORE_BF16,
    STORE_Q8_0,
    STORE_NOT_FLOAT
} StoreEncoding;
/* The one guard of what lorafit writes: 0 when every value in data (nbytes encoded as enc)
 * is finite, else -1 with err naming path, the tensor, the value (NaN, inf, -inf) and its
 * element. The safetensors and GGUF writers call it on every tensor's bytes just before
 * they write them, and abandon the file when it fails: a NaN or an infinity never reaches
 * disk through lorafit, whichever path produced it. */
int store_check_finite(StoreEncoding enc, const void *data, size_t nbytes, const char *path,
                       const char *tensor, char *err, size_t errlen);

#endif
