/* trainer/cli/cli.h — the command line: one function per lorafit subcommand. Each returns
 * the process exit code (0 ok, 1 runtime failure, 2 usage error, 130 stopped by a signal)
 * and prints its own errors. Exit codes exist here and nowhere else: the library folders
 * return 0 / -1 (or NULL) with a message, and these functions map that to an exit code.
 *
 * Where new commands go: a file per command in this folder (cmd_tokenize.c, ...), declared
 * here and dispatched from main.c. */
#ifndef LORAFIT_CLI_H
#define LORAFIT_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "trainer/config/config.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* Exit codes (SPEC section 1). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_STOPPED = 130 };

/* argv[0] is the command name ("inspect"), as main received it shifted by one. */
int cmd_inspect(int argc, char **argv);
int inspect_gguf(const char *path); /* inspect_gguf.c: exit code */
int cmd_generate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* ---- output paths (cmd_output.c), shared by export and merge ---- */
/* EXIT_OK when path may be written: absent, or --force, or (want_dir) a directory holding
 * nothing but a lock file. Otherwise prints why and returns EXIT_USAGE. */
int cmd_check_overwrite(const char *cmd, const char *path, bool want_dir, bool force);
/* Writes directory out: the overwrite check, out's lock (fsio_lock_dir: another lorafit
 * process writing there is refused), then fill() into a temporary directory renamed into
 * place when complete. Prints errors; returns the exit code. */
int cmd_write_dir(const char *cmd, const char *out, bool force,
                  int (*fill)(const char *tmp_dir, void *ctx, char *err, size_t errlen), void *ctx);
/* "f32" | "f16" | "bf16" (| "q8_0" when allowed) -> the ggml type; else prints, EXIT_USAGE. */
int cmd_parse_dtype(const char *cmd, const char *name, bool allow_q8, GgmlType *out);
bool cmd_is_gguf_path(const char *path); /* ends with ".gguf" */
/* After a GGUF export: the warnings where llama.cpp computes another model than lorafit (past
 * the sliding window it ignores; with longrope, by its context size). */
void cmd_warn_gguf_llamacpp(const GgufReport *report);

/* Consumes argv[*i] (and its value, advancing *i) as the CONFIG path or a --set KEY=VALUE
 * (also --set=KEY=VALUE). sets must have room for argc entries. Returns 0, or exit code 2
 * after printing what was wrong. */
int cmd_parse_config_args(const char *cmd, int argc, char **argv, int *i, const char **config,
                          const char **sets, int *n_sets);
/* config_load, with its result as an exit code (0, 2 for an invalid config, 1 when the file
 * cannot be read). */
int cmd_load_config(const char *path, const char *const *sets, int n_sets, Config *cfg, char *err,
                    size_t errlen);
/* MPI started (under a launcher), then the config loaded on every rank, the ranks voting
 * so that a failure anywhere stops all of them with one message: an exit code, 0 when every
 * rank has the config (then *loaded, and cfg is to be freed). rc: an earlier exit code
 * (argument errors), which skips the work but still votes. */
int cmd_start_and_load_config(int rc, const char *path, const char *const *sets, int n_sets,
                              Config *cfg, bool *loaded, char *err, size_t errlen);
/* --precision auto|f32|bf16 into *out; -1 after printing what was wrong. */
int cmd_parse_precision(const char *cmd, const char *value, ConfigPrecision *out);

#endif
