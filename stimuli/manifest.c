/* Manifest CSV: the manifest's column and value checks on top of core's
 * table reader (errors read "file:line: problem"), and its writer. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stim_internal.h"

const char *const manifest_columns[MANIFEST_N_COLUMNS] = {
    "clip_id", "path", "task", "label", "source", "speaker_or_style",
    "snr_db",  "noise", "split", "seed"};

/* ------------------------------------------------------------- manifest */

/* No dir yet (NULL reads as "."): manifest_read initializes again, so an
 * allocation here would leak. */
void manifest_init(Manifest *m) { memset(m, 0, sizeof *m); }

void manifest_row_free(ManifestRow *r) {
    free(r->clip_id), free(r->path), free(r->task), free(r->label);
    free(r->source), free(r->speaker_or_style), free(r->noise), free(r->split);
    memset(r, 0, sizeof *r);
}

void manifest_free(Manifest *m) {
    for (int i = 0; i < m->n; i++) manifest_row_free(&m->rows[i]);
    free(m->rows);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

void manifest_add(Manifest *m, const ManifestRow *row) {
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        ManifestRow *grown = xmalloc((size_t)m->cap * sizeof *grown);
        if (m->n) memcpy(grown, m->rows, (size_t)m->n * sizeof *grown);
        free(m->rows);
        m->rows = grown;
    }
    ManifestRow *r = &m->rows[m->n++];
    r->clip_id = xstrdup(row->clip_id);
    r->path = xstrdup(row->path);
    r->task = xstrdup(row->task);
    r->label = xstrdup(row->label);
    r->source = xstrdup(row->source);
    r->speaker_or_style = xstrdup(row->speaker_or_style);
    r->noise = xstrdup(row->noise);
    r->split = xstrdup(row->split);
    r->snr_db = row->snr_db;
    r->seed = row->seed;
}

int manifest_find(const Manifest *m, const char *clip_id) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->rows[i].clip_id, clip_id) == 0) return i;
    return -1;
}

char *manifest_clip_path(const Manifest *m, const ManifestRow *row) {
    if (row->path[0] == '/' || !m->dir || strcmp(m->dir, ".") == 0) return xstrdup(row->path);
    size_t n = strlen(m->dir) + strlen(row->path) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", m->dir, row->path);
    return p;
}

int manifest_row_equal(const ManifestRow *a, const ManifestRow *b) {
    int same_snr = (isinf(a->snr_db) && isinf(b->snr_db)) || a->snr_db == b->snr_db;
    return same_snr && a->seed == b->seed && !strcmp(a->clip_id, b->clip_id) &&
           !strcmp(a->path, b->path) && !strcmp(a->task, b->task) &&
           !strcmp(a->label, b->label) && !strcmp(a->source, b->source) &&
           !strcmp(a->speaker_or_style, b->speaker_or_style) &&
           !strcmp(a->noise, b->noise) && !strcmp(a->split, b->split);
}

void manifest_format_snr(double snr_db, char *buf, size_t size) {
    if (isinf(snr_db)) {
        snprintf(buf, size, "inf");
        return;
    }
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, snr_db);
        if (strtod(buf, NULL) == snr_db) return;
    }
}

static int valid_clip_id(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return 0;
    return 1;
}

