/* Batchnorm inside one task's branch under routing: its batch statistics,
 * forward and backward, come from that task's examples only. The trunk here
 * has no batchnorm, so each example's trunk output is its own; the word
 * branch's gradient on a mixed batch must then equal its gradient on a batch
 * of the word examples alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/train.h"
#include "test.h"

static const char *branch_bn_arch =
    "{\"name\": \"branch-bn\", \"input\": [1, 21, 20], \"layers\": ["
    "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 4, \"kernel\": [3, 3], \"stride\": [2, 2], \"padding\": \"same\"},"
    "{\"name\": \"relu0\", \"op\": \"relu\"},"
    "{\"name\": \"word/bn1\", \"op\": \"batchnorm\", \"input\": \"relu0\"},"
    "{\"name\": \"word/conv1\", \"op\": \"conv2d\", \"out\": 3, \"kernel\": [3, 3], \"stride\": [1, 1], \"padding\": \"same\"},"
    "{\"name\": \"word/relu1\", \"op\": \"relu\"},"
    "{\"name\": \"word/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"word/final\", \"op\": \"linear\", \"out\": 3},"
    "{\"name\": \"genre/conv1\", \"op\": \"conv2d\", \"input\": \"relu0\", \"out\": 3, \"kernel\": [3, 3], \"stride\": [1, 1], \"padding\": \"same\"},"
    "{\"name\": \"genre/relu1\", \"op\": \"relu\"},"
    "{\"name\": \"genre/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"genre/final\", \"op\": \"linear\", \"out\": 2}],"
    "\"outputs\": {\"word\": \"word/final\", \"genre\": \"genre/final\"}}";

/* Relative L2 distance of the word branch's weight and bias gradients. */
static double word_branch_error(const Network *net, const float *g, const float *want) {
    double num = 0, den = 0;
    for (int i = 0; i < net->arch.n_layers; i++) {
        if (strncmp(net->arch.layers[i].name, "word/", 5)) continue;
        const LayerParams *p = &net->params[i];
        for (int64_t j = 0; j < p->n_weight + p->n_bias; j++) {
            double d = (double)g[p->offset + j] - want[p->offset + j];
            num += d * d, den += (double)want[p->offset + j] * want[p->offset + j];
        }
    }
    return sqrt(num / den);
}

TEST(train_routing_branch_batchnorm_uses_its_task_only) {
    Error err;
    Network net;
    FrontEndConfig fe;
    REQUIRE(t, front_end_config_preset("tiny", &fe, &err) == 0, "%s", err.msg);
    REQUIRE(t, network_from_architecture(&net, branch_bn_arch, &fe, &err) == 0, "%s", err.msg);
    network_init_random(&net, 4);
    enum { B = 6, W = 4 };
    size_t in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = alloc_floats(in * B), *words = alloc_floats(in * W);
    float *want = xmalloc(net.n_params * sizeof(float));
    Rng r;
    rng_seed(&r, 11);
    for (size_t i = 0; i < in * B; i++) x[i] = (float)rng_uniform(&r);
    /* word examples 0, 2, 3, 5; genre 1, 4 (their inputs far from the words') */
    const int32_t mixed[2 * B] = {0, -1, 2, 1, -1, 2, /* genre */ -1, 1, -1, -1, 0, -1};
    const int32_t word_only[2 * W] = {0, 2, 1, 2, -1, -1, -1, -1};
    const int word_rows[W] = {0, 2, 3, 5};
    for (int k = 0; k < W; k++) memcpy(words + k * in, x + word_rows[k] * in, in * sizeof(float));
    for (size_t i = 0; i < in; i++) x[1 * in + i] *= 5, x[4 * in + i] += 3;

    TrainStep *alone = train_step_create(&net, W), *s = train_step_create(&net, B);
    StepStats sa, sm;
    train_step_run(&net, alone, words, word_only, 1, &sa);
    memcpy(want, train_step_grad(alone), net.n_params * sizeof(float));
    train_step_run(&net, s, x, mixed, 1, &sm);
    double e = word_branch_error(&net, train_step_grad(s), want);
    CHECK(t, e < 1e-5, "routed: word branch gradient rel. L2 %g from the word examples alone", e);
    CHECK(t, fabs(sm.loss[0] - sa.loss[0]) < 1e-6, "routed: word loss %g, alone %g", sm.loss[0], sa.loss[0]);
    /* Unrouted, the genre examples enter word/bn1's statistics: the check
     * above can fail. */
    train_step_set_routing(s, false);
    train_step_run(&net, s, x, mixed, 1, &sm);
    e = word_branch_error(&net, train_step_grad(s), want);
    CHECK(t, e > 1e-2, "unrouted: word branch gradient only %g from the word examples alone", e);
    free(x), free(words), free(want);
    train_step_free(alone), train_step_free(s);
    network_free(&net);
}

/* `--arch default-bn` (a probe, model/README.md): the default network with
 * batchnorm before the word branch's conv3, conv4 and fc; none in genre's. */
TEST(train_default_bn_layout) {
    Error err;
    Network net;
    FrontEndConfig fe;
    REQUIRE(t, front_end_config_preset("default", &fe, &err) == 0, "%s", err.msg);
    REQUIRE(t, network_builtin(&net, "default-bn", &fe, 1, &err) == 0, "%s", err.msg);
    const char *want[] = {"bn0", "bn1", "bn2", "word/bn3", "word/bn4", "word/bnfc"};
    int n_bn = 0;
    for (int i = 0; i < net.arch.n_layers; i++) {
        if (net.arch.layers[i].op != OP_BATCHNORM) continue;
        CHECK(t, n_bn < 6 && !strcmp(net.arch.layers[i].name, want[n_bn]), "batchnorm %d is %s",
              n_bn, net.arch.layers[i].name);
        n_bn++;
    }
    CHECK(t, n_bn == 6, "%d batchnorm layers, want 6", n_bn);
    network_free(&net);
}

/* relu2's [C, H, W] in a built-in net of the default front end (42 x 195). */
static void relu2_shape(TestCtx *t, const char *arch, int shape[3]) {
    Error err;
    Network net;
    FrontEndConfig fe;
    shape[0] = shape[1] = shape[2] = -1;
    REQUIRE(t, front_end_config_preset("default", &fe, &err) == 0, "%s", err.msg);
    REQUIRE(t, network_builtin(&net, arch, &fe, 1, &err) == 0, "%s", err.msg);
    int i = network_stage_index(&net, "relu2", &err);
    CHECK(t, i >= 0, "%s: %s", arch, err.msg);
    if (i >= 0) memcpy(shape, net.arch.layers[i].out_shape, 3 * sizeof *shape);
    network_free(&net);
}

/* `--arch default-t2` (a probe, model/README.md): conv0 strides 2 along time
 * instead of 3, so the trunk ends in 13 time bins instead of 9; nothing else
 * changes. */
TEST(train_default_t2_time_bins) {
    int base[3], t2[3];
    relu2_shape(t, "default", base);
    relu2_shape(t, "default-t2", t2);
    CHECK(t, base[0] == 192 && base[1] == 3 && base[2] == 9, "default relu2 %dx%dx%d, want 192x3x9",
          base[0], base[1], base[2]);
    CHECK(t, t2[0] == 192 && t2[1] == 3 && t2[2] == 13, "default-t2 relu2 %dx%dx%d, want 192x3x13",
          t2[0], t2[1], t2[2]);
}
