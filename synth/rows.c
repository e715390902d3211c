/* metamers.csv: one row per metamer, and `metamers synth merge`.
 *
 * Each finished metamer has its own one-row CSV next to its WAV
 * (<out>/<stage dir>/<clip>_s<seed>.row.csv), written last and atomically:
 * it marks the job done. metamers.csv is rebuilt from these files, so runs
 * that were killed, sharded or repeated with other stages all end up with
 * one consistent table; merge copies other folders' metamers in first. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

const char *const row_columns[ROW_N_COLUMNS] = {
    "clip_id", "task", "stage", "stage_index", "seed", "start", "preset", "optimizer", "iterations",
    "seconds", "final_loss", "spearman", "pearson", "snr_db", "null_spearman_max",
    "null_pearson_max", "null_snr_db_max", "null_pairs", "null_entry", "passed", "verdict", "label",
    "natural_prediction", "metamer_prediction", "model", "model_sha256", "path", "loss_curve"};

void row_free(Row *r) {
    for (int c = 0; c < ROW_N_COLUMNS; c++) free(r->f[c]);
    memset(r, 0, sizeof *r);
}

void row_write_header(FILE *f) {
    for (int c = 0; c < ROW_N_COLUMNS; c++) fprintf(f, "%s%s", c ? "," : "", row_columns[c]);
    fputc('\n', f);
}

void row_write(FILE *f, const Row *r) {
    for (int c = 0; c < ROW_N_COLUMNS; c++) {
        if (c) fputc(',', f);
        table_write_field(f, r->f[c] ? r->f[c] : "");
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------- reading */

typedef struct {
    Row **rows;
    int *n;
    int col[ROW_N_COLUMNS]; /* file column of each of row_columns */
} RowsReader;

static int read_row(void *ctx, const TableRow *row, bool header, Error *err) {
    RowsReader *r = ctx;
    if (header) {
        for (int c = 0; c < ROW_N_COLUMNS; c++)
            /* `start` came in with probing (session 12), `null_entry` with the
             * pooled null (session 22); older rows read as start 0 and entry "". */
            if ((r->col[c] = table_col(row, row_columns[c])) < 0 && c != COL_START && c != COL_NULL_ENTRY)
                return error_set(err, "no column '%s'", row_columns[c]);
        return 0;
    }
    *r->rows = realloc(*r->rows, (size_t)(*r->n + 1) * sizeof **r->rows);
    if (!*r->rows) abort();
    Row *out = &(*r->rows)[(*r->n)++];
    for (int c = 0; c < ROW_N_COLUMNS; c++)
        out->f[c] = xstrdup(r->col[c] >= 0 ? row->fields[r->col[c]] : c == COL_START ? "0" : "");
    return 0;
}

int rows_read_csv(const char *path, Row **rows, int *n, Error *err) {
    RowsReader r = {.rows = rows, .n = n};
    return table_read(path, ',', read_row, &r, err);
}

static bool ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

int rows_scan_dir(const char *dir, Row **rows, int *n, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot open folder", dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "natural") == 0) continue;
        char *sub = synth_join(dir, e->d_name);
        DIR *s = opendir(sub);
        struct dirent *f;
        while (s && rc == 0 && (f = readdir(s))) {
            if (f->d_name[0] == '.' || !ends_with(f->d_name, ".row.csv")) continue;
            char *path = synth_join(sub, f->d_name);
            rc = rows_read_csv(path, rows, n, err);
            free(path);
        }
        if (s) closedir(s);
        free(sub);
    }
    closedir(d);
    return rc;
}

static int cmp_row(const void *pa, const void *pb) {
    const Row *a = pa, *b = pb;
    int sa = atoi(a->f[COL_STAGE_INDEX]), sb = atoi(b->f[COL_STAGE_INDEX]);
    if (sa != sb) return sa < sb ? -1 : 1;
    int c = strcmp(a->f[COL_STAGE], b->f[COL_STAGE]);
    if (c) return c;
    if ((c = strcmp(a->f[COL_CLIP_ID], b->f[COL_CLIP_ID]))) return c;
    long ea = atol(a->f[COL_SEED]), eb = atol(b->f[COL_SEED]);
    return (ea > eb) - (ea < eb);
}

void rows_sort(Row *rows, int n) {
    if (n > 1) qsort(rows, (size_t)n, sizeof *rows, cmp_row);
}

int rows_write_csv(const char *path, const Row *rows, int n, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    row_write_header(af.f);
    for (int i = 0; i < n; i++) row_write(af.f, &rows[i]);
    return atomic_commit(&af, err);
}

