/* trainer/main.c — the lorafit command line: dispatches to one command per file. */
#include <stdio.h>
#include <string.h>

#define LORAFIT_VERSION "0.1.0"

static void usage(FILE *out) {
    fprintf(out, "usage: lorafit COMMAND [ARGS]\n"
                 "  lorafit --version | --help | COMMAND --help\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lorafit %s\n", LORAFIT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lorafit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
