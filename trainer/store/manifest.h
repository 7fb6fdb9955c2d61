/* trainer/store/manifest.h — the MANIFEST that makes a checkpoint directory verifiable, and the
 * listing of checkpoint-STEP directories in an output directory.
 *
 * A checkpoint is complete exactly when its MANIFEST exists and every file it lists has the
 * recorded size and CRC-32. MANIFEST is written last (through fsio), so a crash while
 * saving leaves a directory without one: "incomplete", never mistaken for valid. Format:
 *
 *   lorafit-manifest 1
 *   <size in bytes, decimal> <crc32, 8 lowercase hex digits> <file name>
 *   ...
 *
 * one line per file, each ending in '\n'; names are plain file names inside the directory
 * (no '/', not "." or "..", no control characters). */
#ifndef LORAFIT_MANIFEST_H
#define LORAFIT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MANIFEST_NAME "MANIFEST"

/* Writes DIR/MANIFEST for the n files DIR/names[i], reading each back from disk to record
 * its size and CRC (what is on disk is what gets vouched for). 0 or -1 with err. */
int manifest_write(const char *dir, const char *const *names, int n, char *err, size_t errlen);

/* Checks DIR/MANIFEST and every file it lists. 0 when complete and intact; otherwise -1 and
 * err describes the first problem, e.g.
 *   "runs/x/checkpoint-200/adapter_model.safetensors: CRC mismatch (expected 1a2b3c4d, got
 *    99aa0011); the checkpoint is corrupt" */
int manifest_verify(const char *dir, char *err, size_t errlen);

/* Steps of the OUT_DIR/checkpoint-STEP directories, ascending by STEP (numeric). Names that
 * are not exactly "checkpoint-" + decimal digits without leading zeros (temporaries such as
 * "checkpoint-200.tmp-123", junk, plain files) are ignored. A missing OUT_DIR has none.
 * *steps is malloc'ed (NULL when *n == 0); the caller frees. 0 or -1 with err. */
int manifest_list_checkpoints(const char *out_dir, int64_t **steps, int *n, char *err,
                              size_t errlen);

/* The newest checkpoint in OUT_DIR that verifies: writes its path to path_out and its step
 * to *step and returns 1; returns 0 when there is none (path_out empty), -1 on error.
 * Incomplete or corrupt newer checkpoints are skipped; if skipped is given, it receives a
 * note naming the first one skipped and why (empty when none was). */
int manifest_latest_complete(const char *out_dir, char *path_out, size_t path_len, int64_t *step,
                             char *skipped, size_t skipped_len, char *err, size_t errlen);

#endif