/* ------------------------------------------------------------- summary */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int rows_summary(const char *csv_path, FILE *print, const Row *rows, int n, Error *err) {
    AtomicFile af;
    if (csv_path && atomic_open(&af, csv_path, 0644, err) != 0) return -1;
    if (csv_path) fprintf(af.f, "stage,metamers,passed,pass_rate,median_final_loss,median_iterations,median_seconds\n");
    if (print) fprintf(print, "%-24s %8s %7s %6s %12s %10s %10s\n", "stage", "metamers", "passed", "rate",
                       "median_loss", "med_steps", "med_secs");
    double *loss = xmalloc(((size_t)n + 1) * sizeof *loss), *it = xmalloc(((size_t)n + 1) * sizeof *it),
           *sec = xmalloc(((size_t)n + 1) * sizeof *sec);
    /* rows are sorted by stage: one group per run of equal stage names. */
    for (int i = 0; i < n;) {
        int j = i, passed = 0;
        while (j < n && !strcmp(rows[j].f[COL_STAGE], rows[i].f[COL_STAGE])) {
            loss[j - i] = atof(rows[j].f[COL_FINAL_LOSS]), it[j - i] = atof(rows[j].f[COL_ITERATIONS]);
            sec[j - i] = atof(rows[j].f[COL_SECONDS]);
            passed += !strcmp(rows[j].f[COL_PASSED], "true");
            j++;
        }
        int k = j - i;
        double ml = median(loss, k), mi = median(it, k), ms = median(sec, k);
        if (csv_path) {
            table_write_field(af.f, rows[i].f[COL_STAGE]);
            fprintf(af.f, ",%d,%d,%.4f,%.6g,%.0f,%.2f\n", k, passed, (double)passed / k, ml, mi, ms);
        }
        if (print) fprintf(print, "%-24s %8d %7d %5.0f%% %12.4g %10.0f %10.1f\n", rows[i].f[COL_STAGE], k, passed,
                           100.0 * passed / k, ml, mi, ms);
        i = j;
    }
    free(loss), free(it), free(sec);
    return csv_path ? atomic_commit(&af, err) : 0;
}

/* --------------------------------------------------------------- merge */

char *row_number(const char *format, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, format, v);
    return xstrdup(buf);
}

void row_set_judgement(Row *row, const NullStage *ns, bool passed, const char *verdict) {
    char *v[7] = {row_number("%.6f", ns ? ns->max_spearman : NAN), row_number("%.6f", ns ? ns->max_pearson : NAN),
                  row_number("%.4f", ns ? ns->max_snr_db : NAN), row_number("%.0f", ns ? ns->n_pairs : 0),
                  xstrdup(ns ? ns->stage : ""), xstrdup(passed ? "true" : "false"), xstrdup(verdict)};
    const int col[7] = {COL_NULL_SPEARMAN, COL_NULL_PEARSON, COL_NULL_SNR, COL_NULL_PAIRS, COL_NULL_ENTRY,
                        COL_PASSED, COL_VERDICT};
    for (int k = 0; k < 7; k++) {
        free(row->f[col[k]]);
        row->f[col[k]] = v[k];
    }
}

int rows_write_folder(const char *dir, Row *rows, int n, FILE *print, Error *err) {
    rows_sort(rows, n);
    char *csv = synth_join(dir, "metamers.csv"), *sum = synth_join(dir, "summary.csv");
    int rc = rows_write_csv(csv, rows, n, err);
    if (rc == 0) rc = rows_summary(sum, print, rows, n, err);
    free(csv), free(sum);
    return rc;
}

static bool same_key(const Row *a, const Row *b) {
    return !strcmp(a->f[COL_CLIP_ID], b->f[COL_CLIP_ID]) && !strcmp(a->f[COL_STAGE], b->f[COL_STAGE]) &&
           !strcmp(a->f[COL_SEED], b->f[COL_SEED]);
}

/* Copies <src>/<rel> to <dst>/<rel> (atomic) unless rel is empty. */
static int copy_rel(const char *src, const char *dst, const char *rel, Error *err) {
    if (!*rel) return 0;
    char *from = synth_join(src, rel), *to = synth_join(dst, rel), *dir = xstrdup(to), *data = NULL;
    size_t size = 0;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int rc = make_dirs(dir, 0755, err);
    if (rc == 0) rc = read_file(from, &data, &size, err);
    if (rc == 0) rc = atomic_write_file(to, data, size, 0644, err);
    free(data), free(from), free(to), free(dir);
    return rc;
}

static bool same_bytes(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    Error e;
    bool same = read_file(a, &x, &nx, &e) == 0 && read_file(b, &y, &ny, &e) == 0 && nx == ny &&
                memcmp(x, y, nx) == 0;
    free(x), free(y);
    return same;
}

/* Brings one row's files from src into out; 1 if copied, 0 if out already
 * had the identical metamer, -1 on conflict or I/O error. */
