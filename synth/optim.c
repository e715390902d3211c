/* Presets, learning-rate schedules and the optimizer steps.
 *
 * feather2023 is the published procedure (DESIGN.md): normalized gradient
 * steps x <- clamp(x - lr * g/||g||, -1, 1), 8 rounds of 3000 steps, lr = 1
 * halved each round, white-noise start with sd 1e-7, fake relu at the
 * matched stage.
 *
 * fast is Adam with a cosine learning-rate decay and the same clamp, start
 * and fake relu, in 1/4 of the steps; the benchmark and tests compare the
 * two on the same success criterion (see README.md for the figures). Its
 * first half also spreads each max-pool window's gradient over the window:
 * with the exact gradient only a window's current maximum moves, so a
 * metamer whose maxima sit on the wrong elements stalls (in overlapping
 * windows, one element cannot serve two windows with different targets);
 * spreading lets other elements rise and take over, and the second half
 * descends the exact loss from there (synth/README.md has the figures).
 *
 * Every quantity that carries over from one step to the next is float32 (the
 * waveform, Adam's moments) or recomputed from the step number (the
 * learning rate, bias corrections), so a checkpoint holds the complete state
 * and a resumed run continues bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

static const SynthSettings feather2023 = {
    .preset = "feather2023", .optimizer = SYNTH_OPT_NORMGRAD, .schedule = SYNTH_SCHED_ROUNDS,
    .rounds = 8, .steps = 3000, .lr = 1.0, .lr_decay = 0.5,
    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
    .init_sd = 1e-7, .clamp = 1.0, .clip_rms = 0.1, .fake_relu = true, .checkpoint_every = 250,
    .starts = 1,
};

/* Chosen on small nets (tests/test_synth.c, bench/bench_synth.c): Adam's
 * per-sample scaling reaches the normalized-gradient loss levels in far fewer
 * steps; a cosine decay from 2e-3 lands it without a step-size plateau. The
 * max-pool spread and the zero-pattern term were chosen on the default
 * model's demo clips (synth/README.md). */
static const SynthSettings fast = {
    .preset = "fast", .optimizer = SYNTH_OPT_ADAM, .schedule = SYNTH_SCHED_COSINE,
    .rounds = 1, .steps = 4280, .lr = 2e-3, .lr_decay = 0.01,
    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
    .init_sd = 1e-7, .clamp = 1.0, .clip_rms = 0.1, .fake_relu = true, .checkpoint_every = 250,
    .maxpool_spread = 0.5, .zero_match = 0.3,
    .starts = 5, .probe = 0.1, /* 4280 + 4 x 428 probe steps = 5992 in all */
};

int synth_settings_preset(const char *name, SynthSettings *s, Error *err) {
    if (strcmp(name, "feather2023") == 0) return *s = feather2023, 0;
    if (strcmp(name, "fast") == 0) return *s = fast, 0;
    return error_set(err, "unknown preset '%s' (feather2023, fast)", name);
}

int synth_optimizer_parse(const char *name, SynthOptimizer *o, Error *err) {
    if (strcmp(name, "normgrad") == 0) return *o = SYNTH_OPT_NORMGRAD, 0;
    if (strcmp(name, "adam") == 0) return *o = SYNTH_OPT_ADAM, 0;
    return error_set(err, "unknown optimizer '%s' (normgrad, adam)", name);
}

const char *synth_optimizer_name(SynthOptimizer o) {
    return o == SYNTH_OPT_ADAM ? "adam" : "normgrad";
}

int synth_total_steps(const SynthSettings *s) { return s->rounds * s->steps; }

int synth_probe_steps(const SynthSettings *s) {
    if (s->starts <= 1) return 0;
    int p = (int)lround(s->probe * synth_total_steps(s));
    return p < 1 ? 1 : p;
}

int synth_budget_steps(const SynthSettings *s) {
    return synth_total_steps(s) + (s->starts > 1 ? (s->starts - 1) * synth_probe_steps(s) : 0);
}

double synth_lr_at(const SynthSettings *s, int step) {
    if (s->schedule == SYNTH_SCHED_COSINE) {
        /* From lr down to lr * lr_decay^rounds, smoothly. */
        double total = synth_total_steps(s), end = s->lr * pow(s->lr_decay, s->rounds);
        double c = 0.5 * (1 + cos(M_PI * step / total));
        return end + (s->lr - end) * c;
    }
    return s->lr * pow(s->lr_decay, step / s->steps);
}

unsigned synth_surrogates_at(const SynthSettings *s, int step) {
    unsigned sur = s->fake_relu ? BACKWARD_FAKE_RELU : BACKWARD_EXACT;
    if (step < s->maxpool_spread * synth_total_steps(s)) sur |= BACKWARD_SPREAD_MAXPOOL;
    if (step < s->relu_revive * synth_total_steps(s)) sur |= BACKWARD_REVIVE_RELU;
    return sur;
}

