/* synth: stage-matched model metamers (Feather et al. 2019 NeurIPS, 2023 Nature
 * Neuroscience) and their success criterion.
 *
 * A metamer of a natural clip x0 at stage S is a waveform x whose activations
 * a_S(x) match a_S(x0): the optimizer minimizes ||a(x) - a(x0)|| / ||a(x0)||
 * starting from faint white noise. It succeeds (Feather 2023) when the model's
 * prediction for the clip's task is the same for x and x0 and the Spearman
 * rho, Pearson r and SNR between a(x) and a(x0) all exceed the maximum of a
 * null distribution of the same statistics between random pairs of natural
 * clips. See synth/README.md for commands, presets and file formats.
 *
 * Module layout: stats.c (similarity statistics over core's ranks and
 * correlations), optim.c (optimizers and schedules), metamer.c (one
 * metamer, checkpoints), null.c / cmd_null.c (null distribution and its
 * cache), jobs.c (clips, stages, job list, shards), run.c (parallel driver),
 * rows.c (metamers.csv rows and `synth merge`), cmd_synth.c (options),
 * progress.c, show.c (figure).
 */
#ifndef SYNTH_H
#define SYNTH_H

#include "../core/core.h"
#include "../model/model.h"

/* ------------------------------------------------------------ statistics */

/* Core's rank_average_f32, corr_spearman_f32 and corr_pearson_f32 under the
 * synthesis's names. 1-based ranks with ties given their average rank (as
 * scipy's rankdata). */
void synth_ranks(const float *x, size_t n, double *ranks);
/* Spearman rho = Pearson r of the average ranks. NaN if a side is constant. */
double synth_spearman(const float *a, const float *b, size_t n);
double synth_pearson(const float *a, const float *b, size_t n);
/* 10*log10(||a|| / ||a - b||) with a the reference (DESIGN.md's definition);
 * +inf when a == b. */
double synth_snr_db(const float *a, const float *b, size_t n);

/* --------------------------------------------------------------- settings */

typedef enum {
    SYNTH_OPT_NORMGRAD, /* x <- clamp(x - lr * g / ||g||): Feather 2023 */
    SYNTH_OPT_ADAM,     /* Adam on the waveform, then clamp */
} SynthOptimizer;

typedef enum {
    SYNTH_SCHED_ROUNDS, /* constant within a round, times lr_decay per round */
    SYNTH_SCHED_COSINE, /* one cosine from lr to lr * lr_decay^rounds over all steps */
} SynthSchedule;

typedef struct {
    char preset[24];        /* "feather2023", "fast", or "custom" once changed */
    SynthOptimizer optimizer;
    SynthSchedule schedule;
    int rounds, steps;      /* steps per round; total = rounds * steps */
    double lr;              /* first round's step (normgrad: L2 length) */
    double lr_decay;        /* per-round factor */
    double beta1, beta2, eps; /* Adam */
    double init_sd;         /* start: white noise with this standard deviation */
    double clamp;           /* |x| <= clamp after every step */
    double clip_rms;        /* natural clips are scaled to this RMS */
    bool fake_relu;         /* identity backward through the matched relu */
    /* The first maxpool_spread of the steps (a fraction, 0 = none) backpropagate
     * through every max-pool as through an average pool
     * (BACKWARD_SPREAD_MAXPOOL); the rest use the exact max gradient. */
    double maxpool_spread;
    /* The first relu_revive of the steps (a fraction, 0 = none) let inactive
     * relu units pass a tenth of a gradient that would raise them
     * (BACKWARD_REVIVE_RELU), so units dead in the metamer but alive in the
     * natural clip can come back. */
    double relu_revive;
    /* Weight of the zero-pattern term in the last quarter of the steps (0 =
     * none; ramped in over the first twentieth of the steps there). Which of a stage's values are exactly zero is decided by the
     * signs at the input of the relu below it (network_relu_input_of): the
     * term pushes each of those pre-activations whose sign (> 0 or not)
     * differs from the natural clip's, by zero_match / ||a0||. With many tied
     * zeros Spearman's rho counts each unit zero in one and not the other as a
     * jump of half the ranks, while the L2 loss barely sees it
     * (synth/README.md). */
    double zero_match;
    /* Probing starts (1 = none): `starts` candidate starting noises each take
     * the first probe (a fraction) of the steps; the one with the lowest
     * loss then runs to the end. From the same noise the final loss at a deep,
     * sparse stage is bimodal (synth/README.md: a waltz clip at genre/relufc
     * ends at 0.009 from one start and 0.06-0.08 from four others), and the
     * loss after a few hundred steps already tells the two apart. The probes'
     * steps count: they are in `iterations` and synth_budget_steps. */
    int starts;
    double probe;
    int checkpoint_every;   /* steps between checkpoints, 0 = none */
    /* 0: optimize through the exact cochleagram. > 0: through the reduced-rate
     * envelope surrogate with this oversampling (cochleagram_create_reduced,
     * ~7x cheaper front end); the result is always measured and judged with
     * the exact model. */
    double envelope_oversample;
} SynthSettings;

