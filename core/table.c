/* CSV/TSV tables with a header row, read through libcsv with exact line
 * numbers (see core.h for what is accepted).
 *
 * libcsv reports fields and record ends but not where they are, so the file
 * is fed one physical line at a time: a record starts on the line being fed
 * when the parser is between records before it (libcsv's public pstate field
 * is 0, ROW_NOT_BEGUN, in libcsv 3.0); blank lines leave it there. That keeps
 * "file:line" right even when a quoted field spans lines, and costs nothing
 * measurable (100k-line logs parse in milliseconds). Strict mode turns
 * malformed quoting into an error instead of a silently merged field.
 *
 * table_read streams records to a callback without a copy per field (the
 * analysis reads 100k-trial logs this way); table_load collects them into a
 * Table through the same reader. */
#include <csv.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Room for `need` elements of `size` bytes at p, `used` of them kept;
 * the capacity doubles from `first`. */
static void *grow(void *p, size_t used, size_t need, size_t *cap, size_t first, size_t size) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    void *q = xmalloc(c * size);
    if (used) memcpy(q, p, used * size);
    free(p);
    *cap = c;
    return q;
}

/* Field texts back to back, NUL-separated, and where each starts (offsets:
 * the text moves when it grows). */
typedef struct {
    char *text;
    size_t len, cap;
    size_t *offs;
    size_t n, cap_offs;
} Fields;

static void fields_add(Fields *f, const char *s, size_t len) {
    f->text = grow(f->text, f->len, f->len + len + 1, &f->cap, 1024, 1);
    f->offs = grow(f->offs, f->n, f->n + 1, &f->cap_offs, 32, sizeof *f->offs);
    f->offs[f->n++] = f->len;
    if (len) memcpy(f->text + f->len, s, len);
    f->len += len;
    f->text[f->len++] = 0;
}

static void fields_free(Fields *f) {
    free(f->text);
    free(f->offs);
    *f = (Fields){0};
}

typedef struct {
    const char *path;
    int flags;
    TableRowFn fn;
    void *ctx;
    Error *err;
    Fields rec; /* the record being assembled */
    char **ptrs;
    size_t cap_ptrs;
    long line, record_line;
    int n_header; /* fields in the header, 0 before it */
    int failed;
} Reader;

static void on_field(void *data, size_t len, void *ctx) {
    Reader *r = ctx;
    if (!r->failed) fields_add(&r->rec, data, len);
}

/* A record of one empty field under a wider header: a line holding only
 * "", not data. (libcsv itself skips empty and all-blank lines.) */
static int is_blank_record(const Reader *r) {
    return r->n_header > 1 && r->rec.n == 1 && r->rec.text[0] == 0;
}

/* Brings a data record to the header's width: TABLE_RAGGED pads and
 * truncates; otherwise a different width is an error. */
static int fit_width(Reader *r) {
    size_t want = (size_t)r->n_header;
    if (r->rec.n == want) return 0;
    if (!(r->flags & TABLE_RAGGED))
        return error_set(r->err, "%s:%ld: %zu fields, the header has %d", r->path,
                         r->record_line, r->rec.n, r->n_header);
    while (r->rec.n < want) fields_add(&r->rec, "", 0);
    r->rec.n = want;
    return 0;
}

static void deliver(Reader *r) {
    bool header = r->n_header == 0;
    if (!header && is_blank_record(r)) return;
    if (!header && fit_width(r) != 0) {
        r->failed = 1;
        return;
    }
    if (header) r->n_header = (int)r->rec.n;
    r->ptrs = grow(r->ptrs, 0, r->rec.n, &r->cap_ptrs, 32, sizeof *r->ptrs);
    for (size_t i = 0; i < r->rec.n; i++) r->ptrs[i] = r->rec.text + r->rec.offs[i];
    TableRow row = {r->path, r->record_line, (int)r->rec.n, r->ptrs};
    if (r->fn(r->ctx, &row, header, r->err) != 0) {
        error_prefix(r->err, "%s:%ld", r->path, r->record_line);
        r->failed = 1;
    }
}

static void on_record(int term, void *ctx) {
    (void)term;
    Reader *r = ctx;
    if (!r->failed) deliver(r);
    r->rec.n = 0;
    r->rec.len = 0;
}

static int parse_error(const Reader *r, struct csv_parser *p) {
    if (csv_error(p) == CSV_EPARSE)
        return error_set(r->err,
                         "%s:%ld: malformed quoting (a quote inside an unquoted field, or "
                         "text after a closing quote)",
                         r->path, r->line);
    return error_set(r->err, "%s:%ld: %s", r->path, r->line, csv_strerror(csv_error(p)));
}

