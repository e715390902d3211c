/* The network engine against PyTorch (float64) on the golden small net:
 * every stage's activation and every stage's input gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../model/layers.h" /* RELU_REVIVE_SLOPE */
#include "../model/model.h"
#include "test.h"

TEST(network_golden_every_stage) {
    Safetensors st;
    Error err = {0};
    REQUIRE(t, safetensors_open(&st, golden_path("network_small.safetensors"), &err) == 0, "%s",
            err.msg);
    Network net;
    REQUIRE(t, network_from_safetensors(&net, &st, &err) == 0, "%s", err.msg);
    float *input;
    REQUIRE(t, safetensors_load_f32(&st, "input", &input, NULL, &err) == 0, "%s", err.msg);
    NetworkWork *w = network_work_create(&net, 1, false);
    double worst_act = 0, worst_grad = 0;
    for (int i = 0; i < net.arch.n_layers; i++) {
        const char *stage = net.arch.layers[i].name;
        char name[200];
        float *act, *cot, *grad;
        snprintf(name, sizeof name, "act.%s", stage);
        REQUIRE(t, safetensors_load_f32(&st, name, &act, NULL, &err) == 0, "%s", err.msg);
        snprintf(name, sizeof name, "cotangent.%s", stage);
        REQUIRE(t, safetensors_load_f32(&st, name, &cot, NULL, &err) == 0, "%s", err.msg);
        snprintf(name, sizeof name, "grad_input.%s", stage);
        REQUIRE(t, safetensors_load_f32(&st, name, &grad, NULL, &err) == 0, "%s", err.msg);
        size_t n = (size_t)architecture_stage_numel(&net.arch, i);
        network_forward(&net, w, input, &i, 1);
        double e_act = rel_l2(network_activation(w, i), act, n);
        const float *cots[1] = {cot};
        const float *g = network_backward(&net, w, &i, cots, 1, BACKWARD_EXACT, NULL);
        double e_grad = rel_l2(g, grad, (size_t)architecture_stage_numel(&net.arch, -1));
        CHECK(t, e_act < 1e-4, "stage %s: activation rel. L2 %.3g", stage, e_act);
        CHECK(t, e_grad < 1e-3, "stage %s: input gradient rel. L2 %.3g", stage, e_grad);
        worst_act = e_act > worst_act ? e_act : worst_act;
        worst_grad = e_grad > worst_grad ? e_grad : worst_grad;
        free(act), free(cot), free(grad);
    }
    printf("    worst over %d stages: activation %.2e, input gradient %.2e\n", net.arch.n_layers,
           worst_act, worst_grad);
    network_work_free(w);
    free(input);
    network_free(&net);
    safetensors_close(&st);
}

/* A small branched net on the tiny front end, random weights. */
static const char *branched_arch =
    "{\"name\": \"test\", \"input\": [1, %d, %d], \"layers\": ["
    "{\"name\": \"bn0\", \"op\": \"batchnorm\"},"
    "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 4, \"kernel\": [3, 4], \"stride\": [2, 1]},"
    "{\"name\": \"relu0\", \"op\": \"relu\"},"
    "{\"name\": \"pool0\", \"op\": \"%s\", \"kernel\": [2, 3], \"stride\": [2, 1]},"
    "{\"name\": \"a/conv1\", \"op\": \"conv2d\", \"out\": 3, \"kernel\": [2, 2]},"
    "{\"name\": \"a/relu1\", \"op\": \"relu\"},"
    "{\"name\": \"a/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"a/final\", \"op\": \"linear\", \"out\": 5},"
    "{\"name\": \"b/pool\", \"op\": \"avgpool\", \"kernel\": [2, 3], \"stride\": [1, 2], "
    "\"input\": \"pool0\"},"
    "{\"name\": \"b/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"b/final\", \"op\": \"linear\", \"out\": 3}],"
    "\"outputs\": {\"a\": \"a/final\", \"b\": \"b/final\"}}";