/* The zero-pattern term waits for the last quarter: from the start its
 * constant push fights the shape the L2 loss is still finding (one of four
 * genre/avgpool clips diverged to loss 0.56; synth/README.md). It then ramps
 * in over a twentieth of the steps: switched on at once, its gradient
 * arrives while Adam's second moments still have the L2 gradient's scale,
 * so the first steps are many times too long (word-test-00006 at
 * word/avgpool went from loss 0.063 to 0.139 in 20 steps). */
double synth_zero_match_at(const SynthSettings *s, int step) {
    int total = synth_total_steps(s);
    double start = 0.75 * total, ramp = total / 20.0;
    if (step < start) return 0.0;
    return step - start < ramp ? s->zero_match * (step - start) / ramp : s->zero_match;
}

/* Shortest decimal that reads back as exactly v (so "0.9", not
 * "0.90000000000000002"). */
static const char *exact(double v, char buf[32]) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, 32, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

void synth_settings_describe(const SynthSettings *s, char *buf, size_t size) {
    char a[32], b[32], c[32];
    int n = snprintf(buf, size, "optimizer=%s schedule=%s rounds=%d steps=%d lr=%s lr_decay=%s",
                     synth_optimizer_name(s->optimizer),
                     s->schedule == SYNTH_SCHED_COSINE ? "cosine" : "rounds", s->rounds, s->steps,
                     exact(s->lr, a), exact(s->lr_decay, b));
    if (s->optimizer == SYNTH_OPT_ADAM && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " beta1=%s beta2=%s eps=%s", exact(s->beta1, a),
                      exact(s->beta2, b), exact(s->eps, c));
    if (n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " init_sd=%s clamp=%s", exact(s->init_sd, a),
                      exact(s->clamp, b));
    if (n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " clip_rms=%s fake_relu=%d", exact(s->clip_rms, a),
                      (int)s->fake_relu);
    /* only when set, so exact runs keep the descriptions older runs wrote */
    if (s->maxpool_spread > 0 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " maxpool_spread=%s", exact(s->maxpool_spread, a));
    if (s->relu_revive > 0 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " relu_revive=%s", exact(s->relu_revive, a));
    if (s->zero_match > 0 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " zero_match=%s", exact(s->zero_match, a));
    if (s->starts > 1 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " starts=%d probe=%s", s->starts, exact(s->probe, a));
    if (s->envelope_oversample > 0 && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " envelope_oversample=%s", exact(s->envelope_oversample, a));
}

/* ------------------------------------------------------------ optimizers */

void optim_reset(OptState *st) {
    if (st->m) memset(st->m, 0, (size_t)st->n * sizeof *st->m);
    if (st->v) memset(st->v, 0, (size_t)st->n * sizeof *st->v);
}

void optim_init(OptState *st, const SynthSettings *s, int n) {
    memset(st, 0, sizeof *st);
    st->n = n;
    if (s->optimizer == SYNTH_OPT_ADAM) {
        st->m = alloc_floats((size_t)n);
        st->v = alloc_floats((size_t)n);
        optim_reset(st);
    }
}

void optim_free(OptState *st) {
    free(st->m);
    free(st->v);
    memset(st, 0, sizeof *st);
}

static float clampf(float x, float c) { return x > c ? c : x < -c ? -c : x; }

/* x <- clamp(x - lr * g / ||g||). A zero gradient leaves x as it is. */
static void normgrad_step(const SynthSettings *s, double lr, float *x, const float *g, int n,
                          double gnorm) {
    if (gnorm == 0) return;
    float scale = (float)(lr / gnorm), c = (float)s->clamp;
    for (int i = 0; i < n; i++) x[i] = clampf(x[i] - scale * g[i], c);
}

/* Adam with bias correction; t = step + 1 as in PyTorch. */
static void adam_step(const SynthSettings *s, OptState *st, int step, double lr, float *x,
                      const float *g, int n) {
    float b1 = (float)s->beta1, b2 = (float)s->beta2, c = (float)s->clamp;
    double t = step + 1;
    float bc1 = (float)(1 - pow(s->beta1, t)), bc2 = (float)sqrt(1 - pow(s->beta2, t));
    float a = (float)lr * bc2 / bc1, eps = (float)s->eps * bc2;
    for (int i = 0; i < n; i++) {
        st->m[i] = b1 * st->m[i] + (1 - b1) * g[i];
        st->v[i] = b2 * st->v[i] + (1 - b2) * g[i] * g[i];
        x[i] = clampf(x[i] - a * st->m[i] / (sqrtf(st->v[i]) + eps), c);
    }
}

int optim_step(const SynthSettings *s, OptState *st, int step, float *x, const float *g) {
    double gg = 0;
    for (int i = 0; i < st->n; i++) gg += (double)g[i] * g[i];
    if (!isfinite(gg)) return -1;
    double lr = synth_lr_at(s, step);
    if (s->optimizer == SYNTH_OPT_ADAM)
        adam_step(s, st, step, lr, x, g, st->n);
    else
        normgrad_step(s, lr, x, g, st->n, sqrt(gg));
    return 0;
}
