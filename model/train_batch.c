/* Batch assembly with augmentation (see train_data.c for the why). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "train.h"

typedef struct {
    int example, shift; /* shift in frames */
    bool fresh;
    bool pink;
    double snr_db;
    uint64_t noise_seed;
    uint64_t spectral_seed; /* frequency shift and masks */
} Slot;

struct BatchMaker {
    const TrainSet *ts;
    int batch, n_tasks, hop;
    Pool *pool;
    Cochleagram *coch;
    CochleagramWork **work;
    float **wave, **noise; /* per worker */
    Error *errs;
    int *failed;
    int *perm, perm_epoch;
    Slot *slots;
    int *fresh_slots, n_fresh;
    float *x;   /* of the current batch_make */
    float *tmp; /* one cochleagram */
};

BatchMaker *batch_maker_create(const TrainSet *ts, const Network *net, int batch,
                               double remix_oversample, Pool *pool) {
    BatchMaker *b = xcalloc(1, sizeof *b);
    b->ts = ts, b->batch = batch, b->n_tasks = net->n_tasks, b->pool = pool;
    Error err; /* train_set_load built this front end already, and the options checked the rate */
    b->coch = cochleagram_create_reduced(&net->front_end, remix_oversample, &err);
    b->hop = net->front_end.sr / net->front_end.env_sr;
    int nw = pool ? pool_size(pool) : 1;
    b->work = xcalloc((size_t)nw, sizeof(void *));
    b->wave = xcalloc((size_t)nw, sizeof(void *));
    b->noise = xcalloc((size_t)nw, sizeof(void *));
    b->errs = xcalloc((size_t)nw, sizeof(Error));
    b->failed = xcalloc((size_t)nw, sizeof(int));
    for (int k = 0; k < nw; k++) {
        b->work[k] = cochleagram_work_create(b->coch, 1);
        b->wave[k] = alloc_floats((size_t)ts->samples);
        b->noise[k] = alloc_floats((size_t)ts->samples);
    }
    b->perm = xmalloc(sizeof(int) * (size_t)ts->n);
    b->perm_epoch = -1;
    b->tmp = alloc_floats((size_t)ts->channels * ts->frames);
    b->slots = xmalloc(sizeof(Slot) * (size_t)batch);
    b->fresh_slots = xmalloc(sizeof(int) * (size_t)batch);
    return b;
}

void batch_maker_free(BatchMaker *b) {
    if (!b) return;
    int nw = b->pool ? pool_size(b->pool) : 1;
    for (int k = 0; k < nw; k++) {
        cochleagram_work_free(b->work[k]);
        free(b->wave[k]), free(b->noise[k]);
    }
    free(b->work), free(b->wave), free(b->noise), free(b->errs), free(b->failed);
    cochleagram_free(b->coch);
    free(b->perm), free(b->tmp), free(b->slots), free(b->fresh_slots);
    free(b);
}

static void shuffle(BatchMaker *b, uint64_t seed, int epoch) {
    Rng r;
    rng_seed(&r, train_mix_seed(seed, (uint64_t)epoch, 0, 0x5EED));
    for (int i = 0; i < b->ts->n; i++) b->perm[i] = i;
    for (int i = b->ts->n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1), t = b->perm[i];
        b->perm[i] = b->perm[j], b->perm[j] = t;
    }
    b->perm_epoch = epoch;
}

/* Cached cochleagram, circularly shifted by s frames. */
static void cached_shifted(const TrainSet *ts, int i, int s, float *out, float *tmp) {
    int C = ts->channels, T = ts->frames;
    train_set_example(ts, i, tmp);
    s = ((s % T) + T) % T;
    for (int c = 0; c < C; c++) {
        memcpy(out + (size_t)c * T + s, tmp + (size_t)c * T, sizeof(float) * (size_t)(T - s));
        memcpy(out + (size_t)c * T, tmp + (size_t)c * T + T - s, sizeof(float) * (size_t)s);
    }
}

/* Content of channel c moves to c + shift (linear interpolation between
 * channels; the edge channels extend beyond the ends). */
static void shift_frequency(float *x, int C, int T, double shift, float *tmp) {
    memcpy(tmp, x, sizeof(float) * (size_t)C * T);
    for (int c = 0; c < C; c++) {
        double src = c - shift, lo = floor(src);
        float f = (float)(src - lo);
        int i0 = (int)lo, i1 = i0 + 1;
        i0 = i0 < 0 ? 0 : i0 > C - 1 ? C - 1 : i0;
        i1 = i1 < 0 ? 0 : i1 > C - 1 ? C - 1 : i1;
        const float *a = tmp + (size_t)i0 * T, *b = tmp + (size_t)i1 * T;
        float *y = x + (size_t)c * T;
        for (int t = 0; t < T; t++) y[t] = (1 - f) * a[t] + f * b[t];
    }
}

/* n masks of width 0..max_width at uniform positions along an axis of
 * length len; each sets rows [start, start+width) of that axis to 0. */
static void mask_axis(float *x, int C, int T, bool along_time, int n, int max_width, Rng *r) {
    int len = along_time ? T : C;
    for (int m = 0; m < n && max_width > 0; m++) {
        int w = (int)rng_below(r, (uint64_t)(max_width < len ? max_width : len) + 1);
        int start = (int)rng_below(r, (uint64_t)(len - w) + 1);
        for (int k = start; k < start + w; k++) {
            if (along_time)
                for (int c = 0; c < C; c++) x[(size_t)c * T + k] = 0;
            else
                memset(x + (size_t)k * T, 0, sizeof(float) * (size_t)T);
        }
    }
}