/* pool0_op: "maxpool", or "avgpool" for a twin with the same weights. */
static int make_branched_with(TestCtx *t, Network *net, const char *pool0_op) {
    Error err = {0};
    FrontEndConfig fe;
    front_end_config_preset("tiny", &fe, &err);
    Cochleagram *c = cochleagram_create(&fe, &err);
    if (!c) return test_fail(t, __FILE__, __LINE__, "%s", err.msg), -1;
    char json[2048];
    snprintf(json, sizeof json, branched_arch, cochleagram_channels(c), cochleagram_frames(c), pool0_op);
    cochleagram_free(c);
    if (network_from_architecture(net, json, &fe, &err) != 0)
        return test_fail(t, __FILE__, __LINE__, "%s", err.msg), -1;
    network_init_random(net, 7);
    /* Non-trivial batchnorm statistics so its gradient is exercised. */
    net->params[0].mean[0] = 0.3f, net->params[0].var[0] = 2.0f;
    net->params[0].weight[0] = 1.5f, net->params[0].bias[0] = -0.2f;
    return 0;
}

static int make_branched(TestCtx *t, Network *net) { return make_branched_with(t, net, "maxpool"); }

static float *noise(Rng *r, size_t n, double sd) {
    float *x = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd * rng_normal(r));
    return x;
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* <cot, stage(wave)> for the finite differences. */
static double stage_dot(ModelRun *m, const float *wave, int stage, const float *cot) {
    model_forward(m, wave, &stage, 1);
    return dotd(model_stage_output(m, stage), cot, (size_t)model_stage_numel(m, stage));
}

TEST(model_gradient_finite_differences) {
    Network net;
    if (make_branched(t, &net) != 0) return;
    Error err = {0};
    /* The golden tests cover the clipped compression gradient; here it must
     * be the true derivative, so lift the clip out of reach. */
    net.front_end.comp_clip = 1e30;
    ModelRun m;
    REQUIRE(t, model_run_init(&m, &net, NULL, &err) == 0, "%s", err.msg);
    int n = model_run_samples(&m);
    Rng r;
    rng_seed(&r, 3);
    /* Loud enough that no envelope falls where the compression's gradient is
     * clipped (0.3 x^-0.7 > 5): there the backward is not the derivative. */
    float *wave = noise(&r, (size_t)n, 1.0), *grad = alloc_floats((size_t)n);
    float *probe = alloc_floats((size_t)n);
    const char *stages[] = {"cochleagram", "relu0", "a/final", "b/final"};
    for (int s = 0; s < 4; s++) {
        int stage = network_stage_index(&net, stages[s], &err);
        size_t k = (size_t)model_stage_numel(&m, stage);
        float *cot = noise(&r, k, 1.0);
        model_forward(&m, wave, &stage, 1);
        const float *cots[1] = {cot};
        model_backward(&m, &stage, cots, 1, BACKWARD_EXACT, grad);
        for (int trial = 0; trial < 3; trial++) {
            float *v = noise(&r, (size_t)n, 1.0);
            double h = 1e-3, num;
            for (int i = 0; i < n; i++) probe[i] = wave[i] + (float)(h * v[i]);
            num = stage_dot(&m, probe, stage, cot);
            for (int i = 0; i < n; i++) probe[i] = wave[i] - (float)(h * v[i]);
            num = (num - stage_dot(&m, probe, stage, cot)) / (2 * h);
            double ana = dotd(grad, v, (size_t)n);
            CHECK(t, fabs(num - ana) <= 2e-2 * fabs(ana) + 1e-4,
                  "stage %s: finite difference %.6g vs backward %.6g", stages[s], num, ana);
            free(v);
        }
        free(cot);
    }
    free(wave), free(grad), free(probe);
    model_run_free(&m);
    network_free(&net);
}

