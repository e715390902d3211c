/* Metamer synthesis speed: optimizer steps per second at each stage (one
 * step = forward to the stage + loss + backward with fake relu + update),
 * for builtin:cochcnn9 (random weights, cochleagram_1) and the default model
 * if present, the projected wall time of feather2023 at every stage of one
 * clip on two cores, the wall time of one full feather2023 metamer at the
 * default model's deepest stage, and fast vs feather2023 on a small net.
 *
 * The default model is models/default.safetensors or $METAMERS_SYNTH_MODEL;
 * its rows are skipped with a note when it is absent. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../synth/synth.h"
#include "bench.h"

static const char *default_model(void) {
    const char *env = getenv("METAMERS_SYNTH_MODEL");
    const char *path = env && *env ? env : "models/default.safetensors";
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    return path;
}

/* A voiced, modulated test clip at RMS 0.1. */
static float *test_clip(int n, int sr) {
    float *x = alloc_floats((size_t)n);
    for (int i = 0; i < n; i++) {
        double t = (double)i / sr, f0 = 140 + 30 * sin(2 * M_PI * 2 * t), v = 0;
        for (int h = 1; h <= 20 && f0 * h < sr / 2.0; h++) v += sin(2 * M_PI * f0 * h * t + h) / h;
        x[i] = (float)(v * (0.6 + 0.4 * sin(2 * M_PI * 5 * t)));
    }
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float g = (float)(SYNTH_CLIP_RMS / sqrt(ss / n));
    for (int i = 0; i < n; i++) x[i] *= g;
    return x;
}

/* Seconds per feather2023 step at stage: median over `reps` steps. */
static double step_seconds(ModelRun *m, int stage, const float *natural, int reps) {
    int n = model_run_samples(m);
    size_t k = (size_t)model_stage_numel(m, stage);
    float *a0 = alloc_floats(k), *d = alloc_floats(k), *x = alloc_floats((size_t)n), *g = alloc_floats((size_t)n);
    model_forward(m, natural, &stage, 1);
    memcpy(a0, model_stage_output(m, stage), k * sizeof(float));
    Rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < n; i++) x[i] = (float)(1e-7 * rng_normal(&r));
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int rep = -1; rep < reps; rep++) { /* one warm-up step */
        double t0 = now_seconds();
        model_forward(m, x, &stage, 1);
        const float *a = model_stage_output(m, stage);
        double ss = 0;
        for (size_t i = 0; i < k; i++) d[i] = a[i] - a0[i], ss += (double)d[i] * d[i];
        const float *ds[1] = {d};
        model_backward(m, &stage, ds, 1, BACKWARD_FAKE_RELU, g);
        double gg = 0;
        for (int i = 0; i < n; i++) gg += (double)g[i] * g[i];
        float s = gg > 0 ? (float)(1 / sqrt(gg)) : 0;
        for (int i = 0; i < n; i++) x[i] = fminf(1, fmaxf(-1, x[i] - s * g[i]));
        if (rep >= 0) t[rep] = now_seconds() - t0;
    }
    double med = bench_median(t, reps);
    free(t), free(a0), free(d), free(x), free(g);
    return med;
}

/* Steps/s per stage with one thread (as each of two parallel jobs runs),
 * and the projected feather2023 time for every stage of one clip on two
 * cores (longest jobs first over two workers). Returns the projection. */
static double stage_table(const char *spec, const char *label, int reps, double oversample) {
    Network net;
    Error err = {0};
    if (network_open(&net, spec, &err) != 0) {
        printf("  %s: %s\n", spec, err.msg);
        return -1;
    }
    ModelRun m;
    if (model_run_init_reduced(&m, &net, NULL, oversample, &err) != 0) {
        printf("  %s\n", err.msg);
        network_free(&net);
        return -1;
    }
    int old = openblas_get_num_threads();
    openblas_set_num_threads(1);
    float *clip = test_clip(model_run_samples(&m), net.front_end.sr);
    int *stages = malloc(sizeof(int) * ((size_t)net.arch.n_layers + 1));
    int ns = synth_task_stages(&net, 0, stages);
    double *sec = malloc(sizeof(double) * (size_t)ns), w[2] = {0, 0};
    for (int s = 0; s < ns; s++) {
        sec[s] = step_seconds(&m, stages[s], clip, reps);
        char what[160];
        snprintf(what, sizeof what, "%s %s, 1 thread", label, stages[s] < 0 ? "cochleagram" : net.arch.layers[stages[s]].name);
        bench_report(what, 1 / sec[s], "step/s", NULL);
    }
    /* Deepest (costliest) first onto the less loaded of two workers. */
    for (int s = ns - 1; s >= 0; s--) w[w[1] < w[0]] += 24000 * sec[s];
    double projected = fmax(w[0], w[1]);
    char note[120];
    snprintf(note, sizeof note, "%d stages x 24000 steps, 2 parallel jobs (target <= 15 min)", ns);
    char what[160];
    snprintf(what, sizeof what, "%s feather2023, all stages of one clip", label);
    bench_report(what, projected / 60, "min", note);
    /* A lone job gets both cores for the cochleagram (synth keeps OpenBLAS
     * at one thread: its threaded sgemv is not bit-identical to the serial). */
    Pool *pool = pool_create(2);
    ModelRun m2;
    if (model_run_init_reduced(&m2, &net, pool, oversample, &err) == 0) {
        int deepest = stages[ns - 1];
        double s2 = step_seconds(&m2, deepest, clip, reps);
        snprintf(what, sizeof what, "%s %s, 1 job x 2 threads", label, net.arch.layers[deepest].name);
        bench_report(what, 1 / s2, "step/s", NULL);
        model_run_free(&m2);
    }
    openblas_set_num_threads(old);
    pool_free(pool);
    free(stages), free(sec), free(clip);
    model_run_free(&m);
    network_free(&net);
    return projected;
}

