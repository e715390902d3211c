/* Training: one optimizer step, AdamW with warmup + cosine decay, exact
 * checkpoints, and the epoch loop (see train.h).
 *
 * Why AdamW and not SGD with momentum: the run is a few epochs on a fixed
 * budget with no time for a learning-rate sweep; Adam's per-parameter scale
 * makes the same lr work for the 7x14 conv0 and the fc layers. SGD with
 * momentum 0.9 and L2 decay (--optimizer sgd, as PyTorch's SGD) is there for
 * comparison; it has not been tuned on the `train` recipe (model/README.md).
 * Weight decay is decoupled (AdamW) and applies to conv/linear weights only,
 * never to biases, batchnorm gamma/beta or running statistics. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "train.h"

struct TrainStep {
    int batch, n_tasks;
    NetworkWork *work;
    float *grad;         /* d_params, layout of param_block */
    float *dlogits[TRAIN_MAX_TASKS];
    int targets[TRAIN_MAX_TASKS];
    size_t n_params, in_numel;
    bool route;         /* each task's branch on its own examples only */
    float *x_sorted;    /* the batch grouped by task (routing) */
    int32_t *labels_sorted;
};

uint64_t train_mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    /* splitmix64 over the words: independent streams per (seed, epoch, step, k). */
    uint64_t v[4] = {a, b, c, d}, h = 0x243F6A8885A308D3ull;
    for (int i = 0; i < 4; i++) {
        h ^= v[i] + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
        h ^= h >> 30, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 27, h *= 0x94D049BB133111EBull,
            h ^= h >> 31;
    }
    return h;
}

TrainStep *train_step_create(const Network *net, int batch) {
    TrainStep *s = xcalloc(1, sizeof *s);
    s->batch = batch;
    s->n_tasks = net->n_tasks < TRAIN_MAX_TASKS ? net->n_tasks : TRAIN_MAX_TASKS;
    s->work = network_work_create(net, batch, true);
    s->n_params = net->n_params;
    s->in_numel = (size_t)architecture_stage_numel(&net->arch, -1);
    s->route = s->n_tasks > 1;
    s->x_sorted = alloc_floats((size_t)batch * s->in_numel);
    s->labels_sorted = xmalloc((size_t)batch * (size_t)(s->n_tasks ? s->n_tasks : 1) * sizeof(int32_t));
    s->grad = alloc_floats(net->n_params ? net->n_params : 1);
    for (int t = 0; t < s->n_tasks; t++) {
        s->targets[t] = net->task_layers[t];
        s->dlogits[t] = alloc_floats((size_t)batch * net->n_classes[t]);
    }
    return s;
}

void train_step_free(TrainStep *s) {
    if (!s) return;
    network_work_free(s->work);
    free(s->grad);
    free(s->x_sorted), free(s->labels_sorted);
    for (int t = 0; t < s->n_tasks; t++) free(s->dlogits[t]);
    free(s);
}

const float *train_step_grad(const TrainStep *s) { return s->grad; }

void train_step_set_routing(TrainStep *s, bool route) { s->route = route && s->n_tasks > 1; }

/* The first task an example has a label for (n_tasks: none). */
static int example_task(const TrainStep *s, const int32_t *labels, int b) {
    int t = 0;
    while (t < s->n_tasks && labels[(size_t)t * s->batch + b] < 0) t++;
    return t;
}

/* Routing: copies the batch grouped by task (stably, so the order is a pure
 * function of the batch) and gives each task's head the hull of the rows it
 * has labels in. Each branch then runs on its own examples: the rows of the
 * others would get exactly zero gradient from it (their label there is -1),
 * so the gradients are the unrouted ones up to the order of float sums. */
