/* tests/fuzz/fuzz_util.h — shared by the libFuzzer harnesses (built by tools/fuzz.sh only).
 *
 * The parsers under test take paths, so most harnesses write the input to a scratch file
 * first. The scratch directory lives on /dev/shm when there is one (fsync there is free) and
 * is private to the process, so parallel fuzzers never share files. tools/fuzz.sh sets
 * LORAFIT_FUZZ_RUN to a tag of its own run, so that it removes only its own directories. */
#ifndef LORAFIT_FUZZ_UTIL_H
#define LORAFIT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* This process's scratch directory, created on first use. */
static inline const char *fuzz_scratch_dir(void) {
    static char dir[256];
    if (dir[0]) return dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const char *run = getenv("LORAFIT_FUZZ_RUN");
    snprintf(dir, sizeof dir, "%s/lorafit-fuzz-%s%s%ld", base, run ? run : "", run ? "-" : "",
             (long)getpid());
    mkdir(dir, 0700);
    return dir;
}

/* Writes data to SCRATCH/name and returns the full path (static buffer per slot). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[4][512];
    static int slot;
    char *p = path[slot++ & 3];
    snprintf(p, 512, "%s/%s", fuzz_scratch_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) abort(); /* the harness itself is broken, not the parser */
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return p;
}

/* A NUL-terminated heap copy of the input (for APIs that want C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