TEST(network_fake_relu_branches_and_partial_forward) {
    Network net;
    if (make_branched(t, &net) != 0) return;
    Error err = {0};
    Rng r;
    rng_seed(&r, 5);
    size_t n_in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = noise(&r, n_in, 1.0), *x2 = noise(&r, n_in, 1.0), *g1 = alloc_floats(n_in),
          *g2 = alloc_floats(n_in);
    NetworkWork *w = network_work_create(&net, 1, false);
    int relu0 = network_stage_index(&net, "relu0", &err), conv0 = relu0 - 1;
    size_t k = (size_t)architecture_stage_numel(&net.arch, relu0);
    float *cot = noise(&r, k, 1.0);
    const float *cots[1] = {cot};
    /* Fake relu at the target = the true gradient taken at its input. */
    network_forward(&net, w, x, &relu0, 1);
    memcpy(g1, network_backward(&net, w, &relu0, cots, 1, BACKWARD_FAKE_RELU, NULL), n_in * sizeof(float));
    network_forward(&net, w, x, &conv0, 1);
    memcpy(g2, network_backward(&net, w, &conv0, cots, 1, BACKWARD_EXACT, NULL), n_in * sizeof(float));
    CHECK(t, rel_l2(g1, g2, n_in) < 1e-6, "fake relu differs from gradient at its input");
    network_forward(&net, w, x, &relu0, 1);
    network_backward(&net, w, &relu0, cots, 1, BACKWARD_EXACT, NULL);
    CHECK(t, rel_l2(network_backward(&net, w, &relu0, cots, 1, BACKWARD_EXACT, NULL), g1, n_in) > 1e-3,
          "true relu gradient should differ from the fake one");

    /* Two heads at once = the sum of each alone. */
    int heads[2] = {net.task_layers[0], net.task_layers[1]};
    float *ca = noise(&r, 5, 1.0), *cb = noise(&r, 3, 1.0);
    const float *both[2] = {ca, cb};
    network_forward(&net, w, x, heads, 2);
    memcpy(g1, network_backward(&net, w, heads, both, 2, BACKWARD_EXACT, NULL), n_in * sizeof(float));
    network_forward(&net, w, x, &heads[0], 1);
    memcpy(g2, network_backward(&net, w, &heads[0], &both[0], 1, BACKWARD_EXACT, NULL), n_in * sizeof(float));
    network_forward(&net, w, x, &heads[1], 1);
    const float *gb = network_backward(&net, w, &heads[1], &both[1], 1, BACKWARD_EXACT, NULL);
    for (size_t i = 0; i < n_in; i++) g2[i] += gb[i];
    CHECK(t, rel_l2(g1, g2, n_in) < 1e-5, "two heads: %.3g", rel_l2(g1, g2, n_in));

    /* Forward stops at the requested stage: a later layer keeps its old value. */
    network_forward(&net, w, x, &heads[0], 1);
    float before[5];
    memcpy(before, network_activation(w, heads[0]), sizeof before);
    network_forward(&net, w, x2, &relu0, 1);
    CHECK(t, memcmp(before, network_activation(w, heads[0]), sizeof before) == 0,
          "a layer after the target was computed");
    network_forward(&net, w, x2, &heads[0], 1);
    CHECK(t, memcmp(before, network_activation(w, heads[0]), sizeof before) != 0,
          "new input did not change the output");
    free(ca), free(cb), free(cot), free(x), free(x2), free(g1), free(g2);
    network_work_free(w);
    network_free(&net);
}

/* BACKWARD_SPREAD_MAXPOOL: a max-pool backpropagates as an average pool over
 * the same windows (here overlapping, 2x3 stride 2x1), at a target and
 * before one; the forward stays the max. */
