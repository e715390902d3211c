/* The synthesis tests' fixture: a small random-weight network on the
 * `tiny` front end (8 kHz, 0.25 s), varied natural clips and a manifest, and
 * helpers to run a command quietly and read its CSV output. Shared by
 * test_synth.c and test_synth_faults.c; implemented in synth_fixture.c. */
#ifndef SYNTH_FIXTURE_H
#define SYNTH_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "test.h"

typedef struct {
    char dir[512], model[600], manifest[600];
} SynthFixture;

/* model.safetensors, clips/c0..c{n-1}.wav (8 kHz, 2000 samples) and
 * manifest.csv (task a; with branched, c1 is a task-b clip) in a fresh
 * folder <tmpdir>/<name>. 0, or -1 after failing the test. */
int sfx_make(TestCtx *t, SynthFixture *f, const char *name, int n_clips, bool branched);
/* Runs synth_cmd_synth/null/show in a child with stdout and stderr in files
 * under dir (stderr first in out); returns the exit code (128+signal if
 * killed). */
int sfx_run(const char *dir, int (*cmd)(int, char **), char **argv, char *out, size_t size);
/* A whole file, or NULL. */
char *sfx_slurp(const char *path);
/* Value of column `col` in row `row` (1-based after the header) of a CSV
 * without quoted commas in the columns asked for. */
bool sfx_csv_cell(const char *csv, int row, const char *col, char *buf, size_t size);

#endif