static void route_batch(TrainStep *s, const float **x, const int32_t **labels) {
    if (!s->route) {
        network_route_rows(s->work, NULL, NULL, 0);
        return;
    }
    int first[TRAIN_MAX_TASKS], count[TRAIN_MAX_TASKS], row = 0;
    for (int key = 0; key <= s->n_tasks; key++)
        for (int b = 0; b < s->batch; b++) {
            if (example_task(s, *labels, b) != key) continue;
            memcpy(s->x_sorted + (size_t)row * s->in_numel, *x + (size_t)b * s->in_numel,
                   s->in_numel * sizeof(float));
            for (int t = 0; t < s->n_tasks; t++)
                s->labels_sorted[(size_t)t * s->batch + row] = (*labels)[(size_t)t * s->batch + b];
            row++;
        }
    for (int t = 0; t < s->n_tasks; t++) {
        const int32_t *lab = s->labels_sorted + (size_t)t * s->batch;
        int lo = 0, hi = s->batch;
        while (lo < hi && lab[lo] < 0) lo++;
        while (hi > lo && lab[hi - 1] < 0) hi--;
        first[t] = lo, count[t] = hi - lo;
    }
    network_route_rows(s->work, first, count, s->n_tasks);
    *x = s->x_sorted, *labels = s->labels_sorted;
}

/* Forward to every task's logits (x and labels as route_batch left them);
 * returns the summed per-task mean losses. */
static double forward_losses(const Network *net, TrainStep *s, const float *x,
                             const int32_t *labels, uint64_t seed, StepStats *st) {
    network_set_step_seed(s->work, seed);
    network_forward(net, s->work, x, s->targets, s->n_tasks);
    double total = 0;
    for (int t = 0; t < s->n_tasks; t++) {
        int k = net->n_classes[t];
        const int32_t *lab = labels + (size_t)t * s->batch;
        const float *logits = network_activation(s->work, s->targets[t]);
        SoftmaxXent L = {s->batch, k};
        double loss = softmax_xent_forward(&L, logits, lab);
        total += loss;
        if (!st) continue;
        st->loss[t] = loss;
        st->correct[t] = st->count[t] = 0;
        for (int b = 0; b < s->batch; b++) {
            if (lab[b] < 0) continue;
            const float *z = logits + (size_t)b * k;
            int best = 0;
            for (int c = 1; c < k; c++)
                if (z[c] > z[best]) best = c;
            st->count[t]++;
            st->correct[t] += best == lab[b];
        }
    }
    return total;
}

void train_step_run(const Network *net, TrainStep *s, const float *x, const int32_t *labels,
                    uint64_t dropout_seed, StepStats *stats) {
    route_batch(s, &x, &labels);
    forward_losses(net, s, x, labels, dropout_seed, stats);
    for (int t = 0; t < s->n_tasks; t++) {
        SoftmaxXent L = {s->batch, net->n_classes[t]};
        softmax_xent_backward(&L, s->dlogits[t], network_activation(s->work, s->targets[t]),
                              labels + (size_t)t * s->batch, 1.0f);
    }
    memset(s->grad, 0, s->n_params * sizeof(float));
    network_backward(net, s->work, s->targets, (const float *const *)s->dlogits, s->n_tasks,
                     BACKWARD_EXACT, s->grad);
}

double train_step_loss(const Network *net, TrainStep *s, const float *x, const int32_t *labels,
                       uint64_t dropout_seed) {
    route_batch(s, &x, &labels);
    return forward_losses(net, s, x, labels, dropout_seed, NULL);
}

/* ------------------------------------------------- AdamW (or SGD: --optimizer) */

/* A run of parameters that one update rule covers: a layer's weights
 * (decayed unless batchnorm) or its biases, merged with the next when alike.
 * Running statistics are in no run: they are frozen for the optimizer. */
typedef struct {
    size_t start, end;
    bool decay;
} AdamRun;

/* The optimizer's state: Adam's moments m and v; SGD keeps its momentum
 * buffer in m (v stays zero). */
typedef struct {
    float *m, *v;
    AdamRun *runs; /* in order of start, disjoint */
    int n_runs;
    int64_t t; /* steps taken */
    size_t n;
} Adam;

static void adam_add_run(Adam *a, size_t start, size_t n, bool decay) {
    if (n == 0) return;
    AdamRun *last = a->n_runs ? &a->runs[a->n_runs - 1] : NULL;
    if (last && last->end == start && last->decay == decay) {
        last->end += n;
        return;
    }
    a->runs[a->n_runs++] = (AdamRun){start, start + n, decay};
}

