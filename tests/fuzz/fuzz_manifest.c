/* tests/fuzz/fuzz_manifest.c — manifest_verify on an arbitrary MANIFEST in a directory that
 * holds two known files. It must never accept a MANIFEST that does not describe them
 * exactly, and never touch a path outside the directory. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        fuzz_write("a.bin", (const uint8_t *)"0123456789", 10);
        fuzz_write("b.txt", (const uint8_t *)"hello\n", 6);
        ready = 1;
    }
    fuzz_write(MANIFEST_NAME, data, size);
    char err[1024];
    err[0] = '\0';
    if (manifest_verify(fuzz_scratch_dir(), err, sizeof err) != 0 && !err[0]) abort();
    return 0;
}