static int parse_snr(const char *s, double *out) {
    if (!*s || strcmp(s, "inf") == 0 || strcmp(s, "Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_seed(const char *s, int64_t *out) {
    if (!*s) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < 0) return -1;
    *out = v;
    return 0;
}

/* Maps the header to manifest_columns order: exactly these ten names. */
static int map_columns(const Table *t, int col[MANIFEST_N_COLUMNS], Error *err) {
    for (int c = 0; c < t->n_cols; c++) {
        int known = 0;
        for (int k = 0; k < MANIFEST_N_COLUMNS; k++) known |= !strcmp(t->header[c], manifest_columns[k]);
        if (!known) return error_set(err, "%s:1: unknown column '%s'", t->path, t->header[c]);
        for (int d = 0; d < c; d++)
            if (!strcmp(t->header[c], t->header[d]))
                return error_set(err, "%s:1: column '%s' appears twice", t->path, t->header[c]);
    }
    for (int k = 0; k < MANIFEST_N_COLUMNS; k++)
        if ((col[k] = table_column(t, manifest_columns[k])) < 0)
            return error_set(err, "%s:1: missing column '%s'", t->path, manifest_columns[k]);
    return 0;
}

static int check_row(const Table *t, int r, const int col[], ManifestRow *row, Error *err) {
    char **f = t->rows[r];
    long line = t->lines[r];
    const char *id = f[col[0]];
    if (!valid_clip_id(id))
        return error_set(err, "%s:%ld: clip_id '%s' is empty or has characters other than "
                         "letters, digits, '.', '_', '-'", t->path, line, id);
    const int required[] = {1, 2, 3, 8}; /* path, task, label, split */
    for (int i = 0; i < 4; i++)
        if (!f[col[required[i]]][0])
            return error_set(err, "%s:%ld: empty %s", t->path, line, manifest_columns[required[i]]);
    if (parse_snr(f[col[6]], &row->snr_db) != 0)
        return error_set(err, "%s:%ld: snr_db '%s' is not a number or \"inf\"", t->path, line,
                         f[col[6]]);
    if (parse_seed(f[col[9]], &row->seed) != 0)
        return error_set(err, "%s:%ld: seed '%s' is not a non-negative integer", t->path, line,
                         f[col[9]]);
    return 0;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    char *d = xmalloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = 0;
    return d;
}

int manifest_read(const char *path, Manifest *m, Error *err) {
    manifest_init(m);
    Table t;
    if (table_load(path, ',', 0, &t, err) != 0) return manifest_free(m), -1;
    int col[MANIFEST_N_COLUMNS];
    int rc = map_columns(&t, col, err);
    for (int r = 0; rc == 0 && r < t.n_rows; r++) {
        ManifestRow row = {0};
        if ((rc = check_row(&t, r, col, &row, err)) != 0) break;
        char **f = t.rows[r];
        row.clip_id = f[col[0]], row.path = f[col[1]], row.task = f[col[2]];
        row.label = f[col[3]], row.source = f[col[4]], row.speaker_or_style = f[col[5]];
        row.noise = f[col[7]], row.split = f[col[8]];
        if (manifest_find(m, row.clip_id) >= 0) {
            rc = error_set(err, "%s:%ld: clip_id '%s' appears twice", path, t.lines[r],
                           row.clip_id);
            break;
        }
        manifest_add(m, &row);
    }
    if (rc == 0) rc = manifest_check_paths(m, path, err);
    if (rc == 0) {
        free(m->dir);
        m->dir = dir_of(path);
    } else {
        manifest_free(m);
    }
    table_free(&t);
    return rc;
}

int manifest_write(const char *path, const Manifest *m, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    for (int k = 0; k < MANIFEST_N_COLUMNS; k++)
        fprintf(af.f, "%s%s", manifest_columns[k], k + 1 < MANIFEST_N_COLUMNS ? "," : "\n");
    for (int i = 0; i < m->n; i++) {
        const ManifestRow *r = &m->rows[i];
        char snr[64], seed[32] = "";
        manifest_format_snr(r->snr_db, snr, sizeof snr);
        if (r->seed >= 0) snprintf(seed, sizeof seed, "%lld", (long long)r->seed);
        const char *f[MANIFEST_N_COLUMNS] = {r->clip_id, r->path,  r->task,  r->label,
                                             r->source,  r->speaker_or_style, snr,
                                             r->noise,   r->split, seed};
        for (int k = 0; k < MANIFEST_N_COLUMNS; k++) {
            table_write_field(af.f, f[k]);
            fputc(k + 1 < MANIFEST_N_COLUMNS ? ',' : '\n', af.f);
        }
    }
    return atomic_commit(&af, err);
}