TEST(network_spread_maxpool_is_avgpool_backward) {
    Network mx, avg;
    if (make_branched_with(t, &mx, "maxpool") != 0) return;
    if (make_branched_with(t, &avg, "avgpool") != 0) return network_free(&mx);
    Error err = {0};
    Rng r;
    rng_seed(&r, 11);
    size_t n_in = (size_t)architecture_stage_numel(&mx.arch, -1);
    float *x = noise(&r, n_in, 1.0), *g1 = alloc_floats(n_in), *g2 = alloc_floats(n_in);
    NetworkWork *wm = network_work_create(&mx, 1, false), *wa = network_work_create(&avg, 1, false);
    int pool0 = network_stage_index(&mx, "pool0", &err), head = mx.task_layers[0];
    size_t k = (size_t)architecture_stage_numel(&mx.arch, pool0);
    float *cot = noise(&r, k, 1.0), *chead = noise(&r, 5, 1.0);
    const float *cots[1] = {cot}, *cheads[1] = {chead};
    /* At the target: exactly the average pool's gradient (same relu0 mask). */
    network_forward(&mx, wm, x, &pool0, 1);
    network_forward(&avg, wa, x, &pool0, 1);
    CHECK(t, rel_l2(network_activation(wm, pool0), network_activation(wa, pool0), k) > 1e-2,
          "the twin's pool0 should average, not max");
    memcpy(g1, network_backward(&mx, wm, &pool0, cots, 1, BACKWARD_SPREAD_MAXPOOL, NULL), n_in * sizeof(float));
    memcpy(g2, network_backward(&avg, wa, &pool0, cots, 1, BACKWARD_EXACT, NULL), n_in * sizeof(float));
    CHECK(t, rel_l2(g1, g2, n_in) < 1e-6, "spread max-pool vs avgpool gradient: %.3g", rel_l2(g1, g2, n_in));
    const float *ge = network_backward(&mx, wm, &pool0, cots, 1, BACKWARD_EXACT, NULL);
    CHECK(t, rel_l2(ge, g2, n_in) > 1e-2, "the exact max gradient should differ from the spread one");
    /* Before a target (pool0 feeds a/final): spread there too. */
    network_forward(&mx, wm, x, &head, 1);
    memcpy(g1, network_backward(&mx, wm, &head, cheads, 1, BACKWARD_SPREAD_MAXPOOL, NULL), n_in * sizeof(float));
    memcpy(g2, network_backward(&mx, wm, &head, cheads, 1, BACKWARD_EXACT, NULL), n_in * sizeof(float));
    CHECK(t, rel_l2(g1, g2, n_in) > 1e-2, "spread did not reach the max-pool before the target");
    free(x), free(g1), free(g2), free(cot), free(chead);
    network_work_free(wm), network_work_free(wa);
    network_free(&mx), network_free(&avg);
}

/* BACKWARD_REVIVE_RELU: a relu passes the gradient of its active units and a
 * tenth of a negative (raising) gradient at inactive ones; a fake relu at a
 * target wins over it. Checked against the exact gradient taken at the
 * relu's input with that cotangent. */
