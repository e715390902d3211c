/* Per-participant trial lists (TSV, one row per trial in presentation
 * order) and the build.json beside them. The list is the contract between
 * `experiment build` and `experiment run`: run plays exactly these rows in
 * this order and checks its log against them when resuming. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const LIST_COLUMNS[] = {"trial",      "block",         "phase", "condition",
                                           "clip_id",    "stimulus_path", "stage", "model",
                                           "true_label", "metamer_seed"};
#define N_LIST_COLUMNS 10

void exp_trials_add(TrialList *l, int block, const char *phase, const char *condition,
                    const char *clip_id, const char *path, const char *stage, const char *model,
                    const char *label, int seed) {
    l->rows = realloc(l->rows, sizeof(ExpTrial) * (l->n + 1));
    if (!l->rows) abort();
    ExpTrial *t = &l->rows[l->n];
    t->trial = ++l->n;
    t->block = block;
    t->phase = xstrdup(phase);
    t->condition = xstrdup(condition);
    t->clip_id = xstrdup(clip_id);
    t->stimulus_path = xstrdup(path);
    t->stage = xstrdup(stage ? stage : EXP_NA);
    t->model = xstrdup(model ? model : EXP_NA);
    t->true_label = xstrdup(label);
    t->metamer_seed = seed;
}

void exp_trials_free(TrialList *l) {
    for (int i = 0; i < l->n; i++) {
        ExpTrial *t = &l->rows[i];
        free((char *)t->phase), free((char *)t->condition), free((char *)t->clip_id);
        free((char *)t->stimulus_path), free((char *)t->stage), free((char *)t->model);
        free((char *)t->true_label);
    }
    free(l->rows);
    memset(l, 0, sizeof *l);
}

char *exp_trials_to_tsv(const TrialList *l) {
    size_t cap = 4096, len = 0;
    char *out = xmalloc(cap);
    for (int c = 0; c < N_LIST_COLUMNS; c++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", c ? "\t" : "", LIST_COLUMNS[c]);
    out[len++] = '\n';
    for (int i = 0; i < l->n; i++) {
        const ExpTrial *t = &l->rows[i];
        size_t need = strlen(t->condition) + strlen(t->clip_id) + strlen(t->stimulus_path) +
                      strlen(t->stage) + strlen(t->model) + strlen(t->true_label) + 128;
        if (len + need >= cap) {
            cap = 2 * cap + need;
            out = realloc(out, cap);
            if (!out) abort();
        }
        char seed[16];
        if (t->metamer_seed < 0)
            snprintf(seed, sizeof seed, EXP_NA);
        else
            snprintf(seed, sizeof seed, "%d", t->metamer_seed);
        len += (size_t)snprintf(out + len, cap - len, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
                                t->trial, t->block, t->phase, t->condition, t->clip_id,
                                t->stimulus_path, t->stage, t->model, t->true_label, seed);
    }
    out[len] = 0;
    return out;
}

static int valid_phase(const char *p) {
    return strcmp(p, "practice") == 0 || strcmp(p, "practice_scored") == 0 ||
           strcmp(p, "main") == 0;
}

/* A whole field of digits in [0, max], else -1 (strtol alone would take
 * "12abc" or wrap a 40-digit number into a negative int). */
static long parse_count(const char *s, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return *s && !*end && !errno && v >= 0 && v <= max ? v : -1;
}

