/* train: training the branched word/genre network (internal to model/).
 *
 * Layers (each file < 600 lines):
 *   train.c       one optimizer step (forward in training mode to every task's
 *                 logits, per-task softmax cross-entropy, backward with
 *                 parameter gradients), AdamW, LR schedule, checkpoints, the
 *                 epoch loop with progress and the log CSV.
 *   train_data.c  the manifest as a training set: labels, the cochleagram
 *                 cache, and batch assembly with augmentation.
 *   cmd_train.c, cmd_eval.c  the subcommands.
 *
 * Determinism: the content of step k of epoch e (which clips, their time
 * shifts, fresh noise and dropout masks) is a pure function of (seed, e, k),
 * so a run resumed from a checkpoint produces bit-identical weights to an
 * uninterrupted one (given the same thread count: OpenBLAS partitions its
 * sums by thread count).
 */
#ifndef MODEL_TRAIN_H
#define MODEL_TRAIN_H

#include <stdint.h>

#include "../stimuli/stimuli.h"
#include "model.h"

#define TRAIN_DEFAULT_BATCH 32
#define TRAIN_MAX_TASKS 4

/* ------------------------------------------------------------ one step */

typedef struct {
    double loss[TRAIN_MAX_TASKS]; /* mean cross-entropy over the task's examples */
    int correct[TRAIN_MAX_TASKS], count[TRAIN_MAX_TASKS];
} StepStats;

typedef struct TrainStep TrainStep;
TrainStep *train_step_create(const Network *net, int batch);
void train_step_free(TrainStep *s);
/* x: batch x input; labels: n_tasks rows of batch labels (-1: the example
 * belongs to another task). Leaves d(sum of task losses)/d(params) in
 * train_step_grad (layout of param_block). stats may be NULL. */
void train_step_run(const Network *net, TrainStep *s, const float *x, const int32_t *labels,
                    uint64_t dropout_seed, StepStats *stats);
const float *train_step_grad(const TrainStep *s);
/* Routing (on by default for several tasks): each example runs through the
 * shared trunk and its own task's branch only (network_route_rows). Off:
 * every example runs through every branch, for comparison. */
void train_step_set_routing(TrainStep *s, bool route);
/* Loss only (training-mode batchnorm and dropout with this seed), for
 * finite-difference checks. Does not touch running statistics' effect on
 * the output (training mode normalizes with batch statistics). */
double train_step_loss(const Network *net, TrainStep *s, const float *x, const int32_t *labels,
                       uint64_t dropout_seed);

/* ------------------------------------------------------------ training set */

typedef struct {
    const Manifest *m;
    int *rows;      /* manifest rows of the split */
    int *task;      /* network task index per example */
    int32_t *label; /* class index per example */
    int n;
    int channels, frames, samples;
    uint16_t *cache; /* n x channels x frames, half precision */
} TrainSet;

/* Selects `split` rows, maps tasks and labels to the network's (errors name
 * the row), and computes (or loads from cache_dir, if non-NULL) the
 * cochleagrams of the stored clips over the pool. */
int train_set_load(TrainSet *ts, const Manifest *m, const char *split, const Network *net,
                   const char *cache_dir, Pool *pool, Error *err);
void train_set_free(TrainSet *ts);
/* Only the row selection and label mapping of train_set_load (no cache). */
int train_set_select(TrainSet *ts, const Manifest *m, const char *split, const Network *net,
                     Error *err);
/* Sets the word / genre tasks' classes to the stimulus module's lists. */
int train_set_default_classes(Network *net, Error *err);

typedef struct {
    double fresh_fraction; /* examples remixed with fresh noise */
    double snr_lo, snr_hi; /* dB, of the fresh noise relative to the clip */
    int max_shift_frames;  /* random circular time shift of the cochleagram */
    /* Cochleagram-domain augmentation against overfitting the training
     * voices (model/README.md): a random shift along frequency by up to
     * freq_shift channels (continuous; one channel of the default front end is
     * ~0.8 ERB, ~10% of a formant's frequency, like a vocal-tract length
     * change), then SpecAugment-style masks set to 0 (silence): time_masks
     * gaps of 0..time_mask_frames frames and freq_masks bands of
     * 0..freq_mask_channels channels. */
    double freq_shift;
    int time_masks, time_mask_frames;
    int freq_masks, freq_mask_channels;
    /* Front end of the fresh remixes: 0 = exact, else the reduced-rate
     * envelope at this oversampling (COCHLEAGRAM_REDUCED_OVERSAMPLE), ~6x
     * cheaper per clip with the default front end. Cached clips are always
     * exact. */
    double remix_oversample;
} Augment;

typedef struct BatchMaker BatchMaker;
/* remix_oversample: Augment's, fixed for the maker's lifetime. */
BatchMaker *batch_maker_create(const TrainSet *ts, const Network *net, int batch,
                               double remix_oversample, Pool *pool);
void batch_maker_free(BatchMaker *b);
/* Fills x (batch x input) and labels (n_tasks x batch) for step `step` of
 * epoch `epoch`; pure function of (seed, epoch, step). Returns the number of
 * examples with fresh noise. */
int batch_make(BatchMaker *b, const Augment *aug, uint64_t seed, int epoch, int step, float *x,
               int32_t *labels, Error *err);
/* The frequency shift and masks of Augment on one channels x frames
 * cochleagram in place, drawing from r (tmp: channels x frames floats). With
 * freq_shift 0 and no masks it leaves x unchanged and draws nothing. */
void train_augment_spectral(float *x, int channels, int frames, const Augment *aug, Rng *r,
                            float *tmp);
/* Converts a cached cochleagram to float. */
void train_set_example(const TrainSet *ts, int i, float *out);

/* ------------------------------------------------------------ the loop */

typedef struct {
    int epochs, batch;
    double lr, weight_decay, warmup_fraction;
    bool sgd;               /* SGD with momentum 0.9 instead of AdamW */
    uint64_t seed;
    Augment aug;
    /* > 0: epochs before this one (0-based) train without the fresh remix,
     * the frequency shift and the masks (time shifts stay). The word head
     * learns faster unaugmented at first, but over 22 epochs of `make model`
     * the held-out result was the same (model/README.md), so it is off there */
    int augment_from_epoch;
    const char *out;        /* model file; checkpoint is <out>.ckpt */
    const char *log_csv;    /* may be NULL */
    const char *recipe;     /* provenance only */
    bool resume;
    int stop_after_epochs;  /* > 0: return after this many epochs (tests) */
    bool quiet;
} TrainOptions;

void train_options_default(TrainOptions *o);
/* Trains net in place on ts; writes the model and checkpoint each epoch. */
int train_run(Network *net, const TrainSet *ts, const TrainOptions *o, Pool *pool, Error *err);

uint64_t train_mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

#endif
