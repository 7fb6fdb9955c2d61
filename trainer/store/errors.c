/* trainer/store/errors.c — the one formatter of error messages (see store.h). Every module
 * fills a caller's (err, errlen) buffer the same way, so messages read alike and an OS
 * error is always appended as ": <strerror>". */
#include <stdio.h>
#include <string.h>

#include "trainer/store/store.h"

int store_verror(char *err, size_t errlen, int errnum, const char *fmt, va_list ap) {
    if (!err || errlen == 0) return -1;
    vsnprintf(err, errlen, fmt, ap);
    size_t n = strlen(err);
    if (errnum && n + 1 < errlen) snprintf(err + n, errlen - n, ": %s", strerror(errnum));
    return -1;
}

int store_error(char *err, size_t errlen, int errnum, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    store_verror(err, errlen, errnum, fmt, ap);
    va_end(ap);
    return -1;
}