static void adam_init(Adam *a, const Network *net) {
    a->n = net->n_params;
    a->m = alloc_floats(a->n ? a->n : 1);
    a->v = alloc_floats(a->n ? a->n : 1);
    memset(a->m, 0, a->n * sizeof(float));
    memset(a->v, 0, a->n * sizeof(float));
    a->t = 0;
    a->runs = xmalloc((size_t)(2 * net->arch.n_layers + 1) * sizeof *a->runs);
    a->n_runs = 0;
    for (int i = 0; i < net->arch.n_layers; i++) { /* layers lie in order in the block */
        const LayerParams *p = &net->params[i];
        bool bn = net->arch.layers[i].op == OP_BATCHNORM;
        adam_add_run(a, p->offset, (size_t)p->n_weight, !bn);
        adam_add_run(a, p->offset + (size_t)p->n_weight, (size_t)p->n_bias, false);
    }
}

static void adam_free(Adam *a) { free(a->m), free(a->v), free(a->runs); }

typedef struct {
    Adam *a;
    float *w;
    const float *g;
    bool sgd;
    /* AdamW: step = lr / (1 - b1^t), decay = lr * wd (decoupled), inv_c2 =
     * 1 / (1 - b2^t). SGD: step = lr, decay = wd (L2, in the gradient). */
    float step, decay, inv_c2;
} AdamJob;

#define ADAM_CHUNK 65536
static const double adam_b1 = 0.9, adam_b2 = 0.999; /* moment decays */
static const double sgd_momentum = 0.9;              /* --optimizer sgd; its buffer is m */

/* n parameters of one run, in loops without per-parameter branches (the
 * branches on each parameter's kind made the update 6% of a training step;
 * 3.9% without them, 1.3% vectorized). The moment loop vectorizes because
 * the build passes -fno-math-errno (with errno semantics sqrtf stays a
 * scalar call in gcc and clang). Each element's operations and their order
 * are the same in every clone (sqrt and division are exact), so the bits do
 * not depend on the SIMD width. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void adamw_span(float *restrict w, float *restrict m, float *restrict v,
                       const float *restrict g, size_t n, float step, float decay, float inv_c2) {
    const float b1 = (float)adam_b1, b2 = (float)adam_b2, eps = 1e-8f;
    const float c1 = (float)(1 - adam_b1), c2 = (float)(1 - adam_b2);
    if (decay != 0.0f) { /* decoupled: shrink first, as AdamW does */
#pragma omp simd
        for (size_t i = 0; i < n; i++) w[i] -= decay * w[i];
    }
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + c1 * g[i];
        v[i] = b2 * v[i] + c2 * g[i] * g[i];
        w[i] -= step * m[i] / (sqrtf(v[i] * inv_c2) + eps);
    }
}

/* PyTorch's SGD: L2 decay in the gradient, momentum buffer m. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void sgd_span(float *restrict w, float *restrict m, const float *restrict g, size_t n,
                     float step, float decay) {
    const float mu = (float)sgd_momentum;
    if (decay != 0.0f) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) m[i] = mu * m[i] + g[i] + decay * w[i];
    } else { /* + 0.0f as before: -0 becomes +0 */
#pragma omp simd
        for (size_t i = 0; i < n; i++) m[i] = mu * m[i] + g[i] + 0.0f;
    }
#pragma omp simd
    for (size_t i = 0; i < n; i++) w[i] -= step * m[i];
}

/* Parameters [k, k+1) x ADAM_CHUNK. Every parameter's update depends on
 * that parameter only, so splitting the block over the pool gives the same
 * bits as one loop. */
