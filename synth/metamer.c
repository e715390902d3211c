/* One metamer: optimize a waveform so its activations at one stage match a
 * natural clip's, checkpointing as it goes, then measure the result.
 *
 * Loss: L(x) = ||a(x) - a0|| / ||a0||, dL/da = (a - a0) / (||a - a0|| ||a0||),
 * pulled back to the waveform with the exact vector-Jacobian product of the
 * network and the cochleagram (fake relu at the matched stage if set). The
 * zero-pattern term (zero_match, at the input of the relu below the stage)
 * adds to the gradient only: the loss curve and final_loss stay the L2 loss
 * every preset reports. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

typedef struct {
    ModelRun *m;
    int stage;
    size_t numel;
    const float *a0;
    double norm0; /* ||a0||, 1 if the natural clip's activations are all zero */
    float *d_act; /* dL/da */
    /* The zero-pattern term's layer (network_relu_input_of; -2 = none), its
     * size, the natural clip's values there and the term's gradient. */
    int sign_layer;
    size_t sign_numel;
    float *sign0, *d_sign;
} Objective;

/* Loss at x (forward only), leaving the stage's activations in m. */
static double objective_loss(Objective *o, const float *x) {
    model_forward(o->m, x, &o->stage, 1);
    const float *a = model_stage_output(o->m, o->stage);
    double ss = 0;
    for (size_t i = 0; i < o->numel; i++) {
        double d = (double)a[i] - o->a0[i];
        ss += d * d;
    }
    return sqrt(ss) / o->norm0;
}

void synth_zero_match_grad(float *d_pre, const float *pre, const float *pre0, size_t n,
                           double weight, double norm0) {
    float push = (float)(weight / norm0);
    for (size_t i = 0; i < n; i++)
        d_pre[i] = pre[i] > 0 && !(pre0[i] > 0) ? push : pre0[i] > 0 && !(pre[i] > 0) ? -push : 0.0f;
}

/* Loss and gradient at x, through the BACKWARD_* surrogates given, with the
 * zero-pattern term at weight zero_match. */
