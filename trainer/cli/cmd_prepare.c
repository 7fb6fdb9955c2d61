/* trainer/cli/cmd_prepare.c — `lorafit prepare CONFIG.yaml --out FILE.jsonl [--set KEY=VALUE]...`:
 * writes the rows training would see — input_ids and labels after the format, the template,
 * the masking and data.overflow, before packing — one JSON object per line, and prints their
 * statistics. It is how a user checks a template and its masking before a long run.
 *
 * The rows are in file order (data.shuffle is not applied), one pass over data.train: the
 * output then lines up with the input records, and the shuffle would only reorder the same
 * rows. The file is written under a temporary name and renamed when complete.
 *
 * For train.objective dpo | orpo each line is a pair as TRL tokenizes it: prompt_ids,
 * chosen_ids and rejected_ids (whole), then the two rows training sees (prompt +
 * completion cut at data.seq_len, TRL's keep_start) with their completion masks:
 * chosen_input_ids, chosen_completion_mask, rejected_input_ids, rejected_completion_mask.
 * Pairs whose prompt alone fills data.seq_len are dropped (counted). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/cli/cli.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

static void prepare_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit prepare CONFIG.yaml --out FILE.jsonl [--set KEY=VALUE]...\n"
            "  Writes the rows training on CONFIG's data.train would see ({\"input_ids\",\n"
            "  \"labels\"}, -100 where there is no loss; after data.format, the chat template\n"
            "  and data.overflow, before packing), in file order, and prints their statistics\n"
            "  as one JSON line: rows, tokens, target tokens, truncated, split, dropped and\n"
            "  skipped records, longest row. With train.objective dpo or orpo, one pair per\n"
            "  line: prompt_ids, chosen_ids, rejected_ids and the two cut rows with their\n"
            "  completion masks.\n");
}

typedef struct PrepareStats {
    int64_t rows, tokens, targets, truncated, split, longest;
} PrepareStats;

static int write_ids(FILE *f, const char *name, const int32_t *v, int n) {
    fprintf(f, "\"%s\": [", name);
    for (int i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", (int)v[i]);
    return fputs("]", f) < 0 ? -1 : 0;
}

/* One row of a pair (prompt + completion cut at T) and its completion mask. */
static void write_pair_row(FILE *f, const char *name, const int32_t *prompt, int np,
                           const int32_t *comp, int nc, int T) {
    int len = np + nc < T ? np + nc : T;
    fprintf(f, ", \"%s_input_ids\": [", name);
    for (int t = 0; t < len; t++) fprintf(f, t ? ", %d" : "%d", t < np ? prompt[t] : comp[t - np]);
    fprintf(f, "], \"%s_completion_mask\": [", name);
    for (int t = 0; t < len; t++) fprintf(f, t ? ", %d" : "%d", t >= np);
    fputs("]", f);
}

static int write_pairs(DataReader *r, FILE *f, int T, PrepareStats *st, char *err, size_t errlen) {
    DataRow row;
    int rc;
    while ((rc = data_next_row(r, &row, err, errlen)) == 1) {
        const int32_t *p = row.ids, *c = p + row.n_prompt, *j = c + row.n_chosen;
        int np = row.n_prompt, nc = row.n_chosen, nj = row.len - np - nc;
        fputs("{", f);
        write_ids(f, "prompt_ids", p, np);
        fputs(", ", f);
        write_ids(f, "chosen_ids", c, nc);
        fputs(", ", f);
        write_ids(f, "rejected_ids", j, nj);
        write_pair_row(f, "chosen", p, np, c, nc, T);
        write_pair_row(f, "rejected", p, np, j, nj, T);
        if (fputs("}\n", f) < 0) {
            snprintf(err, errlen, "--out: write error");
            return -1;
        }
        st->rows++;
        for (int k = 0; k < 2; k++) {
            int n = np + (k ? nj : nc), kept = n < T ? n : T;
            st->tokens += kept;
            st->targets += kept - np - (np == 0);
            if (kept > st->longest) st->longest = kept;
        }
        st->truncated += np + (nc > nj ? nc : nj) > T;
    }
    return rc;
}