/* "feather2023" or "fast"; errors list the presets. */
int synth_settings_preset(const char *name, SynthSettings *s, Error *err);
/* "normgrad" / "adam" (returns -1 with an error otherwise). */
int synth_optimizer_parse(const char *name, SynthOptimizer *o, Error *err);
const char *synth_optimizer_name(SynthOptimizer o);
/* Steps of one trajectory (rounds * steps): the schedules run over these. */
int synth_total_steps(const SynthSettings *s);
/* Steps each probing start takes (0 without probing). */
int synth_probe_steps(const SynthSettings *s);
/* Every optimizer step of one metamer: the trajectory and the probes of
 * the starts that were not chosen. */
int synth_budget_steps(const SynthSettings *s);
/* Learning rate of step (0-based). */
double synth_lr_at(const SynthSettings *s, int step);
/* The model's BACKWARD_* surrogate gradients at step (0-based). */
unsigned synth_surrogates_at(const SynthSettings *s, int step);
/* Weight of the zero-pattern term at step (0 before the last quarter, then
 * rising linearly to zero_match over total / 20 steps). */
double synth_zero_match_at(const SynthSettings *s, int step);
/* The zero-pattern term's gradient at a relu's input: d_pre = +push where
 * pre > 0 >= pre0 (down), -push where pre0 > 0 >= pre (up), 0 where the
 * signs agree; push = weight / norm0. */
void synth_zero_match_grad(float *d_pre, const float *pre, const float *pre0, size_t n,
                           double weight, double norm0);
/* Everything that changes the result, as "k=v k=v ..." (exact decimals):
 * checkpoints and out dirs only resume/continue under the same string. */
void synth_settings_describe(const SynthSettings *s, char *buf, size_t size);

/* ------------------------------------------------------------ one metamer */

typedef struct {
    int stage;              /* layer index, -1 = cochleagram */
    int task_layer;         /* logits layer for the prediction check, -2 = none */
    const float *natural;   /* the clip, RMS-normalized, model_run_samples() long */
    uint64_t noise_seed;    /* same for every stage of a clip and seed (the
                               first start; probing starts derive theirs) */
    const char *checkpoint; /* path, NULL = no checkpoints */
    const char *key;        /* identifies the job; a checkpoint must match it */
    /* Called after every step (may be NULL); once with a NaN loss first
     * when resuming from a checkpoint at `step`. */
    void (*progress)(void *ctx, int step, int total, double loss);
    void *progress_ctx;
    /* The exact model the result is measured with when m is a surrogate
     * (envelope_oversample > 0); NULL: m itself. */
    ModelRun *judge;
} MetamerSpec;

typedef struct {
    float *wave;        /* the metamer (alloc_floats), always finite */
    float *loss;        /* loss before each step, n_loss entries */
    int n_loss;
    int iterations;     /* optimizer steps taken, probes included */
    int start;          /* the probing start chosen (0 without probing) */
    int resumed_from;   /* step of the checkpoint resumed, 0 = fresh */
    bool resumed_other_plans; /* ... made with other FFTW plans (see checkpoint_load) */
    double seconds;     /* wall time over all sessions (from the checkpoints) */
    double final_loss;  /* at the returned wave */
    double spearman, pearson, snr_db;
    int pred_natural, pred_metamer; /* argmax of the task's logits, -1 if none */
    bool diverged;
    char divergence[160]; /* why it stopped, when diverged */
} MetamerResult;

/* Synthesizes one metamer with m (one clip at a time: one ModelRun per
 * thread). Resumes from spec->checkpoint when it exists and matches; the
 * caller deletes it once the results are stored. Deterministic: the same inputs give the same bytes
 * whether or not the run was interrupted. */
int synth_metamer(ModelRun *m, const SynthSettings *set, const MetamerSpec *spec,
                  MetamerResult *res, Error *err);
/* The noise seed of probing start k (k = 0: noise_seed itself). */
uint64_t synth_start_seed(uint64_t noise_seed, int k);
void metamer_result_free(MetamerResult *r);

/* -------------------------------------------------------------- null model */