TEST(network_revive_relu_backward) {
    Network net;
    if (make_branched(t, &net) != 0) return;
    Error err = {0};
    Rng r;
    rng_seed(&r, 13);
    size_t n_in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = noise(&r, n_in, 1.0), *g1 = alloc_floats(n_in), *g2 = alloc_floats(n_in);
    NetworkWork *w = network_work_create(&net, 1, false);
    int relu0 = network_stage_index(&net, "relu0", &err), conv0 = relu0 - 1;
    size_t k = (size_t)architecture_stage_numel(&net.arch, relu0);
    float *cot = noise(&r, k, 1.0), *masked = alloc_floats(k);
    const float *cots[1] = {cot}, *masks[1] = {masked};
    network_forward(&net, w, x, &relu0, 1);
    const float *y = network_activation(w, relu0);
    size_t dead = 0;
    for (size_t i = 0; i < k; i++) {
        masked[i] = y[i] > 0 ? cot[i] : cot[i] < 0 ? RELU_REVIVE_SLOPE * cot[i] : 0.0f;
        dead += y[i] == 0;
    }
    CHECK(t, dead > 0 && dead < k, "relu0 should have dead and live units (%zu of %zu dead)", dead, k);
    memcpy(g1, network_backward(&net, w, &relu0, cots, 1, BACKWARD_REVIVE_RELU, NULL), n_in * sizeof(float));
    memcpy(g2, network_backward(&net, w, &relu0, cots, 1, BACKWARD_REVIVE_RELU | BACKWARD_FAKE_RELU, NULL),
           n_in * sizeof(float));
    network_forward(&net, w, x, &conv0, 1);
    const float *ge = network_backward(&net, w, &conv0, masks, 1, BACKWARD_EXACT, NULL);
    CHECK(t, rel_l2(g1, ge, n_in) < 1e-6, "revive vs masked cotangent: %.3g", rel_l2(g1, ge, n_in));
    ge = network_backward(&net, w, &conv0, cots, 1, BACKWARD_EXACT, NULL);
    CHECK(t, rel_l2(g2, ge, n_in) < 1e-6, "fake relu at the target should win: %.3g", rel_l2(g2, ge, n_in));
    /* The layer whose signs decide a stage's zeros (synth's --zero-match). */
    int pool0 = network_stage_index(&net, "pool0", &err);
    CHECK(t, network_relu_input_of(&net, relu0) == conv0 && network_relu_input_of(&net, pool0) == conv0,
          "relu0 and pool0 should take their zeros from conv0");
    CHECK(t, network_relu_input_of(&net, conv0) == -2 && network_relu_input_of(&net, -1) == -2 &&
                 network_relu_input_of(&net, net.task_layers[0]) == -2,
          "conv0, the cochleagram and the logits have no relu below them");
    free(x), free(g1), free(g2), free(cot), free(masked);
    network_work_free(w);
    network_free(&net);
}

TEST(network_load_errors_name_the_problem) {
    /* Save the branched net, then damage copies of it. */
    Network net;
    if (make_branched(t, &net) != 0) return;
    Error err = {0};
    char path[700];
    snprintf(path, sizeof path, "%s/m.safetensors", test_tmpdir(t));
    const char *meta[] = {"provenance", "test", NULL};
    REQUIRE(t, network_save(&net, path, meta, &err) == 0, "%s", err.msg);
    Network back;
    REQUIRE(t, network_load(&back, path, &err) == 0, "%s", err.msg);
    CHECK(t, back.n_params == net.n_params &&
                 memcmp(back.param_block, net.param_block, net.n_params * sizeof(float)) == 0,
          "parameters differ after save/load");
    CHECK(t, back.n_tasks == 2 && strcmp(back.task_names[1], "b") == 0, "tasks lost");
    network_free(&back);

    /* Wrong shape: rename a tensor's shape by editing the architecture. */
    Safetensors st;
    REQUIRE(t, safetensors_open(&st, path, &err) == 0, "%s", err.msg);
    char *arch = xstrdup(safetensors_metadata(&st, "architecture"));
    char *p = strstr(arch, "\"out\": 4");
    REQUIRE(t, p != NULL, "architecture text: %s", arch);
    p[7] = '6';
    free(st.meta_values[0]);
    for (int i = 0; i < st.n_meta; i++)
        if (strcmp(st.meta_keys[i], "architecture") == 0) st.meta_values[i] = arch;
    Network bad;
    int rc = network_from_safetensors(&bad, &st, &err);
    CHECK(t, rc != 0 && strstr(err.msg, "conv0.weight") && strstr(err.msg, path),
          "shape mismatch message: %s", err.msg);
    if (rc == 0) network_free(&bad);
    safetensors_close(&st);
    CHECK(t, network_load(&bad, "/nonexistent.safetensors", &err) != 0 &&
                 strstr(err.msg, "/nonexistent.safetensors"), "%s", err.msg);
    CHECK(t, network_stage_index(&net, "nope", &err) == -2 && strstr(err.msg, "a/final"),
          "unknown stage message: %s", err.msg);
    network_free(&net);
}

