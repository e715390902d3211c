/* Declarations shared by the synth .c files (not part of the public API). */
#ifndef SYNTH_INTERNAL_H
#define SYNTH_INTERNAL_H

#include <stdio.h>

#include "../stimuli/stimuli.h"
#include "synth.h"

/* ------------------------------------------------------------ optimizers */

typedef struct {
    int n;
    float *m, *v; /* Adam moments (NULL for normgrad) */
} OptState;

void optim_init(OptState *st, const SynthSettings *s, int n);
void optim_free(OptState *st);
/* Back to the state optim_init left (Adam's moments zero). */
void optim_reset(OptState *st);
/* One step at the schedule's rate for `step`; -1 (x untouched) if the
 * gradient is not finite. */
int optim_step(const SynthSettings *s, OptState *st, int step, float *x, const float *g);

/* ----------------------------------------------------------- checkpoints */

typedef struct {
    int step;
    int start; /* the probing start this state came from */
    Rng rng;
    double seconds;
    float *wave, *loss; /* loss holds `step` values */
    OptState opt;
} MetamerState;

/* plans: cochleagram_plans_id of the front end optimizing. */
int checkpoint_save(const char *path, const char *key, const char *plans, const SynthSettings *s,
                    const MetamerState *st, int n, Error *err);
/* 1 = loaded, 0 = no checkpoint at path, -1 = error (unreadable, or made for
 * another job or other settings). st must be initialized for n samples.
 * *other_plans: the checkpoint was made with other FFTW plans (or does not
 * say), so the resumed result will not be bit-identical to an uninterrupted
 * run's; resuming is still right, as the procedure is the same. */
int checkpoint_load(const char *path, const char *key, const char *plans, const SynthSettings *s,
                    MetamerState *st, int n, int total_steps, bool *other_plans, Error *err);

/* -------------------------------------------------------------- jobs */

typedef struct {
    char *id, *task_name, *label, *path;
    int task;      /* index into net->task_names, -1 if the model has none */
    float *wave;   /* RMS-normalized, loaded on demand */
} SynthClip;

typedef struct {
    int index;   /* position in the unsharded job list */
    int clip;    /* into the clip array */
    int stage;   /* layer index, -1 = cochleagram */
    int seed;
} SynthJob;

/* Which task a manifest row uses: the model's only task, or the task of the
 * same name. */
int synth_clip_task(const Network *net, const char *clip_id, const char *task, Error *err);
/* Stages of `list` (a set name, or stage names) for clips of task: ordered as in the
 * model, duplicates dropped; a stage on another task's branch is an error
 * naming the clip. Returns the count. */
int synth_clip_stages(const Network *net, const char *list, int task, const char *clip_id,
                      const char *task_name, int *stages, Error *err);
/* The noise seed of (clip, seed): independent of the stage, so the metamers
 * of one clip at different stages start from the same noise. */
uint64_t synth_noise_seed(const char *clip_id, int seed);
const char *synth_stage_name(const Network *net, int stage);
/* Reads a clip at the model's rate and length and scales it to rms. */
int synth_load_clip(const Network *net, const char *path, const char *clip_id, double rms,
                    float **wave, Error *err);

/* ------------------------------------------------------------ rows (CSV) */

#define ROW_N_COLUMNS 28
extern const char *const row_columns[ROW_N_COLUMNS];

/* One metamers.csv row as strings (column order of row_columns). */
typedef struct {
    char *f[ROW_N_COLUMNS];
} Row;

enum {
    COL_CLIP_ID, COL_TASK, COL_STAGE, COL_STAGE_INDEX, COL_SEED, COL_START, COL_PRESET, COL_OPTIMIZER,
    COL_ITERATIONS, COL_SECONDS, COL_FINAL_LOSS, COL_SPEARMAN, COL_PEARSON, COL_SNR_DB,
    COL_NULL_SPEARMAN, COL_NULL_PEARSON, COL_NULL_SNR, COL_NULL_PAIRS, COL_NULL_ENTRY, COL_PASSED, COL_VERDICT,
    COL_LABEL, COL_PRED_NATURAL, COL_PRED_METAMER, COL_MODEL, COL_MODEL_SHA, COL_PATH,
    COL_LOSS_CURVE,
};