int exp_trials_parse(char *text, const char *path, TrialList *l, Error *err) {
    memset(l, 0, sizeof *l);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    char *f[N_LIST_COLUMNS + 1];
    if (!line || subjects_tsv_split(line, f, N_LIST_COLUMNS + 1) != N_LIST_COLUMNS)
        return error_set(err, "%s: not a trial list (header)", path);
    for (int c = 0; c < N_LIST_COLUMNS; c++)
        if (strcmp(f[c], LIST_COLUMNS[c]) != 0)
            return error_set(err, "%s: column %d is \"%s\", expected \"%s\"", path, c + 1, f[c],
                             LIST_COLUMNS[c]);
    int lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        int n = subjects_tsv_split(line, f, N_LIST_COLUMNS + 1);
        long trial = n == N_LIST_COLUMNS ? parse_count(f[0], INT_MAX) : -1;
        long block = n == N_LIST_COLUMNS ? parse_count(f[1], INT_MAX) : -1;
        long seed = n == N_LIST_COLUMNS && strcmp(f[9], EXP_NA) ? parse_count(f[9], INT_MAX) : -1;
        if (n != N_LIST_COLUMNS || trial != l->n + 1 || block < 0 || !valid_phase(f[2]) ||
            (seed < 0 && strcmp(f[9], EXP_NA))) {
            int want = l->n + 1;
            exp_trials_free(l);
            return error_set(err, "%s:%d: malformed row (expected trial %d)", path, lineno, want);
        }
        /* Stimulus paths are relative to the design's folder and stay in it. */
        if (path_check_inside(f[5], "the design's folder", err) != 0) {
            exp_trials_free(l);
            return error_prefix(err, "%s:%d", path, lineno);
        }
        exp_trials_add(l, (int)block, f[2], f[3], f[4], f[5], f[6], f[7], f[8], (int)seed);
    }
    if (l->n == 0) return error_set(err, "%s: the trial list is empty", path);
    return 0;
}

int exp_trials_read(const char *path, TrialList *l, Error *err) {
    char *data = NULL;
    size_t size = 0;
    memset(l, 0, sizeof *l);
    if (read_file(path, &data, &size, err) != 0) return -1;
    char sha[65];
    sha256_hex(data, size, sha);
    int rc = exp_trials_parse(data, path, l, err);
    free(data);
    if (rc == 0) memcpy(l->sha256, sha, sizeof sha);
    return rc;
}

void exp_trials_list_path(char *out, size_t cap, const char *lists_dir, const char *id) {
    snprintf(out, cap, "%s/sub-%s_trials.tsv", lists_dir, id);
}

char *exp_default_lists_dir(const char *design_path) {
    size_t n = strlen(design_path);
    char *out = xmalloc(n + 16);
    memcpy(out, design_path, n + 1);
    if (n > 5 && strcmp(out + n - 5, ".json") == 0) out[n - 5] = 0;
    strcat(out, "_trials");
    return out;
}

int exp_buildinfo_read(const char *lists_dir, BuildInfo *b, Error *err) {
    memset(b, 0, sizeof *b);
    char path[4096];
    snprintf(path, sizeof path, "%s/build.json", lists_dir);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return error_set(err, "%s: %s (run `metamers experiment build` first)", path, je.text);
    json_t *sha = json_object_get(root, "design_sha256");
    json_t *np = json_object_get(root, "participants");
    json_t *voc = json_object_get(root, "vocabulary");
    int rc = 0;
    if (!json_is_string(sha) || json_string_length(sha) != 64 || !json_is_integer(np) ||
        !json_is_array(voc) || json_array_size(voc) == 0) {
        rc = error_set(err, "%s: missing design_sha256, participants or vocabulary", path);
    } else {
        memcpy(b->design_sha256, json_string_value(sha), 65);
        b->participants = (int)json_integer_value(np);
        b->vocab = xcalloc(json_array_size(voc), sizeof(char *));
        for (size_t i = 0; i < json_array_size(voc) && rc == 0; i++) {
            const char *w = json_string_value(json_array_get(voc, i));
            if (!w)
                rc = error_set(err, "%s: vocabulary must hold strings", path);
            else
                b->vocab[b->n_vocab++] = xstrdup(w);
        }
    }
    json_decref(root);
    if (rc) exp_buildinfo_free(b);
    return rc;
}

void exp_buildinfo_free(BuildInfo *b) {
    for (int i = 0; i < b->n_vocab; i++) free(b->vocab[i]);
    free(b->vocab);
    memset(b, 0, sizeof *b);
}