/* With a pool and OpenBLAS at one thread, the layers cut their work over the
 * workers (conv and linear inside their products, the graph relu and pools
 * by planes). Every value must come out bit for bit as without the pool.
 * Layers wide enough on the cochleagram_1 input that each kind is cut. */
static const char *wide_arch =
    "{\"name\": \"wide\", \"input\": [1, %d, %d], \"layers\": ["
    "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 16, \"kernel\": [7, 14], \"stride\": [3, 3]},"
    "{\"name\": \"relu0\", \"op\": \"relu\"},"
    "{\"name\": \"pool0\", \"op\": \"maxpool\", \"kernel\": [2, 5], \"stride\": [2, 2]},"
    "{\"name\": \"conv1\", \"op\": \"conv2d\", \"out\": 32, \"kernel\": [4, 8], \"stride\": [2, 2]},"
    "{\"name\": \"relu1\", \"op\": \"relu\"},"
    "{\"name\": \"conv2\", \"op\": \"conv2d\", \"out\": 512, \"kernel\": [2, 5]},"
    "{\"name\": \"relu2\", \"op\": \"relu\"},"
    "{\"name\": \"avg\", \"op\": \"avgpool\", \"kernel\": [2, 5], \"stride\": [2, 2]},"
    "{\"name\": \"flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"fc\", \"op\": \"linear\", \"out\": 400},"
    "{\"name\": \"relufc\", \"op\": \"relu\"},"
    "{\"name\": \"final\", \"op\": \"linear\", \"out\": 10}],"
    "\"outputs\": {\"out\": \"final\"}}";

TEST(network_pool_matches_serial) {
    Error err = {0};
    FrontEndConfig fe;
    front_end_config_preset("cochleagram_1", &fe, &err);
    Cochleagram *c = cochleagram_create(&fe, &err);
    REQUIRE(t, c != NULL, "%s", err.msg);
    char json[2048];
    snprintf(json, sizeof json, wide_arch, cochleagram_channels(c), cochleagram_frames(c));
    cochleagram_free(c);
    Network net;
    REQUIRE(t, network_from_architecture(&net, json, &fe, &err) == 0, "%s", err.msg);
    network_init_random(&net, 11);
    int old_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    Pool *pool = pool_create(2);
    NetworkWork *w[2] = {network_work_create(&net, 1, false), network_work_create(&net, 1, false)};
    network_work_set_pool(w[1], pool);
    Rng r;
    rng_seed(&r, 12);
    size_t n_in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = noise(&r, n_in, 1.0), *g = alloc_floats(n_in);
    const char *stages[] = {"relu0", "relu2", "final"};
    for (int s = 0; s < 3; s++) {
        int stage = network_stage_index(&net, stages[s], &err);
        size_t k = (size_t)architecture_stage_numel(&net.arch, stage);
        float *cot = noise(&r, k, 1.0);
        const float *cots[1] = {cot};
        for (int p = 0; p < 2; p++) network_forward(&net, w[p], x, &stage, 1);
        for (int i = 0; i <= stage; i++)
            CHECK(t, floats_identical(network_activation(w[0], i), network_activation(w[1], i),
                                      (size_t)architecture_stage_numel(&net.arch, i)),
                  "stage %s: activation of %s differs", stages[s], net.arch.layers[i].name);
        unsigned sur = s == 0 ? BACKWARD_FAKE_RELU : BACKWARD_EXACT;
        memcpy(g, network_backward(&net, w[0], &stage, cots, 1, sur, NULL), n_in * sizeof(float));
        CHECK(t, floats_identical(g, network_backward(&net, w[1], &stage, cots, 1, sur, NULL), n_in),
              "stage %s: input gradient differs", stages[s]);
        free(cot);
    }
    free(x), free(g);
    network_work_free(w[0]), network_work_free(w[1]);
    pool_free(pool);
    openblas_set_num_threads(old_threads);
    network_free(&net);
}
