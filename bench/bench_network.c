/* CochCNN9 (random weights) on a 211x390 cochleagram: forward + input
 * gradient to relu0, relu2, relu4 and final, and the whole synthesis step
 * (cochleagram forward, network forward, loss gradient, network backward
 * with the fake relu, cochleagram backward) at relu4. Reference: PyTorch
 * 1.13 CPU (oneDNN) figures measured on this machine class (DESIGN.md).
 *
 * Two ways to use the cores: our pool with OpenBLAS at one thread (how
 * synthesis runs a lone job: the layers cut their products over the pool),
 * and no pool with OpenBLAS threading each product itself. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "bench.h"

#define RUNS 10

static double time_stage(const Network *net, NetworkWork *w, const float *x, int stage,
                         const float *cot) {
    double s[RUNS];
    const float *cots[1] = {cot};
    for (int r = -2; r < RUNS; r++) { /* two warm-up runs */
        double t0 = now_seconds();
        network_forward(net, w, x, &stage, 1);
        network_backward(net, w, &stage, cots, 1, BACKWARD_FAKE_RELU, NULL);
        if (r >= 0) s[r] = now_seconds() - t0;
    }
    return bench_median(s, RUNS);
}

static const struct {
    const char *stage;
    double pytorch_ms;
} ref[] = {{"relu0", 3.3}, {"relu2", 16}, {"relu4", 41}, {"final", 138}};

/* One line per stage; pool NULL: OpenBLAS threads. */
static void stage_lines(const Network *net, NetworkWork *w, Pool *pool, const float *x,
                        const float *cot) {
    int blas_threads = openblas_get_num_threads();
    network_work_set_pool(w, pool);
    if (pool) openblas_set_num_threads(1);
    for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++) {
        Error err = {{0}};
        int stage = network_stage_index(net, ref[k].stage, &err);
        double ms = 1e3 * time_stage(net, w, x, stage, cot);
        char what[96], note[96];
        snprintf(what, sizeof what, "cochcnn9 fwd+input-grad to %s%s", ref[k].stage,
                 pool ? " (median of 10)" : ", OpenBLAS thr.");
        snprintf(note, sizeof note, "PyTorch oneDNN %.1f ms: ratio %.2f", ref[k].pytorch_ms,
                 ms / ref[k].pytorch_ms);
        bench_report(what, ms, "ms", note);
    }
    openblas_set_num_threads(blas_threads);
}

BENCH(network_cochcnn9) {
    Network net;
    Error err = {{0}};
    if (network_open(&net, "builtin:cochcnn9", &err) != 0) {
        printf("  %s\n", err.msg);
        return;
    }
    size_t n_in = (size_t)architecture_stage_numel(&net.arch, -1);
    Rng rng;
    rng_seed(&rng, 1);
    float *x = alloc_floats(n_in), *cot = alloc_floats(1 << 20);
    for (size_t i = 0; i < n_in; i++) x[i] = (float)rng_uniform(&rng);
    for (int i = 0; i < 1 << 20; i++) cot[i] = (float)rng_normal(&rng);
    Pool *pool = pool_create(default_thread_count());
    NetworkWork *w = network_work_create(&net, 1, false);
    stage_lines(&net, w, pool, x, cot);
    stage_lines(&net, w, NULL, x, cot);
    network_work_free(w);

    /* Whole synthesis step at relu4, including the front end, as synthesis
     * runs a lone job: the pool for both, OpenBLAS at one thread. */
    ModelRun m;
    if (model_run_init(&m, &net, pool, &err) == 0) {
        int blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
        int stage = network_stage_index(&net, "relu4", &err), n = model_run_samples(&m);
        float *wave = alloc_floats((size_t)n), *grad = alloc_floats((size_t)n);
        for (int i = 0; i < n; i++) wave[i] = (float)(0.1 * rng_normal(&rng));
        const float *cots[1] = {cot};
        double s[RUNS];
        for (int r = -2; r < RUNS; r++) {
            double t0 = now_seconds();
            model_forward(&m, wave, &stage, 1);
            model_backward(&m, &stage, cots, 1, BACKWARD_FAKE_RELU, grad);
            if (r >= 0) s[r] = now_seconds() - t0;
        }
        openblas_set_num_threads(blas_threads);
        double ms = 1e3 * bench_median(s, RUNS);
        char note[96];
        snprintf(note, sizeof note, "PyTorch ~1250 ms: %.1fx faster; target <= 80 ms", 1250 / ms);
        bench_report("synthesis step at relu4 (front end + net)", ms, "ms", note);
        free(wave), free(grad);
        model_run_free(&m);
    }
    pool_free(pool);
    free(x), free(cot);
    network_free(&net);
}