static int merge_row(const char *src, const char *out, const Row *r, const Row *have, int n_have,
                     Error *err) {
    for (int i = 0; i < n_have; i++) {
        if (!same_key(r, &have[i])) continue;
        char *a = synth_join(src, r->f[COL_PATH]), *b = synth_join(out, have[i].f[COL_PATH]);
        bool same = same_bytes(a, b);
        free(a), free(b);
        if (same) return 0;
        return error_set(err, "clip '%s' stage '%s' seed %s is in both %s and %s with different "
                         "waveforms",
                         r->f[COL_CLIP_ID], r->f[COL_STAGE], r->f[COL_SEED], src, out);
    }
    char dirname[256], rel[700], nat[600];
    synth_stage_dirname(r->f[COL_STAGE], dirname, sizeof dirname);
    snprintf(rel, sizeof rel, "%s/%s_s%s.row.csv", dirname, r->f[COL_CLIP_ID], r->f[COL_SEED]);
    snprintf(nat, sizeof nat, "natural/%s.wav", r->f[COL_CLIP_ID]);
    char *natp = synth_join(src, nat);
    int rc = copy_rel(src, out, r->f[COL_PATH], err);
    if (rc == 0) rc = copy_rel(src, out, r->f[COL_LOSS_CURVE], err);
    if (rc == 0 && synth_file_exists(natp)) rc = copy_rel(src, out, nat, err);
    if (rc == 0) rc = copy_rel(src, out, rel, err); /* last: marks the metamer done */
    free(natp);
    return rc == 0 ? 1 : -1;
}

static void rows_free(Row *rows, int n) {
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    free(rows);
}

int synth_merge(int argc, char **argv) {
    const char *out = NULL;
    const char **dirs = xcalloc((size_t)argc, sizeof *dirs);
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: metamers synth merge DIR... [--out OUT]\n"
                   "  Collects the metamers of synth output folders (e.g. one per --shard)\n"
                   "  into OUT (default: the first DIR) and rewrites OUT/metamers.csv.\n"
                   "  The same (clip, stage, seed) in two folders must have identical WAVs.\n");
            free(dirs);
            return 0;
        }
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "metamers synth merge: unknown option '%s'\n", argv[i]);
            free(dirs);
            return 2;
        } else dirs[n_dirs++] = argv[i];
    }
    Error err = {0};
    int rc = n_dirs ? 0 : error_set(&err, "no folder given (usage: synth merge DIR... [--out OUT])");
    if (!out) out = n_dirs ? dirs[0] : "";
    if (rc == 0) rc = make_dirs(out, 0755, &err);
    Row *have = NULL;
    int n_have = 0, copied = 0;
    if (rc == 0) rc = rows_scan_dir(out, &have, &n_have, &err);
    for (int d = 0; rc == 0 && d < n_dirs; d++) {
        if (!strcmp(dirs[d], out)) continue;
        Row *rows = NULL;
        int n = 0;
        rc = rows_scan_dir(dirs[d], &rows, &n, &err);
        for (int i = 0; rc == 0 && i < n; i++) {
            if (n_have && strcmp(rows[i].f[COL_MODEL_SHA], have[0].f[COL_MODEL_SHA]) != 0) {
                rc = error_set(&err, "%s holds metamers of another model (sha256 %.12s..., not %.12s...)",
                               dirs[d], rows[i].f[COL_MODEL_SHA], have[0].f[COL_MODEL_SHA]);
                break;
            }
            int r = merge_row(dirs[d], out, &rows[i], have, n_have, &err);
            if (r < 0) rc = -1;
            if (r == 1) { /* now part of out */
                have = realloc(have, (size_t)(n_have + 1) * sizeof *have);
                if (!have) abort();
                have[n_have++] = rows[i];
                memset(&rows[i], 0, sizeof rows[i]);
                copied++;
            }
        }
        for (int i = 0; i < n; i++)
            if (rows[i].f[0]) row_free(&rows[i]);
        free(rows);
        if (rc == 0) {
            char *js = synth_join(dirs[d], "synth.json"), *jo = synth_join(out, "synth.json");
            if (synth_file_exists(js) && !synth_file_exists(jo)) rc = copy_rel(dirs[d], out, "synth.json", &err);
            free(js), free(jo);
        }
    }
    if (rc == 0) rc = rows_write_folder(out, have, n_have, stdout, &err);
    if (rc == 0) printf("%s: %d metamers (%d copied in)\n", out, n_have, copied);
    rows_free(have, n_have);
    free(dirs);
    if (rc != 0) fprintf(stderr, "metamers synth merge: %s\n", err.msg);
    return rc == 0 ? 0 : 1;
}