static double objective_grad(Objective *o, const float *x, float *g, unsigned surrogates,
                             double zero_match) {
    double loss = objective_loss(o, x);
    if (!isfinite(loss)) return loss;
    const float *a = model_stage_output(o->m, o->stage);
    /* At a perfect match the gradient is zero (not 0/0). */
    double dn = loss * o->norm0;
    float scale = dn > 0 ? (float)(1.0 / (dn * o->norm0)) : 0.0f;
    for (size_t i = 0; i < o->numel; i++) o->d_act[i] = (a[i] - o->a0[i]) * scale;
    int stages[2] = {o->stage, o->sign_layer};
    const float *d[2] = {o->d_act, o->d_sign};
    int n = 1;
    if (zero_match > 0 && o->sign0) { /* the forward to the stage computed that layer too */
        synth_zero_match_grad(o->d_sign, model_stage_output(o->m, o->sign_layer), o->sign0,
                              o->sign_numel, zero_match, o->norm0);
        n = 2;
    }
    model_backward(o->m, stages, d, n, surrogates, g);
    return loss;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The task's prediction for wave (-1 without a task). */
static int predict(ModelRun *m, int task_layer, const float *wave) {
    if (task_layer < 0) return -1;
    model_forward(m, wave, &task_layer, 1);
    return argmax(model_stage_output(m, task_layer), (int)model_stage_numel(m, task_layer));
}

static void state_init(MetamerState *st, const SynthSettings *s, int n, int total) {
    memset(st, 0, sizeof *st);
    st->wave = alloc_floats((size_t)n);
    st->loss = alloc_floats((size_t)(total > 0 ? total : 1));
    optim_init(&st->opt, s, n);
}

static void state_free(MetamerState *st) {
    free(st->wave);
    free(st->loss);
    optim_free(&st->opt);
}

/* White noise with sd init_sd (Feather 2023's start). */
static void state_fresh(MetamerState *st, const SynthSettings *s, uint64_t seed, int n) {
    rng_seed(&st->rng, seed);
    for (int i = 0; i < n; i++) st->wave[i] = (float)(s->init_sd * rng_normal(&st->rng));
    st->step = 0;
    st->seconds = 0;
}

/* Statistics of the final waveform against the natural clip, with the
 * exact model: the judge's own natural activations when o is a surrogate. */
static void measure(Objective *o, const MetamerSpec *spec, const float *wave, MetamerResult *r) {
    Objective j = *o;
    float *a0 = NULL;
    if (spec->judge && spec->judge != o->m) {
        j.m = spec->judge;
        model_forward(j.m, spec->natural, &j.stage, 1);
        a0 = alloc_floats(j.numel);
        memcpy(a0, model_stage_output(j.m, j.stage), j.numel * sizeof(float));
        double ss = 0;
        for (size_t i = 0; i < j.numel; i++) ss += (double)a0[i] * a0[i];
        j.a0 = a0, j.norm0 = ss > 0 ? sqrt(ss) : 1.0;
    }
    r->final_loss = objective_loss(&j, wave);
    const float *a = model_stage_output(j.m, j.stage);
    r->spearman = synth_spearman(j.a0, a, j.numel);
    r->pearson = synth_pearson(j.a0, a, j.numel);
    r->snr_db = synth_snr_db(j.a0, a, j.numel);
    r->pred_metamer = predict(j.m, spec->task_layer, wave);
    r->pred_natural = predict(j.m, spec->task_layer, spec->natural);
    free(a0);
}

/* Where a trajectory's steps sit in the metamer's whole budget, for the
 * progress display: probe k of the starts covers [k * probe, (k+1) * probe),
 * the chosen start continues after all probes. */
typedef struct {
    int offset, budget;
} ProgressSpan;

/* The optimization loop from st->step up to step `stop`; returns 0, or -1
 * on a checkpoint write error (checkpoints only if `checkpoint`).
 * Divergence is a result, not an error. */
static int optimize(Objective *o, const SynthSettings *s, const MetamerSpec *spec,
                    MetamerState *st, int n, int stop, bool checkpoint, ProgressSpan span,
                    MetamerResult *r, Error *err) {
    float *g = alloc_floats((size_t)n);
    double t0 = now_seconds(), base = st->seconds;
    int rc = 0;
    while (st->step < stop) {
        double loss = objective_grad(o, st->wave, g, synth_surrogates_at(s, st->step),
                                     synth_zero_match_at(s, st->step));
        st->loss[st->step] = (float)loss;
        if (!isfinite(loss)) {
            r->diverged = true;
            snprintf(r->divergence, sizeof r->divergence, "diverged at step %d: loss %g",
                     st->step, loss);
            break;
        }
        if (optim_step(s, &st->opt, st->step, st->wave, g) != 0) {
            r->diverged = true;
            snprintf(r->divergence, sizeof r->divergence,
                     "diverged at step %d: gradient not finite (loss %.4g)", st->step, loss);
            break;
        }
        st->step++;
        if (spec->progress) spec->progress(spec->progress_ctx, span.offset + st->step, span.budget, loss);
        if (checkpoint && spec->checkpoint && s->checkpoint_every > 0 &&
            st->step % s->checkpoint_every == 0 && st->step < synth_total_steps(s)) {
            st->seconds = base + (now_seconds() - t0);
            const char *plans = cochleagram_plans_id(o->m->coch);
            if ((rc = checkpoint_save(spec->checkpoint, spec->key, plans, s, st, n, err)) != 0) break;
        }
    }
    st->seconds = base + (now_seconds() - t0);
    free(g);
    return rc;
}

static void state_copy(MetamerState *dst, const MetamerState *src, int n) {
    dst->step = src->step, dst->start = src->start, dst->rng = src->rng, dst->seconds = src->seconds;
    memcpy(dst->wave, src->wave, (size_t)n * sizeof(float));
    memcpy(dst->loss, src->loss, (size_t)src->step * sizeof(float));
    dst->loss[src->step] = src->loss[src->step]; /* a diverging loss, when there is one */
    if (src->opt.m) {
        memcpy(dst->opt.m, src->opt.m, (size_t)n * sizeof(float));
        memcpy(dst->opt.v, src->opt.v, (size_t)n * sizeof(float));
    }
}

uint64_t synth_start_seed(uint64_t noise_seed, int k) {
    return noise_seed + (uint64_t)k * 0xD1B54A32D192ED03ull; /* rng_seed's splitmix spreads it */
}

/* Probing starts: each of set->starts noises (the first is spec->noise_seed,
 * shared by every stage of the clip; the others derive from it, so they are
 * shared too) takes the trajectory's first probe steps; st ends as the one
 * with the lowest loss there, its time the probes' total. Probes are not
 * checkpointed: they are short and deterministic, so a run killed during
 * them redoes them and gets the same choice. A diverged probe is never
 * chosen unless all diverge (then r says how the first did). */
static void probe_starts(Objective *o, const SynthSettings *s, const MetamerSpec *spec,
                         MetamerState *st, int n, MetamerResult *r) {
    int probe = synth_probe_steps(s), total = synth_total_steps(s);
    MetamerState cand;
    state_init(&cand, s, n, total);
    double best = INFINITY, seconds = 0;
    char first_divergence[sizeof r->divergence] = "";
    for (int k = 0; k < s->starts; k++) {
        MetamerResult pr = {0};
        optim_reset(&cand.opt);
        state_fresh(&cand, s, synth_start_seed(spec->noise_seed, k), n);
        Error unused;
        optimize(o, s, spec, &cand, n, probe, false,
                 (ProgressSpan){k * probe, synth_budget_steps(s)}, &pr, &unused);
        seconds += cand.seconds;
        double loss = pr.diverged ? INFINITY : objective_loss(o, cand.wave);
        if (k == 0) memcpy(first_divergence, pr.divergence, sizeof first_divergence);
        if (k == 0 || loss < best) {
            best = loss, cand.start = k;
            state_copy(st, &cand, n);
        }
    }
    st->seconds = seconds;
    if (!isfinite(best)) r->diverged = true, memcpy(r->divergence, first_divergence, sizeof r->divergence);
    state_free(&cand);
}

int synth_metamer(ModelRun *m, const SynthSettings *set, const MetamerSpec *spec,
                  MetamerResult *res, Error *err) {
    memset(res, 0, sizeof *res);
    int n = model_run_samples(m), total = synth_total_steps(set);
    if (total <= 0) return error_set(err, "no optimization steps (rounds %d x steps %d)",
                                     set->rounds, set->steps);
    Objective o = {.m = m, .stage = spec->stage};
    o.numel = (size_t)model_stage_numel(m, spec->stage);
    float *a0 = alloc_floats(o.numel);
    model_forward(m, spec->natural, &o.stage, 1);
    memcpy(a0, model_stage_output(m, o.stage), o.numel * sizeof(float));
    double ss = 0;
    for (size_t i = 0; i < o.numel; i++) ss += (double)a0[i] * a0[i];
    o.a0 = a0;
    o.norm0 = ss > 0 ? sqrt(ss) : 1.0;
    o.d_act = alloc_floats(o.numel);
    o.sign_layer = set->zero_match > 0 ? network_relu_input_of(m->net, o.stage) : -2;
    if (o.sign_layer != -2) {
        o.sign_numel = (size_t)model_stage_numel(m, o.sign_layer);
        o.sign0 = alloc_floats(o.sign_numel);
        o.d_sign = alloc_floats(o.sign_numel);
        memcpy(o.sign0, model_stage_output(m, o.sign_layer), o.sign_numel * sizeof(float));
    }

    MetamerState st;
    state_init(&st, set, n, total);
    int loaded = spec->checkpoint
                     ? checkpoint_load(spec->checkpoint, spec->key, cochleagram_plans_id(m->coch), set,
                                       &st, n, total, &res->resumed_other_plans, err)
                     : 0;
    int rc = loaded < 0 ? -1 : 0;
    int probe = synth_probe_steps(set);
    if (loaded == 0 && set->starts > 1) {
        probe_starts(&o, set, spec, &st, n, res);
        /* Resuming from here must not probe again. */
        if (!res->diverged && spec->checkpoint && set->checkpoint_every > 0 && st.step < total)
            rc = checkpoint_save(spec->checkpoint, spec->key, cochleagram_plans_id(m->coch), set, &st,
                                 n, err);
    } else if (loaded == 0) {
        state_fresh(&st, set, spec->noise_seed, n);
    } else {
        res->resumed_from = st.step;
        /* A NaN loss tells the progress display where a resumed run starts. */
        if (spec->progress)
            spec->progress(spec->progress_ctx, (set->starts > 1 ? set->starts - 1 : 0) * probe + st.step,
                           synth_budget_steps(set), NAN);
    }
    if (rc == 0 && !res->diverged)
        rc = optimize(&o, set, spec, &st, n, total, true,
                      (ProgressSpan){(set->starts > 1 ? set->starts - 1 : 0) * probe, synth_budget_steps(set)},
                      res, err);
    if (rc == 0) {
        measure(&o, spec, st.wave, res);
        res->iterations = st.step + (set->starts > 1 ? (set->starts - 1) * probe : 0);
        res->start = st.start;
        res->seconds = st.seconds;
        res->n_loss = st.step + (res->diverged ? 1 : 0); /* the diverging loss is kept */
        res->wave = st.wave, st.wave = NULL;
        res->loss = st.loss, st.loss = NULL;
    }
    state_free(&st);
    free(a0);
    free(o.d_act);
    free(o.sign0);
    free(o.d_sign);
    return rc;
}

void metamer_result_free(MetamerResult *r) {
    free(r->wave);
    free(r->loss);
    memset(r, 0, sizeof *r);
}
