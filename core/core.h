/* core: what every module needs and nothing module-specific.
 *
 * - Error: a message buffer passed down explicitly (no errno-style globals),
 *   so the command line can print exactly one line naming the file and problem.
 * - AtomicFile: every output is written to a temp file in the same directory,
 *   fsync'ed and renamed, so a crash or a full disk never leaves half a file.
 * - safetensors reader and writer (the model and activation file format).
 * - Pool: a persistent worker pool for "parallel for" over independent tasks.
 * - CSV/TSV tables: one libcsv-based reader (streaming or whole) and writer.
 * - statistics shared by synthesis and analysis: ranks, Pearson, Spearman.
 * - small helpers: monotonic clock, checked allocation, BLAS core selection.
 */
#ifndef CORE_H
#define CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- errors */

typedef struct {
    char msg[1024];
} Error;

/* Sets the message (printf-style). Returns -1 so callers can
 * `return error_set(err, ...)`. */
int error_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "<prefix>: " (e.g. the file name). */
int error_prefix(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc that abort with a message on exhaustion: out of memory is not
 * a recoverable input error in this program. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
char *xstrdup(const char *s);
/* 64-byte aligned (AVX-512 lines); free with free(). */
float *alloc_floats(size_t n);

double now_seconds(void); /* CLOCK_MONOTONIC */

/* ----------------------------------------------------------- atomic files */

typedef struct {
    FILE *f;
    char *path;     /* final name */
    char *tmp_path; /* where bytes go until commit */
} AtomicFile;

/* Opens "<dir of path>/.<name>.tmp-XXXXXX" for writing with the given mode
 * (e.g. 0644, 0600). */
int atomic_open(AtomicFile *af, const char *path, int mode, Error *err);
/* Flushes, fsyncs, renames over path and fsyncs the directory. On any error
 * the temp file is removed and path is untouched. Always releases af. */
int atomic_commit(AtomicFile *af, Error *err);
/* Drops the temp file; path is untouched. */
void atomic_abort(AtomicFile *af);
/* Whole-buffer convenience. */
int atomic_write_file(const char *path, const void *data, size_t n, int mode, Error *err);
/* Like atomic_write_file, but never replaces an existing path (link, not
 * rename), so of several processes creating one file the first wins and the
 * others see its complete content: 0 created, 1 path already existed (the
 * temp file is dropped), -1 error. */
int atomic_create_file(const char *path, const void *data, size_t n, int mode, Error *err);
/* Reads a whole file (NUL-terminated for convenience). */
int read_file(const char *path, char **data, size_t *size, Error *err);
/* mkdir -p; mode applies to created directories. */
int make_dirs(const char *path, int mode, Error *err);

/* --------------------------------------------------------- contained paths */

/* A path read from a file (a manifest's clips, a design's manifests, a
 * metamers table's WAVs) is relative to that file's folder and must stay
 * inside it: not absolute, no ".." climbing above it (checked on the text).
 * `base` names the folder for the message, e.g. "the manifest's folder".
 * Returns 0, or -1 with "path '../x' leads out of <base> (--allow-outside
 * permits it)". */
int path_check_inside(const char *rel, const char *base, Error *err);
/* The user's choice to lift the check: `metamers --allow-outside ...` (any
 * command) or METAMERS_ALLOW_OUTSIDE=1. */
void paths_allow_outside(bool allow);
bool paths_outside_allowed(void);

/* -------------------------------------------------------------- safetensors */

#define TENSOR_MAX_DIMS 8

typedef enum {
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_F64,
    DTYPE_I64,
    DTYPE_I32,
    DTYPE_I16,
    DTYPE_I8,
    DTYPE_U8,
    DTYPE_BOOL,
} DType;

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t numel;
    size_t begin, end; /* byte offsets into the data section */
} SafetensorsEntry;

typedef struct {
    char *path;
    unsigned char *bytes; /* whole file */
    size_t size;
    size_t data_start; /* 8 + header length */
    SafetensorsEntry *entries;
    int n_entries;
    char **meta_keys, **meta_values; /* __metadata__ (string -> string) */
    int n_meta;
} Safetensors;

