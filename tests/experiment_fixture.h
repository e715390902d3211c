/* A small, complete listening study for the experiment tests: tiny WAV
 * clips (8 kHz, 25 ms, each different), a manifest, a metamers.csv in
 * synth's layout, a design file, and helpers to run commands quietly and to
 * read trial logs. Implemented in experiment_fixture.c. */
#ifndef EXPERIMENT_FIXTURE_H
#define EXPERIMENT_FIXTURE_H

#include <stddef.h>

#include "test.h"

typedef struct {
    int clips;         /* natural clips */
    int with_metamers; /* the first this many clips have metamers */
    int n_conds;       /* 1..3: natural, m_relu1, m_relu4 */
    int seeds;         /* metamer seeds per clip and stage */
    int trials_per_condition, catch_trials;
    int practice_feedback, practice_scored, practice_pass;
    int replays, calibration;
    const char *screening; /* JSON value, e.g. "\"none\"" */
    const char *response;  /* JSON object or NULL (word mode) */
    int n_labels;          /* distinct labels (0: all 14 words) */
} FixtureSpec;

typedef struct {
    char dir[512], design[600], lists[600], data[600];
} Fixture;

extern const char *const EXPFX_VOCAB[];
extern const int EXPFX_VOCAB_N;

/* Writes the study into a fresh folder under the test's tmpdir. */
int expfx_make(TestCtx *t, const FixtureSpec *spec, const char *name, Fixture *f);
/* `experiment build` for n participants (output captured); 0 on success. */
int expfx_build(const Fixture *f, int participants);
/* Runs a command with stdout and stderr captured into out. */
int fx_quiet_cmd(int (*fn)(int, char **), int argc, char **argv, char *out, size_t cap);
/* `experiment run` for a simulated observer; extra may be NULL. */
int expfx_run_observer(const Fixture *f, const char *id, const char *observer,
                       const char *extra_opt, const char *extra_val, char *out, size_t cap);
char *expfx_slurp(const char *path, size_t *n);
void expfx_log_path(const Fixture *f, const char *id, char *out, size_t cap);
void expfx_list_path(const Fixture *f, const char *id, char *out, size_t cap);

/* A trial log or list read back: n complete rows of up to 16 fields;
 * partial is the length of a trailing line without newline. */
typedef struct {
    int n, nf;
    char *(*f)[16];
    char *buf;
    size_t partial;
} Tsv;
int fx_tsv_load(const char *path, Tsv *t); /* header skipped; -1 if unreadable */
void fx_tsv_free(Tsv *t);

#endif
