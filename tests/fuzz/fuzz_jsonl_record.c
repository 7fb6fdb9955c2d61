/* tests/fuzz/fuzz_jsonl_record.c — one JSONL line through row_from_json_line and validation,
 * and the same bytes as a CSV cell through ids_parse_text (the two record-level parsers). */
#include "data/internal.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *line = malloc(size ? size : 1); /* exact size: no terminator to lean on */
    if (!line) abort();
    memcpy(line, data, size);
    Row row = {0};
    char why[512];
    why[0] = '\0';
    if (row_from_json_line(line, size, "input_ids", "labels", &row, why, sizeof why) == 0) {
        if (row.len < 0 || row.len > row.cap) abort();
        (void)row_validate(&row, 97, "input_ids", "labels", why, sizeof why);
    } else if (!why[0]) {
        abort();
    }
    row_free(&row);
    IdList ids = {0};
    why[0] = '\0';
    if (ids_parse_text(line, size, &ids, why, sizeof why) != 0 && !why[0]) abort();
    if (ids.n < 0 || ids.n > ids.cap) abort();
    free(ids.v);
    free(line);
    return 0;
}