static void adam_chunk(void *ctx, int k, int worker) {
    (void)worker;
    const AdamJob *j = ctx;
    Adam *a = j->a;
    size_t lo = (size_t)k * ADAM_CHUNK, hi = lo + ADAM_CHUNK < a->n ? lo + ADAM_CHUNK : a->n;
    for (int r = 0; r < a->n_runs; r++) {
        size_t s = a->runs[r].start > lo ? a->runs[r].start : lo;
        size_t e = a->runs[r].end < hi ? a->runs[r].end : hi;
        if (s >= e) continue;
        float decay = a->runs[r].decay ? j->decay : 0.0f;
        if (j->sgd)
            sgd_span(j->w + s, a->m + s, j->g + s, e - s, j->step, decay);
        else
            adamw_span(j->w + s, a->m + s, a->v + s, j->g + s, e - s, j->step, decay, j->inv_c2);
    }
}

static void adam_step(Adam *a, float *w, const float *g, double lr, double wd, bool sgd,
                      Pool *pool) {
    a->t++;
    AdamJob j = {a, w, g, sgd, (float)lr, (float)wd, 1.0f};
    if (!sgd) {
        double c1 = 1 - pow(adam_b1, (double)a->t), c2 = 1 - pow(adam_b2, (double)a->t);
        j.step = (float)(lr / c1), j.decay = (float)(lr * wd), j.inv_c2 = (float)(1 / c2);
    }
    pool_run(pool, adam_chunk, &j, (int)((a->n + ADAM_CHUNK - 1) / ADAM_CHUNK));
}

/* Linear warmup, then cosine decay to 2% of the peak: a short run spends
 * most steps at a high rate and still ends annealed. */
static double lr_at(const TrainOptions *o, int64_t step, int64_t total) {
    int64_t warm = (int64_t)(o->warmup_fraction * (double)total);
    if (step < warm) return o->lr * (double)(step + 1) / (double)warm;
    double p = total > warm ? (double)(step - warm) / (double)(total - warm) : 1;
    return o->lr * (0.02 + 0.98 * 0.5 * (1 + cos(M_PI * p)));
}

/* ------------------------------------------------------------ checkpoints */

static char *ckpt_path(const char *out) {
    size_t n = strlen(out) + 6;
    char *p = xmalloc(n);
    snprintf(p, n, "%s.ckpt", out);
    return p;
}

/* The whole parameter block (weights and running statistics), Adam's
 * moments and the position: everything the next step depends on. */
static int ckpt_save(const char *path, const Network *net, const Adam *a, int epoch,
                     const TrainOptions *o, Error *err) {
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    int64_t shape[1] = {(int64_t)net->n_params};
    char buf[3][32];
    snprintf(buf[0], sizeof buf[0], "%d", epoch);
    snprintf(buf[1], sizeof buf[1], "%" PRId64, a->t);
    snprintf(buf[2], sizeof buf[2], "%" PRIu64, o->seed);
    int rc = safetensors_writer_add(&w, "param_block", 1, shape, net->param_block, err);
    if (!rc) rc = safetensors_writer_add(&w, "adam.m", 1, shape, a->m, err);
    if (!rc) rc = safetensors_writer_add(&w, "adam.v", 1, shape, a->v, err);
    if (!rc) rc = safetensors_writer_set_metadata(&w, "epoch", buf[0], err);
    if (!rc) rc = safetensors_writer_set_metadata(&w, "adam_t", buf[1], err);
    if (!rc) rc = safetensors_writer_set_metadata(&w, "seed", buf[2], err);
    if (!rc) rc = safetensors_writer_set_metadata(&w, "architecture", net->arch_json, err);
    if (!rc) rc = safetensors_writer_save(&w, path, err);
    safetensors_writer_free(&w);
    return rc;
}

