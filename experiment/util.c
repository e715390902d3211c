/* Small tools of the experiment module: a stateless-derivable RNG, paths,
 * wall-clock timestamps, SHA-256 and a libcsv table reader. */
#include <csv.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "internal.h"

/* ------------------------------------------------------------------ rng */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void exprng_seed(ExpRng *r, uint64_t a, uint64_t b, uint64_t c) {
    r->s = mix(mix(mix(a + 0x9E3779B97F4A7C15ull) ^ b) + c);
}

uint64_t exprng_next(ExpRng *r) { return mix(r->s += 0x9E3779B97F4A7C15ull); }

uint64_t exprng_below(ExpRng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t threshold = -n % n, x; /* rejection keeps it unbiased */
    do x = exprng_next(r);
    while (x < threshold);
    return x % n;
}

double exprng_uniform(ExpRng *r) { return (double)(exprng_next(r) >> 11) * 0x1.0p-53; }

double exprng_normal(ExpRng *r) {
    double u1 = exprng_uniform(r), u2 = exprng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

void exprng_shuffle(ExpRng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)exprng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- paths */

char *exp_path_dir(const char *path) {
    char *copy = xstrdup(path);
    char *d = xstrdup(dirname(copy));
    free(copy);
    return d;
}

char *exp_path_join(const char *dir, const char *rel) {
    if (rel[0] == '/' || !dir || !*dir || strcmp(dir, ".") == 0) return xstrdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

void exp_iso8601_now(char out[40], double offset_s) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double t = (double)tv.tv_sec + tv.tv_usec * 1e-6 + offset_s;
    time_t sec = (time_t)floor(t);
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms > 999) ms = 999;
    struct tm tm;
    localtime_r(&sec, &tm);
    char date[32], zone[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm); /* +0200 -> +02:00 (ISO 8601) */
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.%03d%.3s:%.2s", date, ms, zone, zone + 3);
    size_t len = strlen(tmp) < 39 ? strlen(tmp) : 39;
    memcpy(out, tmp, len);
    out[len] = 0;
}

/* ------------------------------------------------------------------ CSV */

typedef struct {
    CsvTable *t;
    char **row;
    int nrow, caprow;
    int cap_cells;
    int header_done;
} CsvBuild;

static void csv_field(void *s, size_t len, void *vb) {
    CsvBuild *b = vb;
    if (b->nrow == b->caprow) {
        b->caprow = b->caprow ? 2 * b->caprow : 16;
        b->row = realloc(b->row, sizeof(char *) * b->caprow);
        if (!b->row) abort();
    }
    char *f = xmalloc(len + 1);
    if (len) memcpy(f, s, len);
    f[len] = 0;
    b->row[b->nrow++] = f;
}

static void csv_row_end(int c, void *vb) {
    (void)c;
    CsvBuild *b = vb;
    CsvTable *t = b->t;
    if (!b->header_done) {
        t->cols = b->row;
        t->ncols = b->nrow;
        b->row = NULL;
        b->nrow = b->caprow = 0;
        b->header_done = 1;
        return;
    }
    if (b->nrow == 1 && b->row[0][0] == 0 && t->ncols > 1) { /* blank line */
        free(b->row[0]);
        b->nrow = 0;
        return;
    }
    size_t need = (size_t)(t->nrows + 1) * t->ncols;
    if ((int)need > b->cap_cells) {
        b->cap_cells = (int)need * 2;
        t->cells = realloc(t->cells, sizeof(char *) * b->cap_cells);
        if (!t->cells) abort();
    }
    for (int c2 = 0; c2 < t->ncols; c2++)
        t->cells[(size_t)t->nrows * t->ncols + c2] = c2 < b->nrow ? b->row[c2] : xstrdup("");
    for (int c2 = t->ncols; c2 < b->nrow; c2++) free(b->row[c2]);
    t->nrows++;
    b->nrow = 0;
}

int exp_csv_table_read(const char *path, CsvTable *t, Error *err) {
    memset(t, 0, sizeof *t);
    char *data = NULL;
    size_t size = 0;
    if (read_file(path, &data, &size, err) != 0) return -1;
    struct csv_parser p;
    csv_init(&p, CSV_APPEND_NULL);
    CsvBuild b = {.t = t};
    int rc = 0;
    if (csv_parse(&p, data, size, csv_field, csv_row_end, &b) != size ||
        csv_fini(&p, csv_field, csv_row_end, &b) != 0) {
        rc = error_set(err, "%s: malformed CSV: %s", path, csv_strerror(csv_error(&p)));
    }
    csv_free(&p);
    free(data);
    for (int i = 0; i < b.nrow; i++) free(b.row[i]);
    free(b.row);
    if (rc == 0 && t->ncols == 0) rc = error_set(err, "%s: empty CSV (no header)", path);
    for (int c = 0; rc == 0 && c < t->ncols; c++) { /* tolerate a UTF-8 BOM and spaces */
        char *h = t->cols[c];
        if ((unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB)
            memmove(h, h + 3, strlen(h + 3) + 1);
        while (*h == ' ') memmove(h, h + 1, strlen(h));
    }
    if (rc != 0) exp_csv_table_free(t);
    return rc;
}

void exp_csv_table_free(CsvTable *t) {
    for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++) free(t->cells[i]);
    for (int c = 0; c < t->ncols; c++) free(t->cols[c]);
    free(t->cells);
    free(t->cols);
    memset(t, 0, sizeof *t);
}

int exp_csv_col(const CsvTable *t, const char *name) {
    for (int c = 0; c < t->ncols; c++)
        if (strcmp(t->cols[c], name) == 0) return c;
    return -1;
}

const char *exp_csv_cell(const CsvTable *t, int row, int col) {
    return col < 0 ? "" : t->cells[(size_t)row * t->ncols + col];
}