void train_augment_spectral(float *x, int channels, int frames, const Augment *aug, Rng *r,
                            float *tmp) {
    if (aug->freq_shift > 0) {
        double s = aug->freq_shift * (2 * rng_uniform(r) - 1);
        shift_frequency(x, channels, frames, s, tmp);
    }
    mask_axis(x, channels, frames, true, aug->time_masks, aug->time_mask_frames, r);
    mask_axis(x, channels, frames, false, aug->freq_masks, aug->freq_mask_channels, r);
}

/* White or pink (Paul Kellet's 3-pole filter on white noise, ~-3 dB/oct). */
static void make_noise(float *y, int n, bool pink, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    double b0 = 0, b1 = 0, b2 = 0;
    for (int i = 0; i < n; i++) {
        double w = rng_normal(&r);
        if (pink) {
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            w = b0 + b1 + b2 + w * 0.1848;
        }
        y[i] = (float)w;
    }
}

static void fresh_one(void *ctx, int k, int worker) {
    BatchMaker *b = ctx;
    const Slot *s = &b->slots[b->fresh_slots[k]];
    const TrainSet *ts = b->ts;
    const ManifestRow *row = &ts->m->rows[ts->rows[s->example]];
    char *path = manifest_clip_path(ts->m, row);
    const FrontEndConfig *fe = cochleagram_config(b->coch);
    Audio a; /* one small allocation per fresh mix, next to a front-end pass */
    int rc = audio_read(path, fe->sr, fe->signal_size, &a, &b->errs[worker]);
    free(path);
    if (rc != 0) {
        b->failed[worker] = 1;
        return;
    }
    int n = ts->samples, sh = ((s->shift * b->hop) % n + n) % n;
    float *w = b->wave[worker], *z = b->noise[worker];
    memcpy(w + sh, a.samples, sizeof(float) * (size_t)(n - sh));
    memcpy(w, a.samples + n - sh, sizeof(float) * (size_t)sh);
    audio_free(&a);
    make_noise(z, n, s->pink, s->noise_seed);
    double rs = audio_rms(w, n), rz = audio_rms(z, n);
    float g = rz > 0 ? (float)(rs / rz * pow(10, -s->snr_db / 20)) : 0;
    for (int i = 0; i < n; i++) w[i] += g * z[i];
    audio_scale_to_rms(w, n, STIM_RMS);
    size_t numel = (size_t)ts->channels * ts->frames;
    cochleagram_forward(b->coch, b->work[worker], NULL, w, b->x + (size_t)b->fresh_slots[k] * numel);
}

static void plan_slots(BatchMaker *b, const Augment *aug, uint64_t seed, int epoch, int step) {
    b->n_fresh = 0;
    for (int k = 0; k < b->batch; k++) {
        Rng r;
        rng_seed(&r, train_mix_seed(seed, (uint64_t)epoch, (uint64_t)step, (uint64_t)k + 1));
        Slot *s = &b->slots[k];
        s->example = b->perm[(int)(((int64_t)step * b->batch + k) % b->ts->n)];
        int S = aug->max_shift_frames;
        s->shift = S > 0 ? (int)rng_below(&r, (uint64_t)(2 * S + 1)) - S : 0;
        s->fresh = rng_uniform(&r) < aug->fresh_fraction;
        s->pink = rng_uniform(&r) < 0.5;
        s->snr_db = aug->snr_lo + (aug->snr_hi - aug->snr_lo) * rng_uniform(&r);
        s->noise_seed = rng_next(&r);
        s->spectral_seed = rng_next(&r);
        if (s->fresh) b->fresh_slots[b->n_fresh++] = k;
    }
}

int batch_make(BatchMaker *b, const Augment *aug, uint64_t seed, int epoch, int step, float *x,
               int32_t *labels, Error *err) {
    if (b->perm_epoch != epoch) shuffle(b, seed, epoch);
    plan_slots(b, aug, seed, epoch, step);
    const TrainSet *ts = b->ts;
    size_t numel = (size_t)ts->channels * ts->frames;
    b->x = x;
    for (int k = 0; k < b->batch; k++) {
        const Slot *s = &b->slots[k];
        for (int t = 0; t < b->n_tasks && t < TRAIN_MAX_TASKS; t++)
            labels[(size_t)t * b->batch + k] = ts->task[s->example] == t ? ts->label[s->example] : -1;
        if (!s->fresh) cached_shifted(ts, s->example, s->shift, x + (size_t)k * numel, b->tmp);
    }
    if (b->n_fresh) {
        if (b->pool) pool_run(b->pool, fresh_one, b, b->n_fresh);
        else for (int k = 0; k < b->n_fresh; k++) fresh_one(b, k, 0);
    }
    int nw = b->pool ? pool_size(b->pool) : 1;
    for (int k = 0; k < nw; k++)
        if (b->failed[k]) return *err = b->errs[k], -1;
    for (int k = 0; k < b->batch; k++) {
        Rng r;
        rng_seed(&r, b->slots[k].spectral_seed);
        train_augment_spectral(x + (size_t)k * numel, ts->channels, ts->frames, aug, &r, b->tmp);
    }
    return b->n_fresh;
}