/* Reads and validates the whole file: header JSON, dtypes, shapes, offsets
 * (inside the file, sized numel * dtype size, no overlap, no holes). */
int safetensors_open(Safetensors *st, const char *path, Error *err);
/* Same checks on a buffer already in memory (copied); path is for messages. */
int safetensors_parse(Safetensors *st, const char *path, const void *bytes, size_t size,
                      Error *err);
void safetensors_close(Safetensors *st);
const SafetensorsEntry *safetensors_find(const Safetensors *st, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *safetensors_metadata(const Safetensors *st, const char *key);
/* Converts tensor `name` (F32/F16/BF16/F64) into dst. If shape is non-NULL the
 * stored shape must equal it (ndim dims); otherwise only numel must equal
 * ndim-free `count`. Errors name the file, tensor and the mismatch. */
int safetensors_read_f32(const Safetensors *st, const char *name, float *dst, int ndim,
                         const int64_t *shape, Error *err);
/* Allocates (alloc_floats) and converts; returns entry through *entry_out. */
int safetensors_load_f32(const Safetensors *st, const char *name, float **dst,
                         const SafetensorsEntry **entry_out, Error *err);
const char *dtype_name(DType dt);

typedef struct {
    char *name;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const float *data; /* borrowed until save */
} SafetensorsWriterTensor;

typedef struct {
    SafetensorsWriterTensor *tensors;
    int n_tensors, cap_tensors;
    char **meta_keys, **meta_values;
    int n_meta, cap_meta;
} SafetensorsWriter;

void safetensors_writer_init(SafetensorsWriter *w);
/* data is borrowed: keep it alive until safetensors_writer_save. */
int safetensors_writer_add(SafetensorsWriter *w, const char *name, int ndim,
                           const int64_t *shape, const float *data, Error *err);
int safetensors_writer_set_metadata(SafetensorsWriter *w, const char *key, const char *value,
                                    Error *err);
/* Writes F32 tensors atomically (temp file, fsync, rename). */
int safetensors_writer_save(const SafetensorsWriter *w, const char *path, Error *err);
void safetensors_writer_free(SafetensorsWriter *w);

/* -------------------------------------------------------------------- pool */

typedef struct Pool Pool;
/* nthreads counts the calling thread; nthreads <= 1 runs everything inline. */
Pool *pool_create(int nthreads);
void pool_free(Pool *pool);
int pool_size(const Pool *pool);
/* Runs fn(ctx, task, worker) for task in [0, ntasks) over the workers
 * (worker in [0, pool_size)), returns when all are done. Tasks are handed out
 * dynamically. Not reentrant: one pool_run at a time per pool. */
void pool_run(Pool *pool, void (*fn)(void *ctx, int task, int worker), void *ctx, int ntasks);
/* Number of cores to use by default: METAMERS_THREADS if set, else online CPUs. */
int default_thread_count(void);

/* --------------------------------------------------------------------- rng */

/* Seeded PRNG (xoshiro256**); state is a plain value, copyable to checkpoint. */
typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
double rng_uniform(Rng *r);              /* [0, 1) */
uint64_t rng_below(Rng *r, uint64_t n);  /* [0, n), unbiased */
double rng_normal(Rng *r);               /* standard normal */

/* ------------------------------------------------------------------ sha256 */

/* Lower-case hex SHA-256 of a buffer / of a file's bytes. */
void sha256_hex(const void *data, size_t n, char out[65]);
int sha256_file(const char *path, char out[65], Error *err);

/* ------------------------------------------------------- delimited tables */

/* CSV and TSV files with a header row, read through libcsv: quoted fields
 * (also across lines), CRLF or LF, a missing final newline, a UTF-8
 * byte-order mark, empty fields; blanks around unquoted fields are trimmed
 * and a record of one empty field (a line holding only "") is skipped.
 * Malformed quoting is an error. Errors are one line naming the file and,
 * where there is one, the line: "path:line: problem". */

/* One record: fields[0..n) point into the reader's buffer, valid only
 * during the callback. */
typedef struct {
    const char *path;
    long line; /* physical line where the record starts (1 = header) */
    int n;
    char **fields;
} TableRow;

/* Called for the header and then for every record; returns 0, or -1 with
 * err set to stop. The message should not repeat the file and line: the
 * reader prefixes "path:line: ". */
typedef int (*TableRowFn)(void *ctx, const TableRow *row, bool header, Error *err);

/* Streams path (delim ',' or '\t') to fn without a copy per field. Every
 * record must have as many fields as the header. */
int table_read(const char *path, char delim, TableRowFn fn, void *ctx, Error *err);
/* Index of column name in a header row, or -1. */
int table_col(const TableRow *header, const char *name);

/* A whole table in memory, for files small enough to hold (manifests,
 * metamers.csv, prediction tables). All strings live in one buffer. */
typedef struct {
    char *path;
    int n_cols, n_rows;
    char **header; /* n_cols names */
    char ***rows;  /* rows[r][c], c < n_cols */
    long *lines;   /* physical line each row starts on */
    char **cells;  /* header, then the rows: what header and rows point into */
    char *text;
} Table;

enum {
    /* Lists made by hand in a spreadsheet: a short record is padded with
     * empty fields and extra fields are dropped, instead of an error. */
    TABLE_RAGGED = 1,
};

int table_load(const char *path, char delim, int flags, Table *t, Error *err);
void table_free(Table *t);
int table_column(const Table *t, const char *name);       /* -1 if absent */
const char *table_cell(const Table *t, int row, int col); /* "" if col < 0 */

/* Whether a CSV field must be quoted for the reader above to give it back:
 * a comma, quote or line break in it, or a blank at either end. */
bool table_field_needs_quotes(const char *s);
/* Writes one CSV field to f, quoted (RFC 4180) only when it must be. */
void table_write_field(FILE *f, const char *s);

/* ------------------------------------------------------------ statistics */

/* Ascending; NaN must not occur. */
void sort_doubles(double *v, size_t n);
/* 1-based ranks; ties get the average of the ranks they span (as scipy's
 * rankdata). -0 and +0 tie. */
void rank_average(const double *x, size_t n, double *ranks);
void rank_average_f32(const float *x, size_t n, double *ranks);
/* Pearson r (two-pass, in double, clamped to [-1, 1]); NaN when n < 2 or a
 * side is constant. */
double corr_pearson(const double *x, const double *y, size_t n);
double corr_pearson_f32(const float *x, const float *y, size_t n);
/* Spearman rho: Pearson r of the average ranks. */
double corr_spearman(const double *x, const double *y, size_t n);
double corr_spearman_f32(const float *x, const float *y, size_t n);

/* -------------------------------------------------------------------- BLAS */

/* Debian's OpenBLAS 0.3.21 picks Haswell kernels on AVX-512 machines, which
 * halves sgemm speed. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so
 * when the CPU has AVX-512F and OpenBLAS runs a pre-AVX-512 core (detected,
 * or forced by an inherited OPENBLAS_CORETYPE), this re-executes the program
 * once with OPENBLAS_CORETYPE=SkylakeX. METAMERS_KEEP_OPENBLAS_CORE=1 keeps
 * OpenBLAS's choice. Call first thing in main(). */
void blas_select_best_core(char **argv);
/* "Haswell", "SkylakeX", ... as OpenBLAS reports it. */
const char *blas_core_name(void);
/* 1 if OpenBLAS runs AVX-512 kernels (SkylakeX, Cooperlake, ...). Only those
 * give each sgemm output the same rounding whatever the product's shape, so
 * only there does cutting a product over threads leave results bit for bit
 * the same; the AVX2 kernels (Haswell, Zen) differ by ~1e-7 relative. */
int blas_core_has_avx512(void);
/* Sets OpenBLAS's thread count (n > 0) and returns the previous one. Code
 * that cuts products over its own Pool holds OpenBLAS at one thread: two
 * thread teams on two cores oversubscribe them, and OpenBLAS's idle threads
 * spin in sched_yield, which loses the CPU to every other runnable process. */
int blas_set_threads(int n);

#endif
