/* trainer/model/embed_rows.c — an untied embedding table read a row at a time from its file.
 *
 * Why not through the mapping: the kernel maps a whole page-cache folio around the page a
 * read touches, and a file written or read in large pieces sits in folios of up to MiBs. A
 * step's few thousand rows then keep most of the table resident: 903 of Llama-3.1-8B's
 * 1002 MiB BF16 embedding after 2048 random rows on Linux 6.18, 280 MB of its Q4_K one, the
 * memory a quantized base is meant to save. pread copies the rows out of the page cache
 * without mapping them, so resident memory holds only the N rows of the pass.
 *
 * op_embedding_read converts the rows read as op_embedding converts the table's: the same
 * bits. A tied table is also the lm_head, read whole every step, and stays in
 * the mapping. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "trainer/model/internal.h"

int model_embed_from_file(Model *m, const char *path, uint64_t offset, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open it again to read the embedding rows: %s", path,
                 strerror(errno));
        return -1;
    }
    m->embed_fd = fd;
    m->embed_offset = offset;
    m->embed_from_file = true;
    return 0;
}

void model_embed_file_close(Model *m) {
    if (m->embed_from_file) close(m->embed_fd);
    m->embed_from_file = false;
}

/* EmbeddingRowRead on m's file: row `row` is at embed_offset + row * bytes. pread through
 * short reads and EINTR. */
static int read_row(void *ctx, int64_t row, void *dst, size_t bytes, char *err, size_t errlen) {
    const Model *m = ctx;
    char *p = dst;
    uint64_t at = m->embed_offset + (uint64_t)row * bytes;
    while (bytes) {
        ssize_t got = pread(m->embed_fd, p, bytes, (off_t)at);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            snprintf(err, errlen, "cannot read it from the model file: %s",
                     got ? strerror(errno) : "the file ended early (changed since it was loaded?)");
            return -1;
        }
        p += got, bytes -= (size_t)got, at += (uint64_t)got;
    }
    return 0;
}

Tensor *model_embed_rows_read(const Model *m, Graph *g, const int32_t *ids, int64_t n) {
    return op_embedding_read(g, &m->embed, ids, n, read_row, (void *)m);
}
