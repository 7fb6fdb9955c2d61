/* trainer/store/paths.c — joining and normalizing paths (see store.h). A path that does not
 * fit its buffer is an error naming it, never a silently shortened path that would then
 * be opened or, worse, written. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "trainer/store/store.h"

int path_join(char *out, size_t outlen, const char *dir, const char *name, char *err,
              size_t errlen) {
    int n =
        dir && *dir ? snprintf(out, outlen, "%s/%s", dir, name) : snprintf(out, outlen, "%s", name);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen) out[0] = '\0';
        return store_error(err, errlen, 0, "path too long (%d bytes, at most %zu): %.200s/%.200s",
                           n, outlen ? outlen - 1 : 0, dir ? dir : "", name);
    }
    return 0;
}

void path_normalize(char *p) {
    bool absolute = p[0] == '/';
    size_t len = 0, kept = 0; /* output length; components that a ".." may still remove */
    for (char *seg = p; *seg;) {
        while (*seg == '/') seg++;
        size_t n = strcspn(seg, "/");
        bool dot = n == 1 && seg[0] == '.', dotdot = n == 2 && seg[0] == '.' && seg[1] == '.';
        if (n == 0 || dot) {
            /* nothing to keep */
        } else if (dotdot && kept > 0) {
            while (len > 0 && p[len - 1] != '/') len--; /* drop the last component */
            if (len > 0) len--;                         /* and the slash before it */
            kept--;
        } else if (!(dotdot && absolute)) {
            if (len > 0 || absolute) p[len++] = '/';
            memmove(p + len, seg, n);
            len += n;
            if (!dotdot) kept++;
        }
        seg += n;
    }
    if (len == 0) p[len++] = absolute ? '/' : '.';
    p[len] = '\0';
}