static int ckpt_load(const char *path, Network *net, Adam *a, int *epoch, const TrainOptions *o,
                     Error *err) {
    Safetensors st;
    if (safetensors_open(&st, path, err) != 0) return -1;
    const char *ep = safetensors_metadata(&st, "epoch"), *t = safetensors_metadata(&st, "adam_t");
    const char *seed = safetensors_metadata(&st, "seed"), *arch = safetensors_metadata(&st, "architecture");
    int64_t shape[1] = {(int64_t)net->n_params};
    int rc = 0;
    if (!ep || !t || !seed || !arch)
        rc = error_set(err, "%s: not a training checkpoint (metadata missing)", path);
    else if (strcmp(arch, net->arch_json) != 0)
        rc = error_set(err, "%s: checkpoint is of another architecture", path);
    else if (strtoull(seed, NULL, 10) != o->seed)
        rc = error_set(err, "%s: checkpoint has seed %s, not %" PRIu64, path, seed, o->seed);
    if (!rc) rc = safetensors_read_f32(&st, "param_block", net->param_block, 1, shape, err);
    if (!rc) rc = safetensors_read_f32(&st, "adam.m", a->m, 1, shape, err);
    if (!rc) rc = safetensors_read_f32(&st, "adam.v", a->v, 1, shape, err);
    if (!rc) *epoch = atoi(ep), a->t = strtoll(t, NULL, 10);
    safetensors_close(&st);
    return rc;
}

/* ------------------------------------------------------------ the loop */

void train_options_default(TrainOptions *o) {
    *o = (TrainOptions){.epochs = 10, .batch = TRAIN_DEFAULT_BATCH, .lr = 1e-3,
                        .weight_decay = 1e-4, .warmup_fraction = 0.03, .seed = 1,
                        .aug = {.fresh_fraction = 0.25, .snr_lo = 0, .snr_hi = 20,
                                .max_shift_frames = 20}};
}

typedef struct {
    double loss[TRAIN_MAX_TASKS];
    long correct[TRAIN_MAX_TASKS], count[TRAIN_MAX_TASKS];
    int steps;
} EpochSums;

static void sums_add(EpochSums *e, const StepStats *s, int n_tasks) {
    for (int t = 0; t < n_tasks; t++) {
        e->loss[t] += s->loss[t];
        e->correct[t] += s->correct[t];
        e->count[t] += s->count[t];
    }
    e->steps++;
}

static double acc_of(const EpochSums *e, int t) {
    return e->count[t] ? (double)e->correct[t] / (double)e->count[t] : 0;
}

static void progress(const Network *net, const EpochSums *e, int epoch, int epochs, int step,
                     int steps, double rate, double left) {
    fprintf(stderr, "\rtrain: epoch %d/%d step %d/%d", epoch + 1, epochs, step, steps);
    for (int t = 0; t < net->n_tasks && t < TRAIN_MAX_TASKS; t++)
        fprintf(stderr, "  %s loss %.3f acc %.1f%%", net->task_names[t],
                e->loss[t] / (e->steps ? e->steps : 1), 100 * acc_of(e, t));
    fprintf(stderr, "  %.1f ex/s  %02d:%02d left ", rate, (int)(left / 60), (int)left % 60);
}

static int log_open(FILE **f, const char *path, const Network *net, bool append, Error *err) {
    *f = NULL;
    if (!path) return 0;
    *f = fopen(path, append ? "a" : "w");
    if (!*f) return error_set(err, "%s: cannot write the training log", path);
    if (append && ftell(*f) > 0) return 0;
    fprintf(*f, "epoch,steps,lr,seconds");
    for (int t = 0; t < net->n_tasks && t < TRAIN_MAX_TASKS; t++)
        fprintf(*f, ",loss_%s,acc_%s", net->task_names[t], net->task_names[t]);
    fprintf(*f, ",fresh_examples\n");
    return 0;
}

/* One row per finished epoch, flushed so a crash keeps the finished ones. */
static void log_row(FILE *f, const Network *net, const EpochSums *e, int epoch, int64_t steps,
                    double lr, double seconds, long fresh) {
    if (!f) return;
    fprintf(f, "%d,%" PRId64 ",%.6g,%.1f", epoch + 1, steps, lr, seconds);
    for (int t = 0; t < net->n_tasks && t < TRAIN_MAX_TASKS; t++)
        fprintf(f, ",%.5f,%.5f", e->loss[t] / (e->steps ? e->steps : 1), acc_of(e, t));
    fprintf(f, ",%ld\n", fresh);
    fflush(f);
}