static int write_rows(DataReader *r, FILE *f, PrepareStats *st, char *err, size_t errlen) {
    DataRow row;
    int rc;
    while ((rc = data_next_row(r, &row, err, errlen)) == 1) {
        fputs("{", f);
        write_ids(f, "input_ids", row.ids, row.len);
        fputs(", ", f);
        write_ids(f, "labels", row.labels, row.len);
        if (fputs("}\n", f) < 0) {
            snprintf(err, errlen, "--out: write error");
            return -1;
        }
        st->rows++;
        st->tokens += row.len;
        for (int t = 1; t < row.len; t++) st->targets += row.labels[t] != -100;
        if (row.len > st->longest) st->longest = row.len;
        if (row.first_piece && row.record_len > row.len) {
            if (row.last_piece)
                st->truncated++;
            else
                st->split++;
        }
    }
    return rc;
}

static int run_prepare(const Config *cfg, const char *out, char *err, size_t errlen) {
    if (train_check_paths(cfg, err, errlen) != 0) return EXIT_USAGE;
    ModelConfig mc;
    if (model_config_load(cfg->model.path, &mc, err, errlen) != 0) return EXIT_RUNTIME;
    TrainText text;
    int rc = train_text_load(cfg, &text, err, errlen);
    if (rc != 0) return rc == -2 ? EXIT_USAGE : EXIT_RUNTIME;
    DataOptions o;
    train_data_options(cfg, TRAIN_DATA_TRAIN, mc.vocab_size, &o);
    train_text_attach(&text, &o);
    o.shuffle = false;
    o.epochs = 1;
    DataReader *r = data_open(&o, err, errlen);
    if (!r) {
        train_text_free(&text);
        return EXIT_RUNTIME;
    }
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    PrepareStats st = {0};
    rc = EXIT_OK;
    if (!f) {
        snprintf(err, errlen, "--out: cannot create '%.900s'", tmp);
        rc = EXIT_RUNTIME;
    } else {
        int wrc = o.preference ? write_pairs(r, f, o.seq_len, &st, err, errlen)
                               : write_rows(r, f, &st, err, errlen);
        if (fclose(f) != 0 && wrc == 0) {
            snprintf(err, errlen, "--out: write error on '%.900s'", tmp);
            wrc = -1;
        }
        if (wrc == 0 && rename(tmp, out) != 0) {
            snprintf(err, errlen, "--out: cannot rename '%.900s' to '%.900s'", tmp, out);
            wrc = -1;
        }
        if (wrc != 0) {
            unlink(tmp);
            rc = EXIT_RUNTIME;
        }
    }
    if (rc == EXIT_OK) {
        int64_t bad, dropped;
        data_skip_counts(r, &bad, &dropped);
        printf("{\"%s\": %" PRId64 ", \"tokens\": %" PRId64 ", \"target_tokens\": %" PRId64
               ", \"truncated\": %" PRId64 ", \"split\": %" PRId64 ", \"dropped\": %" PRId64
               ", \"skipped\": %" PRId64 ", \"longest_row\": %" PRId64 ", \"format\": \"%s\"}\n",
               o.preference ? "pairs" : "rows", st.rows, st.tokens, st.targets, st.truncated,
               st.split, dropped, bad, st.longest, data_format_name(text.format));
    }
    data_close(r);
    train_text_free(&text);
    return rc;
}

int cmd_prepare(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, rc = 0;
    if (!sets) return EXIT_RUNTIME;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            prepare_usage(stdout);
            free(sets);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lorafit prepare: --out needs a file\n");
                rc = EXIT_USAGE;
                break;
            }
            out = argv[++i];
            continue;
        }
        rc = cmd_parse_config_args("prepare", argc, argv, &i, &config, sets, &n_sets);
    }
    if (rc == 0 && (!config || !out)) {
        prepare_usage(stderr);
        rc = EXIT_USAGE;
    }
    if (rc != 0) {
        free(sets);
        return rc;
    }
    Config cfg;
    char err[2048];
    rc = cmd_load_config(config, sets, n_sets, &cfg, err, sizeof err);
    free(sets);
    if (rc != 0) {
        fprintf(stderr, "lorafit prepare: %s\n", err);
        return rc;
    }
    rc = run_prepare(&cfg, out, err, sizeof err);
    if (rc != EXIT_OK) fprintf(stderr, "lorafit prepare: %s\n", err);
    config_free(&cfg);
    return rc;
}