static int feed_lines(Reader *r, struct csv_parser *p, const char *data, size_t size) {
    size_t pos = 0;
    /* A UTF-8 byte-order mark (spreadsheet exports) is not part of the first name. */
    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    for (r->line = 1; pos < size; r->line++) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) + 1 : size;
        if (p->pstate == 0) r->record_line = r->line; /* ROW_NOT_BEGUN */
        if (csv_parse(p, data + pos, end - pos, on_field, on_record, r) != end - pos)
            return parse_error(r, p);
        if (r->failed) return -1;
        pos = end;
    }
    r->line--;
    return 0;
}

static int scan(const char *path, char delim, int flags, TableRowFn fn, void *ctx, Error *err) {
    char *data = NULL;
    size_t size = 0;
    if (read_file(path, &data, &size, err) != 0) return -1;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        free(data);
        return error_set(err, "%s: cannot initialise the CSV parser", path);
    }
    csv_set_delim(&p, (unsigned char)delim);
    Reader r = {.path = path, .flags = flags, .fn = fn, .ctx = ctx, .err = err};
    int rc = feed_lines(&r, &p, data, size);
    if (rc == 0) {
        if (csv_fini(&p, on_field, on_record, &r) != 0)
            rc = error_set(err, "%s:%ld: unterminated quoted field", path, r.record_line);
        else if (r.failed)
            rc = -1;
        else if (r.n_header == 0)
            rc = error_set(err, "%s: empty file (no header row)", path);
    }
    csv_free(&p);
    free(data);
    fields_free(&r.rec);
    free(r.ptrs);
    return rc;
}

int table_read(const char *path, char delim, TableRowFn fn, void *ctx, Error *err) {
    return scan(path, delim, 0, fn, ctx, err);
}

int table_col(const TableRow *header, const char *name) {
    for (int i = 0; i < header->n; i++)
        if (strcmp(header->fields[i], name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------- whole tables */

/* Collects records for table_load: every field's text in one buffer. */
typedef struct {
    Table *t;
    Fields all; /* the header's fields, then each row's */
    size_t cap_rows;
} Collector;

static int collect_row(void *ctx, const TableRow *row, bool header, Error *err) {
    (void)err;
    Collector *c = ctx;
    Table *t = c->t;
    if (header) {
        t->n_cols = row->n;
    } else {
        t->lines = grow(t->lines, (size_t)t->n_rows, (size_t)t->n_rows + 1, &c->cap_rows, 64,
                        sizeof *t->lines);
        t->lines[t->n_rows++] = row->line;
    }
    for (int i = 0; i < row->n; i++) fields_add(&c->all, row->fields[i], strlen(row->fields[i]));
    return 0;
}

/* Turns the collected offsets into the header and row pointers; the table
 * takes over the text. */
static void finish_table(Table *t, Collector *c) {
    t->text = c->all.text;
    t->cells = xmalloc(c->all.n * sizeof *t->cells);
    for (size_t i = 0; i < c->all.n; i++) t->cells[i] = t->text + c->all.offs[i];
    t->header = t->cells;
    t->rows = xmalloc((size_t)t->n_rows * sizeof *t->rows);
    for (int r = 0; r < t->n_rows; r++) t->rows[r] = t->cells + (size_t)(r + 1) * t->n_cols;
    free(c->all.offs);
}

int table_load(const char *path, char delim, int flags, Table *t, Error *err) {
    memset(t, 0, sizeof *t);
    Collector c = {.t = t};
    if (scan(path, delim, flags, collect_row, &c, err) != 0) {
        fields_free(&c.all);
        table_free(t);
        return -1;
    }
    t->path = xstrdup(path);
    finish_table(t, &c);
    return 0;
}

void table_free(Table *t) {
    free(t->path);
    free(t->rows);
    free(t->cells);
    free(t->text);
    free(t->lines);
    memset(t, 0, sizeof *t);
}

int table_column(const Table *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++)
        if (strcmp(t->header[c], name) == 0) return c;
    return -1;
}

const char *table_cell(const Table *t, int row, int col) {
    return col < 0 ? "" : t->rows[row][col];
}

/* ------------------------------------------------------------ writing */

bool table_field_needs_quotes(const char *s) {
    size_t n = strlen(s);
    if (n && (strchr(" \t", s[0]) || strchr(" \t", s[n - 1]))) return true;
    return strpbrk(s, ",\"\r\n") != NULL;
}

void table_write_field(FILE *f, const char *s) {
    if (table_field_needs_quotes(s))
        csv_fwrite(f, s, strlen(s));
    else
        fputs(s, f);
}