BENCH(synth_steps_cochcnn9) { stage_table("builtin:cochcnn9", "cochcnn9 (random)", 3, 0); }

BENCH(synth_steps_default_model) {
    const char *path = default_model();
    if (!path) {
        printf("  note: models/default.safetensors absent (set METAMERS_SYNTH_MODEL=path): skipped\n");
        return;
    }
    stage_table(path, "default", 5, 0);
}

/* The same through the reduced-rate envelope surrogate (`--envelope reduced`). */
BENCH(synth_steps_default_model_reduced_envelope) {
    const char *path = default_model();
    if (!path) {
        printf("  note: models/default.safetensors absent (set METAMERS_SYNTH_MODEL=path): skipped\n");
        return;
    }
    stage_table(path, "default, --envelope reduced", 5, COCHLEAGRAM_REDUCED_OVERSAMPLE);
}

/* One whole feather2023 metamer (24000 steps) at the default model's
 * deepest stage: the last layer on the path to its first task's output. */
BENCH(synth_full_feather2023_default_deepest) {
    const char *path = default_model();
    if (!path) {
        printf("  note: models/default.safetensors absent (set METAMERS_SYNTH_MODEL=path): skipped\n");
        return;
    }
    Network net;
    Error err = {0};
    if (network_open(&net, path, &err) != 0) {
        printf("  %s: %s\n", path, err.msg);
        return;
    }
    Pool *pool = pool_create(2);
    ModelRun m;
    model_run_init(&m, &net, pool, &err);
    int old = openblas_get_num_threads();
    openblas_set_num_threads(1); /* as synth runs it */
    float *clip = test_clip(model_run_samples(&m), net.front_end.sr);
    SynthSettings s;
    synth_settings_preset("feather2023", &s, &err);
    int stage = net.task_layers[0];
    MetamerSpec spec = {.stage = stage, .task_layer = stage, .natural = clip, .noise_seed = 1};
    MetamerResult r;
    double t0 = now_seconds();
    if (synth_metamer(&m, &s, &spec, &r, &err) == 0) {
        char what[160], note[160];
        snprintf(what, sizeof what, "default feather2023 metamer at %s", net.arch.layers[stage].name);
        snprintf(note, sizeof note, "%d steps, final loss %.3g, 1 job x 2 threads", r.iterations, r.final_loss);
        bench_report(what, (now_seconds() - t0) / 60, "min", note);
        metamer_result_free(&r);
    }
    openblas_set_num_threads(old);
    free(clip);
    model_run_free(&m);
    pool_free(pool);
    network_free(&net);
}

/* fast against feather2023 on a small net (cochcnn9-small layout, random
 * weights, tiny front end): final losses, and the step at which fast first
 * reaches feather2023's final loss (the "<= 1/4 of the steps" claim). */
BENCH(synth_fast_vs_feather2023_small) {
    Network net;
    Error err = {0};
    FrontEndConfig fe;
    front_end_config_preset("tiny", &fe, &err);
    if (network_builtin(&net, "cochcnn9-small", &fe, 3, &err) != 0) {
        printf("  %s\n", err.msg);
        return;
    }
    ModelRun m;
    model_run_init(&m, &net, NULL, &err);
    float *clip = test_clip(model_run_samples(&m), fe.sr);
    const char *names[] = {"cochleagram", "relu0", "relu1", "relu2", "relu4", "relufc"};
    SynthSettings f, q;
    synth_settings_preset("feather2023", &f, &err);
    synth_settings_preset("fast", &q, &err);
    for (int k = 0; k < 6; k++) {
        int stage = network_stage_index(&net, names[k], &err);
        MetamerSpec spec = {.stage = stage, .task_layer = net.task_layers[0], .natural = clip, .noise_seed = 1};
        MetamerResult rf, rq;
        if (synth_metamer(&m, &f, &spec, &rf, &err) || synth_metamer(&m, &q, &spec, &rq, &err)) {
            printf("  %s\n", err.msg);
            break;
        }
        /* loss[i]: after i steps of the chosen start, which come after the
         * other starts' probes */
        int reach = -1, probes = rq.iterations - rq.n_loss;
        for (int i = 0; i < rq.n_loss && reach < 0; i++)
            if (rq.loss[i] <= rf.final_loss) reach = i + probes;
        char what[160], note[200];
        snprintf(what, sizeof what, "small %s: fast steps to feather2023's final loss", names[k]);
        snprintf(note, sizeof note, "loss feather2023 %.3g (%d steps) vs fast %.3g (%d); rho %.4f vs %.4f",
                 rf.final_loss, rf.iterations, rq.final_loss, rq.iterations, rf.spearman, rq.spearman);
        bench_report(what, reach < 0 ? NAN : reach, "steps", note);
        metamer_result_free(&rf);
        metamer_result_free(&rq);
    }
    free(clip);
    model_run_free(&m);
    network_free(&net);
}