typedef struct {
    char *stage;
    int n_pairs;
    float *spearman, *pearson, *snr_db; /* per pair */
    double max_spearman, max_pearson, max_snr_db;
} NullStage;

typedef struct {
    char model_sha256[65];
    NullStage *stages;
    int n_stages;
    char *source; /* manifest it was computed from (provenance) */
} NullDist;

/* Natural clips are scaled to this RMS for synthesis and the null (DESIGN.md). */
#define SYNTH_CLIP_RMS 0.1

/* Default number of random pairs (see README.md for how it was chosen). */
#define SYNTH_NULL_DEFAULT_PAIRS 16000

/* Statistics between random distinct pairs of clips (each RMS-normalized
 * like synthesis inputs) at each stage. waves: n_clips clips of the model's
 * length (only those in a pair are read; others may be NULL), all of task
 * `task` (index into net->task_names, -1 for none; it names the entries, see
 * synth_null_key). n_pairs is capped at n_clips(n_clips-1)/2. Deterministic
 * for a seed, whatever the thread count. */
int synth_null_compute(const Network *net, int task, float *const *waves, int n_clips,
                       const int *stages, int n_stages, int n_pairs, uint64_t seed, int threads,
                       NullDist *out, Error *err);
/* The name of a stage's null in a cache. A model with several tasks gets
 * one null per task, "task:stage", from pairs of that task's clips only: a
 * metamer of a music clip must beat the most alike pair of music clips, not
 * pairs that are mostly speech (a genre clip is closer to another genre clip
 * at every stage). Otherwise the stage name. */
void synth_null_key(const Network *net, int task, int stage, char *buf, size_t size);
const NullStage *synth_null_find(const NullDist *d, const char *key);
/* The null a metamer of a clip of task `task` at `stage` is judged by (NULL if absent). */
const NullStage *synth_null_of(const NullDist *d, const Network *net, int task, int stage);

/* The success criterion (Feather 2023): the model's prediction on the
 * metamer equals its prediction on the natural clip (pred_natural and
 * pred_metamer are class labels, "n/a" when the stage has no task), and
 * Spearman, Pearson and SNR each exceed the null distribution's maximum.
 * One exception: a correlation whose null maximum is already at its
 * ceiling of 1 (a 9-unit genre head: some random pairs of natural clips
 * rank all 9 logits alike) is met by a metamer that reaches the ceiling
 * too, since nothing can exceed 1. Writes "pass" or "fail: <reasons>". */
bool metamer_judge(const MetamerResult *m, const NullStage *ns, const char *pred_natural,
                   const char *pred_metamer, char *verdict, size_t size);
/* Cache file: "<model without .safetensors>.null.safetensors" for a file,
 * NULL for builtin: models (they need an explicit path). malloc'd. */
char *synth_null_default_path(const char *model_spec);
/* Loads a cache; a missing file gives an empty NullDist and returns 0. A
 * cache for another model hash is treated as empty (*stale set if given). */
int synth_null_load(const char *path, const char *model_sha256, NullDist *d, bool *stale,
                    Error *err);
/* Adds/replaces add's stages in the cache at path (atomic rewrite). */
int synth_null_store(const char *path, const NullDist *add, Error *err);
void synth_null_free(NullDist *d);

/* Model identity for caches and rows: SHA-256 of the file, or for builtin:
 * specs of the architecture JSON, front end and weights. */
int synth_model_sha256(const Network *net, const char *spec, char out[65], Error *err);

/* -------------------------------------------------------------- job list */

/* Stages a clip of task `task` (index into net->task_names) may use: the
 * cochleagram and every layer on the path from the input to the task's
 * output, in model order. Returns the count; stages must hold n_layers+1. */
int synth_task_stages(const Network *net, int task, int *stages);
/* Directory name of a stage: '/' becomes '.', other characters outside
 * [A-Za-z0-9._-] become '_' ("word/relu4" -> "word.relu4"). */
void synth_stage_dirname(const char *stage, char *buf, size_t size);
/* "K/N" with 1 <= K <= N. */
int synth_shard_parse(const char *s, int *k, int *n, Error *err);
/* Whether job j (0-based, in the unsharded job list) belongs to shard K of N:
 * round robin, so every shard gets a mix of cheap and costly stages. */
bool synth_shard_has(int job, int k, int n);

/* --------------------------------------------------------------- commands */

/* argv[0] is the subcommand name; --help prints usage. Errors print one
 * line "metamers <cmd>: ..." and return non-zero. */
int synth_cmd_synth(int argc, char **argv); /* `synth ...` and `synth merge DIR...` */
int synth_cmd_null(int argc, char **argv);
int synth_cmd_show(int argc, char **argv);

#endif
