/* `metamers synth judge`: the verdicts of an output folder again, against
 * the null distribution as it is now (e.g. after `metamers null` with more
 * pairs, or per task), without remaking any metamer. Each row keeps its
 * measured statistics and predictions; only the null maxima, `passed` and
 * `verdict` change. Row files are rewritten atomically one by one, then
 * metamers.csv and summary.csv, so a killed run is finished by running it
 * again. */
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

static void usage(FILE *f) {
    fprintf(f, "usage: metamers synth judge DIR --model M [--null PATH] [--null-pooled]\n"
               "  Judges the metamers in DIR (a `metamers synth` output folder) again with the\n"
               "  null distribution in PATH (default: the model's cache, next to it; for\n"
               "  builtin: models DIR/null.safetensors) and rewrites their rows, metamers.csv\n"
               "  and summary.csv. Diverged metamers stay failed. The null must hold every\n"
               "  stage (and task) of the folder: `metamers null` computes it. --null-pooled\n"
               "  judges every metamer by the pooled null (`metamers null --pooled`) instead of\n"
               "  its clip's task's.\n");
}

/* Judges one row again; *changed tells whether its verdict moved. */
static int judge_row(const Network *net, const NullDist *null, const char *null_path, bool pooled, Row *row,
                     bool *changed, Error *err) {
    *changed = false;
    if (strncmp(row->f[COL_VERDICT], "fail: diverged", 14) == 0) return 0; /* nothing to measure */
    int task = synth_clip_task(net, row->f[COL_CLIP_ID], row->f[COL_TASK], err);
    if (task < -1) return -1;
    int stage = network_stage_index(net, row->f[COL_STAGE], err);
    if (stage < -1) return -1;
    task = synth_null_task(net, task, pooled);
    const NullStage *ns = synth_null_of(null, net, task, stage);
    if (!ns) {
        char key[300];
        synth_null_key(net, task, stage, key, sizeof key);
        return error_set(err, "%s has no null distribution for %s (`metamers null --model M --manifest TRAIN.csv "
                              "%scomputes it)", null_path, key, pooled ? "--pooled " : "");
    }
    /* The row holds the predictions as labels; only whether they differ matters here. */
    MetamerResult m = {.spearman = atof(row->f[COL_SPEARMAN]), .pearson = atof(row->f[COL_PEARSON]),
                       .snr_db = atof(row->f[COL_SNR_DB]), .pred_natural = 0,
                       .pred_metamer = strcmp(row->f[COL_PRED_NATURAL], row->f[COL_PRED_METAMER]) != 0};
    char verdict[700];
    bool passed = metamer_judge(&m, ns, row->f[COL_PRED_NATURAL], row->f[COL_PRED_METAMER], verdict, sizeof verdict);
    *changed = strcmp(verdict, row->f[COL_VERDICT]) != 0;
    row_set_judgement(row, ns, passed, verdict);
    return 0;
}

/* DIR/<stage dir>/<clip>_s<seed>.row.csv, from the row's WAV path. */
static char *row_file(const char *dir, const Row *row) {
    const char *wav = row->f[COL_PATH];
    size_t n = strlen(wav);
    char *rel = xmalloc(n + 16);
    memcpy(rel, wav, n + 1);
    if (n > 4 && strcmp(rel + n - 4, ".wav") == 0) rel[n - 4] = 0;
    strcat(rel, ".row.csv");
    char *p = synth_join(dir, rel);
    free(rel);
    return p;
}

static int judge_folder(const char *dir, const char *model, const char *null_arg, bool pooled, Error *err) {
    Network net;
    if (network_open(&net, model, err) != 0) return -1;
    char sha[65];
    char *null_path = null_arg ? xstrdup(null_arg) : synth_null_default_path(model);
    if (!null_path) null_path = synth_join(dir, "null.safetensors");
    NullDist null = {0};
    Row *rows = NULL;
    int n = 0, was = 0, now = 0, changed = 0;
    bool stale = false;
    int rc = synth_model_sha256(&net, model, sha, err);
    if (rc == 0) rc = synth_null_load(null_path, sha, &null, &stale, err);
    if (rc == 0 && (stale || null.n_stages == 0))
        rc = error_set(err, "%s: %s", null_path, stale ? "made for another version of the model" : "no null distribution");
    if (rc == 0) rc = rows_scan_dir(dir, &rows, &n, err);
    if (rc == 0 && n == 0) rc = error_set(err, "%s: no metamers (no <stage>/*.row.csv files)", dir);
    for (int i = 0; i < n && rc == 0; i++) {
        if (strcmp(rows[i].f[COL_MODEL_SHA], sha) != 0) {
            rc = error_set(err, "%s: %s was made with another model (sha256 %.12s..., not %.12s...)", dir,
                           rows[i].f[COL_PATH], rows[i].f[COL_MODEL_SHA], sha);
            break;
        }
        bool moved;
        was += !strcmp(rows[i].f[COL_PASSED], "true");
        rc = judge_row(&net, &null, null_path, pooled, &rows[i], &moved, err);
        if (rc == 0) { /* the null columns change even when the verdict does not */
            char *p = row_file(dir, &rows[i]);
            rc = rows_write_csv(p, &rows[i], 1, err);
            free(p);
            changed += moved;
        }
        now += rc == 0 && !strcmp(rows[i].f[COL_PASSED], "true");
    }
    if (rc == 0) rc = rows_write_folder(dir, rows, n, stdout, err);
    if (rc == 0)
        printf("%s: %d metamers judged with %s: %d passed (before: %d), %d verdicts changed\n", dir, n,
               null_path, now, was, changed);
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    free(rows);
    synth_null_free(&null);
    free(null_path);
    network_free(&net);
    return rc;
}

int synth_judge(int argc, char **argv) {
    const char *dir = NULL, *model = NULL, *null_path = NULL;
    bool pooled = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--null") && i + 1 < argc) null_path = argv[++i];
        else if (!strcmp(argv[i], "--null-pooled")) pooled = true;
        else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "metamers synth judge: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        } else dir = argv[i];
    }
    if (!dir || !model) {
        fprintf(stderr, "metamers synth judge: %s (see --help)\n", !dir ? "no folder given" : "--model is required");
        return 2;
    }
    Error err = {0};
    if (judge_folder(dir, model, null_path, pooled, &err) != 0) {
        fprintf(stderr, "metamers synth judge: %s\n", err.msg);
        return 1;
    }
    return 0;
}