void row_free(Row *r);
void row_write(FILE *f, const Row *r);
void row_write_header(FILE *f);
/* Appends the rows of a CSV with a header to *rows (columns matched by
 * name; all of row_columns required). On an error the rows read before it
 * stay appended (the caller frees them as usual). */
int rows_read_csv(const char *path, Row **rows, int *n, Error *err);
/* All the "<stage dir>/<name>.row.csv" files of an output folder. */
int rows_scan_dir(const char *dir, Row **rows, int *n, Error *err);
/* Sorts by (stage_index, clip_id, seed): model order of stages first, so the
 * file's stage order is the model's (analysis orders figures by it). */
void rows_sort(Row *rows, int n);
int rows_write_csv(const char *path, const Row *rows, int n, Error *err);
/* Per stage (rows sorted): metamers, passed, pass rate, median final loss,
 * iterations and seconds; to a CSV at csv_path and/or printed (either may
 * be NULL). */
int rows_summary(const char *csv_path, FILE *print, const Row *rows, int n, Error *err);
/* A printf-formatted number as a new string (row fields). */
char *row_number(const char *format, double v);
/* A row's judgement columns: the null's maxima, pairs and entry name (NaN,
 * 0 and "" without a null), passed and verdict; replaces what was there. */
void row_set_judgement(Row *row, const NullStage *ns, bool passed, const char *verdict);
/* Sorts rows and rewrites dir/metamers.csv and dir/summary.csv from them
 * (the summary also printed to print unless NULL). */
int rows_write_folder(const char *dir, Row *rows, int n, FILE *print, Error *err);
/* `metamers synth merge` */
int synth_merge(int argc, char **argv);
/* `metamers synth judge` */
int synth_judge(int argc, char **argv);

/* ---------------------------------------------------------------- runs */

typedef struct {
    const char *model, *manifest, *stages, *out;
    const char *null_path;     /* cache file (default: next to the model) */
    const char *null_manifest; /* clips for a missing null (default: manifest) */
    const char *clips, *task, *split; /* manifest filters (NULL = all) */
    int seeds, threads, shard_k, shard_n, null_pairs;
    uint64_t null_seed;
    /* judge by the pooled null (pairs of all clips, entries named by stage)
     * instead of the null of each clip's task */
    bool null_pooled;
    bool quiet, dry_run;
    SynthSettings set;
} SynthOptions;

/* Runs (or, with dry_run, lists) the jobs of options o. */
int synth_run(const SynthOptions *o, Error *err);
/* The pairs synth_null_compute uses for (n clips, n_pairs <= n(n-1)/2, seed). */
void null_sample_pairs(int n, int n_pairs, uint64_t seed, int *pa, int *pb);
/* Whether nulls are per task: a model of two or more tasks, not pooled. */
bool synth_null_per_task(const Network *net, bool pooled);
/* The task whose null judges a metamer of task `task`: `task` when nulls are
 * per task, else -1 (the entries named by stage alone). */
int synth_null_task(const Network *net, int task, bool pooled);
/* The null distribution of task `task` (-1: none) for stages missing from
 * the cache: computed from manifest's clips of that task and stored. Prints a
 * note unless quiet. */
int synth_null_ensure(const Network *net, const char *model_sha256, const char *cache,
                      const char *manifest, const char *split, int task, const int *stages,
                      int n_stages, int pairs, uint64_t seed, int threads, bool quiet, NullDist *d,
                      Error *err);

/* -------------------------------------------------------------- progress */

typedef struct Progress Progress;
Progress *progress_create(int n_jobs, long long total_steps, long long done_steps, int workers,
                          bool quiet);
void progress_job_start(Progress *p, int worker, const char *label, int step, int total);
void progress_step(Progress *p, int worker, int step, double loss);
void progress_job_done(Progress *p, int worker);
void progress_finish(Progress *p);

/* ------------------------------------------------------------------ misc */

/* Whether item is one of the comma-separated entries of list. */
bool synth_in_list(const char *list, const char *item);
/* Path join "a/b" (malloc'd). */
char *synth_join(const char *a, const char *b);
bool synth_file_exists(const char *path);
/* Model name for the `model` column: the file name without .safetensors, or
 * the builtin spec. */
char *synth_model_name(const char *spec);

#endif