static int save_model(const Network *net, const TrainOptions *o, const EpochSums *e, int epoch,
                      Error *err) {
    char vals[5 + TRAIN_MAX_TASKS][256], keys[TRAIN_MAX_TASKS][96]; /* training.augment: up to 243 B */
    const char *meta[2 * (7 + TRAIN_MAX_TASKS) + 1];
    int k = 0;
    snprintf(vals[0], sizeof vals[0], "%" PRIu64, o->seed);
    snprintf(vals[1], sizeof vals[1], "%d", epoch + 1);
    snprintf(vals[2], sizeof vals[2], "%d", o->batch);
    snprintf(vals[3], sizeof vals[3], "%g", o->lr);
    meta[k++] = "training.recipe", meta[k++] = o->recipe ? o->recipe : "unknown";
    meta[k++] = "training.seed", meta[k++] = vals[0];
    meta[k++] = "training.epochs", meta[k++] = vals[1];
    meta[k++] = "training.batch", meta[k++] = vals[2];
    char opt[40] = "adamw";
    if (o->sgd) snprintf(opt, sizeof opt, "sgd momentum=%g", sgd_momentum);
    meta[k++] = "training.optimizer", meta[k++] = opt;
    meta[k++] = "training.lr", meta[k++] = vals[3];
    /* what else decides the result: the augmentation (the init is fixed:
     * network_init_he, centered He) */
    /* the optional parts are absent at their defaults, as in files made
     * before the options */
    char envelope[48] = "", from[32] = "";
    if (o->aug.remix_oversample > 0)
        snprintf(envelope, sizeof envelope, " remix_envelope_oversample=%g", o->aug.remix_oversample);
    if (o->augment_from_epoch > 0) snprintf(from, sizeof from, " from_epoch=%d", o->augment_from_epoch + 1);
    snprintf(vals[4], sizeof vals[4], "shift=%d fresh=%g snr=%g:%g freq_shift=%g time_masks=%d:%d freq_masks=%d:%d%s%s",
             o->aug.max_shift_frames, o->aug.fresh_fraction, o->aug.snr_lo, o->aug.snr_hi,
             o->aug.freq_shift, o->aug.time_masks, o->aug.time_mask_frames, o->aug.freq_masks,
             o->aug.freq_mask_channels, envelope, from);
    meta[k++] = "training.augment", meta[k++] = vals[4];
    for (int t = 0; t < net->n_tasks && t < TRAIN_MAX_TASKS; t++) {
        snprintf(keys[t], sizeof keys[t], "training.train_accuracy.%s", net->task_names[t]);
        snprintf(vals[5 + t], sizeof vals[5 + t], "%.4f", acc_of(e, t));
        meta[k++] = keys[t], meta[k++] = vals[5 + t];
    }
    meta[k] = NULL;
    return network_save(net, o->out, meta, err);
}

typedef struct {
    TrainStep *step;
    BatchMaker *bm;
    float *x;
    int32_t *labels;
    Adam adam;
    FILE *log;
    Pool *pool; /* borrowed */
} Loop;

static void loop_free(Loop *l) {
    train_step_free(l->step);
    batch_maker_free(l->bm);
    free(l->x), free(l->labels);
    adam_free(&l->adam);
    if (l->log) fclose(l->log);
}

/* Loads the checkpoint if --resume and one exists; returns the first epoch. */
static int resume_from(Network *net, Loop *l, const TrainOptions *o, int *first, Error *err) {
    *first = 0;
    if (!o->resume) return 0;
    char *ck = ckpt_path(o->out);
    FILE *f = fopen(ck, "rb");
    int rc = 0;
    if (f) {
        fclose(f);
        rc = ckpt_load(ck, net, &l->adam, first, o, err);
        if (!rc && !o->quiet) fprintf(stderr, "train: resuming after epoch %d from %s\n", *first, ck);
    } else if (!o->quiet) {
        fprintf(stderr, "train: no checkpoint %s, starting from scratch\n", ck);
    }
    free(ck);
    return rc;
}

