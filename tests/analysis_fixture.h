/* Shared by the analysis tests: files, CSV cells and quick options. */
#ifndef ANALYSIS_FIXTURE_H
#define ANALYSIS_FIXTURE_H

#include "../analysis/ana_internal.h"
#include "test.h"

/* Response labels of the synthetic studies. */
#define TEST_GENRES 6
extern const char *const test_genres[TEST_GENRES];

/* Writes text to path (atomically), making its folder. */
void write_text(TestCtx *t, const char *path, const char *text);
/* dir/name in one of 8 rotating static buffers. */
char *join(const char *dir, const char *name);
/* One cell of a CSV output: column col of the row whose key_col equals key
 * ("" and a failure if there is none); csv_value parses it (NaN if empty). */
const char *csv_text(TestCtx *t, const char *path, const char *key_col, const char *key,
                     const char *col);
double csv_value(TestCtx *t, const char *path, const char *key_col, const char *key,
                 const char *col);
/* Paths quick_options fills in (a test process runs one test, so one set
 * is enough). */
typedef struct {
    char glob[2048], participants[2048], model[2048], metamers[2048], out[2048];
} QuickPaths;
extern QuickPaths quick_paths;
/* Options for a study in dir (subjects/, participants.tsv, model.csv,
 * metamers.csv; report/ out) with small resampling counts. */
AnalysisOptions quick_options(const char *dir, const char **globs);
void append(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
