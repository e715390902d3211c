/* Training throughput of the bundled default model: the front end on one
 * clip (the cost of every fresh noisy mix), and one optimizer step of the
 * branched network per example at the training batch size. These figures
 * decide the default front end, widths and epochs (model/README.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../model/train.h"
#include "bench.h"

#define RUNS 10

/* Median seconds of one forward pass of the default front end on noise:
 * exact (oversample 0) or with the reduced-rate envelope of `train
 * --remix-envelope reduced` (its error: bench cochleagram_reduced_envelope). */
static double front_end_forward(double oversample, int *channels, int *frames) {
    Error err;
    FrontEndConfig fe;
    if (front_end_config_preset("default", &fe, &err) != 0) return NAN;
    Cochleagram *c = cochleagram_create_reduced(&fe, oversample, &err);
    if (!c) return NAN;
    CochleagramWork *w = cochleagram_work_create(c, 1);
    int n = cochleagram_samples(c);
    *channels = cochleagram_channels(c), *frames = cochleagram_frames(c);
    float *x = alloc_floats((size_t)n), *y = alloc_floats((size_t)*channels * *frames);
    Rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < n; i++) x[i] = (float)(0.1 * rng_normal(&r));
    double t[RUNS];
    for (int k = 0; k < RUNS; k++) {
        double t0 = now_seconds();
        cochleagram_forward(c, w, NULL, x, y);
        t[k] = now_seconds() - t0;
    }
    free(x), free(y);
    cochleagram_work_free(w);
    cochleagram_free(c);
    return bench_median(t, RUNS);
}

BENCH(train_front_end_default) {
    int ch, fr;
    double exact = front_end_forward(0, &ch, &fr), reduced = front_end_forward(COCHLEAGRAM_REDUCED_OVERSAMPLE, &ch, &fr);
    char note[96];
    snprintf(note, sizeof note, "%d x %d, one thread", ch, fr);
    bench_report("front end 'default' forward", 1e3 * exact, "ms/clip", note);
    snprintf(note, sizeof note, "%.1fx faster than exact, same run", exact / reduced);
    bench_report("same, reduced envelope (--remix-envelope)", 1e3 * reduced, "ms/clip", note);
}

/* One step of the batch; returns seconds per example (median). */
static double step_seconds(const Network *net, TrainStep *s, const float *x, const int32_t *labels,
                           int batch) {
    double t[RUNS];
    for (int k = 0; k < RUNS; k++) {
        double t0 = now_seconds();
        train_step_run(net, s, x, labels, (uint64_t)k, NULL);
        t[k] = now_seconds() - t0;
    }
    return bench_median(t, RUNS) / batch;
}

/* Seconds per example of built-in net `arch`'s train step on the `train`
 * recipe's mix (2160 genre clips of 34160, ~2 per batch of 32): routed, and
 * unrouted too when `every` is given. Returns the parameter count, 0 if the
 * net cannot be built. */
static size_t arch_step_seconds(const char *arch, double *every, double *routed) {
    Error err;
    FrontEndConfig fe;
    Network net;
    if (front_end_config_preset("default", &fe, &err) != 0) return 0;
    if (network_builtin(&net, arch, &fe, 1, &err) != 0) return 0;
    int batch = TRAIN_DEFAULT_BATCH;
    TrainStep *s = train_step_create(&net, batch);
    size_t in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = alloc_floats(in * batch);
    int32_t *labels = xmalloc(sizeof(int32_t) * batch * 2);
    Rng r;
    rng_seed(&r, 2);
    for (size_t i = 0; i < in * batch; i++) x[i] = (float)rng_uniform(&r);
    for (int b = 0; b < batch; b++) {
        bool genre = b % 16 == 5;
        labels[b] = genre ? -1 : (int32_t)(b % 200);      /* word */
        labels[batch + b] = genre ? (int32_t)(b % 9) : -1; /* genre */
    }
    if (every) {
        train_step_set_routing(s, false);
        *every = step_seconds(&net, s, x, labels, batch);
    }
    train_step_set_routing(s, true);
    *routed = step_seconds(&net, s, x, labels, batch);
    size_t n_params = net.n_params;
    free(x), free(labels);
    train_step_free(s);
    network_free(&net);
    return n_params;
}

BENCH(train_step_default) {
    double every, routed, t2;
    size_t n_params = arch_step_seconds("default", &every, &routed);
    if (!n_params || !arch_step_seconds("default-t2", NULL, &t2)) return;
    char note[128];
    snprintf(note, sizeof note, "batch %d (30 word, 2 genre), %zu params, every example through both branches",
             TRAIN_DEFAULT_BATCH, n_params);
    bench_report("default net train step, unrouted", 1e3 * every, "ms/example", note);
    snprintf(note, sizeof note, "each example through its task's branch: %.2fx faster, same run",
             every / routed);
    bench_report("default net train step, routed (train's default)", 1e3 * routed, "ms/example", note);
    snprintf(note, sizeof note, "conv0 time stride 2 (relu2 13 time bins): %.2fx default's routed step, same run",
             t2 / routed);
    bench_report("default-t2 net train step, routed", 1e3 * t2, "ms/example", note);
}