static int run_epoch(Network *net, Loop *l, const TrainOptions *o, int e, int steps,
                     EpochSums *sums, long *fresh, double t0, int64_t done0, Error *err) {
    int64_t total = (int64_t)o->epochs * steps;
    double last = now_seconds();
    Augment aug = o->aug;
    if (e < o->augment_from_epoch) /* time shifts and the remix's front end stay */
        aug.fresh_fraction = 0, aug.freq_shift = 0, aug.time_masks = 0, aug.freq_masks = 0;
    for (int k = 0; k < steps; k++) {
        int nf = batch_make(l->bm, &aug, o->seed, e, k, l->x, l->labels, err);
        if (nf < 0) return -1;
        *fresh += nf;
        StepStats st;
        train_step_run(net, l->step, l->x, l->labels, train_mix_seed(o->seed, e, k, 0xD80), &st);
        int64_t g = (int64_t)e * steps + k;
        adam_step(&l->adam, net->param_block, train_step_grad(l->step), lr_at(o, g, total),
                  o->weight_decay, o->sgd, l->pool);
        sums_add(sums, &st, net->n_tasks < TRAIN_MAX_TASKS ? net->n_tasks : TRAIN_MAX_TASKS);
        double now = now_seconds();
        if (!o->quiet && (now - last > 2 || k == steps - 1)) {
            double el = now - t0, done = (double)(g + 1 - done0);
            progress(net, sums, e, o->epochs, k + 1, steps, done * o->batch / el,
                     el / done * (double)(total - g - 1));
            last = now;
        }
    }
    return 0;
}

int train_run(Network *net, const TrainSet *ts, const TrainOptions *o, Pool *pool, Error *err) {
    if (ts->n < 1) return error_set(err, "no training examples");
    if (net->n_tasks > TRAIN_MAX_TASKS) return error_set(err, "at most %d tasks", TRAIN_MAX_TASKS);
    int steps = ts->n / o->batch > 0 ? ts->n / o->batch : 1;
    Loop l = {0};
    adam_init(&l.adam, net);
    int first;
    if (resume_from(net, &l, o, &first, err) != 0) return adam_free(&l.adam), -1;
    if (log_open(&l.log, o->log_csv, net, first > 0, err) != 0) return adam_free(&l.adam), -1;
    l.step = train_step_create(net, o->batch);
    l.pool = pool;
    /* The layers cut their products over the pool with OpenBLAS at one
     * thread: 3x faster per example than OpenBLAS's own threads here. With
     * AVX-512 kernels the results do not depend on the thread count; with
     * AVX2 ones they differ by rounding (blas_core_has_avx512), so a resume
     * must use the same thread count. The batch maker uses the same pool,
     * never at the same time. */
    if (pool) network_work_set_pool(l.step->work, pool);
    int blas_threads = blas_set_threads(pool ? 1 : 0);
    l.bm = batch_maker_create(ts, net, o->batch, o->aug.remix_oversample, pool);
    l.x = alloc_floats((size_t)o->batch * architecture_stage_numel(&net->arch, -1));
    l.labels = xmalloc(sizeof(int32_t) * (size_t)o->batch * TRAIN_MAX_TASKS);
    double t0 = now_seconds();
    int rc = 0;
    for (int e = first; e < o->epochs && !rc; e++) {
        EpochSums sums = {0};
        long fresh = 0;
        rc = run_epoch(net, &l, o, e, steps, &sums, &fresh, t0, (int64_t)first * steps, err);
        if (!o->quiet) fputc('\n', stderr);
        /* Model first, then the checkpoint: a crash in between resumes this
         * epoch's end state from the previous checkpoint, never skips one. */
        char *ck = ckpt_path(o->out);
        if (!rc) rc = save_model(net, o, &sums, e, err);
        if (!rc) rc = ckpt_save(ck, net, &l.adam, e + 1, o, err);
        free(ck);
        if (!rc)
            log_row(l.log, net, &sums, e, l.adam.t, lr_at(o, l.adam.t - 1, (int64_t)o->epochs * steps),
                    now_seconds() - t0, fresh);
        if (o->stop_after_epochs > 0 && e + 1 - first >= o->stop_after_epochs) break;
    }
    loop_free(&l);
    blas_set_threads(blas_threads);
    return rc;
}
