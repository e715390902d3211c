/* Helpers of the analysis tests (analysis_fixture.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_fixture.h"

const char *const test_genres[TEST_GENRES] = {"blues", "classical", "country", "disco", "hiphop",
                                              "jazz"};

void write_text(TestCtx *t, const char *path, const char *text) {
    Error err = {{0}};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0, make_dirs(dir, 0755, &err);
    if (atomic_write_file(path, text, strlen(text), 0644, &err) != 0)
        test_fail(t, __FILE__, __LINE__, "write %s: %s", path, err.msg);
}

char *join(const char *dir, const char *name) {
    static char bufs[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(bufs[k], sizeof bufs[k], "%s/%s", dir, name);
    return bufs[k];
}

/* One cell of a CSV output: the row whose column key_col equals key. */
typedef struct {
    const char *key_col, *key, *col;
    int ki, ci;
    char value[256];
    bool found;
} Lookup;

static int lookup_row(void *ctx, const TableRow *row, bool header, Error *err) {
    (void)err;
    Lookup *l = ctx;
    if (header) {
        l->ki = table_col(row, l->key_col);
        l->ci = table_col(row, l->col);
        return 0;
    }
    if (l->ki >= 0 && l->ci >= 0 && !l->found && strcmp(row->fields[l->ki], l->key) == 0) {
        snprintf(l->value, sizeof l->value, "%s", row->fields[l->ci]);
        l->found = true;
    }
    return 0;
}

const char *csv_text(TestCtx *t, const char *path, const char *key_col, const char *key,
                            const char *col) {
    static Lookup l;
    l = (Lookup){key_col, key, col, -1, -1, "", false};
    Error err = {{0}};
    if (table_read(path, ',', lookup_row, &l, &err) != 0 || !l.found) {
        test_fail(t, __FILE__, __LINE__, "%s: no %s for %s=%s (%s)", path, col, key_col, key,
                  err.msg);
        return "";
    }
    return l.value;
}

double csv_value(TestCtx *t, const char *path, const char *key_col, const char *key,
                        const char *col) {
    const char *v = csv_text(t, path, key_col, key, col);
    return !v[0] || strcmp(v, "NaN") == 0 ? NAN : atof(v);
}

QuickPaths quick_paths;

AnalysisOptions quick_options(const char *dir, const char **globs) {
    AnalysisOptions o;
    analysis_options_default(&o);
    snprintf(quick_paths.glob, sizeof quick_paths.glob, "%s/subjects/sub-*/beh/*_beh.tsv", dir);
    snprintf(quick_paths.participants, sizeof quick_paths.participants, "%s/participants.tsv", dir);
    snprintf(quick_paths.model, sizeof quick_paths.model, "%s/model.csv", dir);
    snprintf(quick_paths.metamers, sizeof quick_paths.metamers, "%s/metamers.csv", dir);
    snprintf(quick_paths.out, sizeof quick_paths.out, "%s/report", dir);
    globs[0] = quick_paths.glob;
    o.trial_globs = globs;
    o.n_trial_globs = 1;
    o.participants = quick_paths.participants;
    o.model_responses = quick_paths.model;
    o.out = quick_paths.out;
    o.bootstrap = 1000;
    o.permutations = 2000;
    o.splits = 200;
    return o;
}

void append(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}
