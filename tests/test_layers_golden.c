/* The golden PyTorch network (../shared/golden): every stage's forward and
 * input gradient through the layer library against PyTorch's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../core/core.h"
#include "../model/layers.h"
#include "layers_fixture.h"
#include "test.h"

/* ---------------------------------------------------------- golden file */

typedef struct {
    Safetensors st;
    Error err;
} Golden;

static float *gload(TestCtx *t, Golden *g, const char *name, size_t numel) {
    float *p = NULL;
    const SafetensorsEntry *e = NULL;
    if (safetensors_load_f32(&g->st, name, &p, &e, &g->err) != 0) {
        test_fail(t, __FILE__, __LINE__, "%s", g->err.msg);
        return NULL;
    }
    if ((size_t)e->numel != numel) {
        test_fail(t, __FILE__, __LINE__, "%s: %lld values, want %zu", name, (long long)e->numel,
                  numel);
        free(p);
        return NULL;
    }
    return p;
}

/* The golden net as a plain chain of layers (what the graph will build). */
typedef enum { G_BN, G_CONV, G_RELU, G_MAX, G_AVG, G_FLAT, G_LIN } GOp;
typedef struct {
    const char *name;
    GOp op;
    int out, kh, kw, s; /* conv/linear outputs; window */
} GLayer;

static const GLayer golden_layers[] = {
    {"bn0", G_BN, 0, 0, 0, 0},          {"conv0", G_CONV, 8, 7, 14, 3},
    {"relu0", G_RELU, 0, 0, 0, 0},      {"maxpool0", G_MAX, 0, 2, 5, 2},
    {"bn1", G_BN, 0, 0, 0, 0},          {"conv1", G_CONV, 16, 4, 8, 2},
    {"relu1", G_RELU, 0, 0, 0, 0},      {"maxpool1", G_MAX, 0, 2, 5, 2},
    {"bn2", G_BN, 0, 0, 0, 0},          {"conv2", G_CONV, 24, 2, 5, 1},
    {"relu2", G_RELU, 0, 0, 0, 0},      {"conv3", G_CONV, 32, 2, 5, 1},
    {"relu3", G_RELU, 0, 0, 0, 0},      {"conv4", G_CONV, 16, 2, 5, 1},
    {"relu4", G_RELU, 0, 0, 0, 0},      {"avgpool", G_AVG, 0, 2, 5, 2},
    {"flatten", G_FLAT, 0, 0, 0, 0},    {"fullyconnected", G_LIN, 64, 0, 0, 0},
    {"relufc", G_RELU, 0, 0, 0, 0},     {"final", G_LIN, 10, 0, 0, 0},
};
#define N_GOLDEN ((int)(sizeof golden_layers / sizeof golden_layers[0]))

typedef struct {
    int oc, oh, ow; /* output shape */
    Conv2d conv;
    Pool2d pool;
    BatchNorm bn;
    Linear lin;
    float *w, *b, *mean, *var; /* parameters */
    float *y;                  /* activation */
    int32_t *argmax;
} GState;

static int golden_build(TestCtx *t, Golden *g, GState *s, size_t *scratch_floats) {
    int c = 1, h = 211, w = 390;
    *scratch_floats = 0;
    for (int i = 0; i < N_GOLDEN; i++) {
        const GLayer *l = &golden_layers[i];
        GState *st = &s[i];
        memset(st, 0, sizeof *st);
        char nm[128];
        switch (l->op) {
        case G_BN:
            st->bn = (BatchNorm){1, c, h * w, 1e-5f, 0.1f};
            snprintf(nm, sizeof nm, "%s.weight", l->name), st->w = gload(t, g, nm, (size_t)c);
            snprintf(nm, sizeof nm, "%s.bias", l->name), st->b = gload(t, g, nm, (size_t)c);
            snprintf(nm, sizeof nm, "%s.running_mean", l->name), st->mean = gload(t, g, nm, (size_t)c);
            snprintf(nm, sizeof nm, "%s.running_var", l->name), st->var = gload(t, g, nm, (size_t)c);
            if (!st->w || !st->b || !st->mean || !st->var) return -1;
            break;
        case G_CONV:
            st->conv = (Conv2d){1, c, l->out, {0}, NULL};
            if (window2d_init(&st->conv.win, h, w, l->kh, l->kw, l->s, l->s, PAD_SAME, PAD_SAME))
                return -1;
            snprintf(nm, sizeof nm, "%s.weight", l->name);
            st->w = gload(t, g, nm, (size_t)l->out * c * l->kh * l->kw);
            snprintf(nm, sizeof nm, "%s.bias", l->name), st->b = gload(t, g, nm, (size_t)l->out);
            if (!st->w || !st->b) return -1;
            size_t sf = conv2d_scratch_floats(&st->conv);
            if (sf > *scratch_floats) *scratch_floats = sf;
            c = l->out, h = st->conv.win.out_h, w = st->conv.win.out_w;
            break;
        case G_MAX:
        case G_AVG:
            st->pool = (Pool2d){1, c, {0}};
            if (window2d_init(&st->pool.win, h, w, l->kh, l->kw, l->s, l->s, PAD_SAME, PAD_SAME))
                return -1;
            h = st->pool.win.out_h, w = st->pool.win.out_w;
            st->argmax = xmalloc(maxpool2d_index_count(&st->pool) * sizeof(int32_t));
            break;
        case G_FLAT:
            c = c * h * w, h = w = 1;
            break;
        case G_LIN:
            st->lin = (Linear){1, c, l->out, NULL};
            snprintf(nm, sizeof nm, "%s.weight", l->name), st->w = gload(t, g, nm, (size_t)l->out * c);
            snprintf(nm, sizeof nm, "%s.bias", l->name), st->b = gload(t, g, nm, (size_t)l->out);
            if (!st->w || !st->b) return -1;
            c = l->out;
            break;
        case G_RELU:
            break;
        }
        st->oc = c, st->oh = h, st->ow = w;
        st->y = zeros((size_t)c * h * w);
    }
    return 0;
}

static size_t gsize(const GState *s) { return (size_t)s->oc * s->oh * s->ow; }

static void golden_forward(GState *s, const float *input, float *scratch, int upto) {
    const float *x = input;
    for (int i = 0; i <= upto; i++) {
        GState *st = &s[i];
        switch (golden_layers[i].op) {
        case G_BN: batchnorm_forward(&st->bn, st->y, x, st->w, st->b, st->mean, st->var); break;
        case G_CONV: conv2d_forward(&st->conv, st->y, x, st->w, st->b, scratch); break;
        case G_RELU: relu_forward(st->y, x, gsize(st)); break;
        case G_MAX: maxpool2d_forward(&st->pool, st->y, st->argmax, x); break;
        case G_AVG: avgpool2d_forward(&st->pool, st->y, x); break;
        case G_FLAT: memcpy(st->y, x, gsize(st) * sizeof(float)); break;
        case G_LIN: linear_forward(&st->lin, st->y, x, st->w, st->b); break;
        }
        x = st->y;
    }
}

/* d input from the cotangent at layer `from` (true relu gradients). */
static void golden_backward(GState *s, const float *input, const float *cot, float *scratch,
                            int from, float *dinput, float *tmp_a, float *tmp_b) {
    size_t n = gsize(&s[from]);
    memcpy(tmp_a, cot, n * sizeof *tmp_a);
    float *dy = tmp_a, *dx = tmp_b;
    for (int i = from; i >= 0; i--) {
        GState *st = &s[i];
        const float *x = i ? s[i - 1].y : input;
        float *out = i ? dx : dinput;
        switch (golden_layers[i].op) {
        case G_BN:
            batchnorm_backward(&st->bn, out, NULL, NULL, dy, x, st->w, st->mean, st->var);
            break;
        case G_CONV: conv2d_backward(&st->conv, out, NULL, NULL, dy, x, st->w, scratch); break;
        case G_RELU: relu_backward(out, dy, x, gsize(st), RELU_BACKWARD_EXACT); break;
        case G_MAX: maxpool2d_backward(&st->pool, out, dy, st->argmax, NULL); break;
        case G_AVG: avgpool2d_backward(&st->pool, out, dy); break;
        case G_FLAT: memcpy(out, dy, gsize(st) * sizeof(float)); break;
        case G_LIN: linear_backward(&st->lin, out, NULL, NULL, dy, x, st->w); break;
        }
        float *tmp = dy;
        dy = dx, dx = tmp;
    }
}

static void golden_free(GState *s) {
    for (int i = 0; i < N_GOLDEN; i++) {
        free(s[i].w), free(s[i].b), free(s[i].mean), free(s[i].var), free(s[i].y);
        free(s[i].argmax);
    }
}

#define GOLDEN_INPUT (211 * 390)
#define GOLDEN_CONV0 (8 * 71 * 130)
#define GOLDEN_MAX_ACT GOLDEN_INPUT /* bn0's output is the largest */

/* The golden file and the layer chain built from it. */
static int golden_open(TestCtx *t, Golden *g, GState *s, size_t *scratch_floats) {
    if (safetensors_open(&g->st, golden_path("network_small.safetensors"), &g->err) != 0) return -1;
    if (golden_build(t, g, s, scratch_floats) == 0) return 0;
    snprintf(g->err.msg, sizeof g->err.msg, "building the layer chain");
    safetensors_close(&g->st);
    return -1;
}

/* bn0 -> conv0 against PyTorch (float64): activation and input gradient. */
TEST(layers_golden_bn0_conv0) {
    Golden g = {0};
    GState s[N_GOLDEN];
    size_t sf;
    REQUIRE(t, golden_open(t, &g, s, &sf) == 0, "golden network: %s", g.err.msg);
    float *in = gload(t, &g, "input", GOLDEN_INPUT);
    float *act = gload(t, &g, "act.conv0", GOLDEN_CONV0);
    float *cot = gload(t, &g, "cotangent.conv0", GOLDEN_CONV0);
    float *gin = gload(t, &g, "grad_input.conv0", GOLDEN_INPUT);
    REQUIRE(t, in && act && cot && gin, "golden tensors");
    float *scratch = alloc_floats(sf), *d = zeros(GOLDEN_INPUT);
    float *ta = zeros(GOLDEN_MAX_ACT), *tb = zeros(GOLDEN_MAX_ACT);
    golden_forward(s, in, scratch, 1);
    CHECK_REL_L2(t, s[1].y, act, GOLDEN_CONV0, 1e-4, "act.conv0");
    golden_backward(s, in, cot, scratch, 1, d, ta, tb);
    CHECK_REL_L2(t, d, gin, GOLDEN_INPUT, 1e-4, "grad_input.conv0");
    free(in), free(act), free(cot), free(gin), free(scratch), free(d), free(ta), free(tb);
    golden_free(s);
    safetensors_close(&g.st);
}

/* Every stage of the golden net through the layer library: activations
 * < 1e-4 and input gradients < 1e-3 (DESIGN.md). */
TEST(layers_golden_all_stages) {
    Golden g = {0};
    GState s[N_GOLDEN];
    size_t sf;
    REQUIRE(t, golden_open(t, &g, s, &sf) == 0, "golden network: %s", g.err.msg);
    float *in = gload(t, &g, "input", GOLDEN_INPUT);
    REQUIRE(t, in, "input");
    float *scratch = alloc_floats(sf), *d = zeros(GOLDEN_INPUT);
    float *ta = zeros(GOLDEN_MAX_ACT), *tb = zeros(GOLDEN_MAX_ACT);
    golden_forward(s, in, scratch, N_GOLDEN - 1);
    for (int i = 0; i < N_GOLDEN; i++) {
        char nm[128];
        size_t n = gsize(&s[i]);
        snprintf(nm, sizeof nm, "act.%s", golden_layers[i].name);
        float *act = gload(t, &g, nm, n);
        snprintf(nm, sizeof nm, "cotangent.%s", golden_layers[i].name);
        float *cot = gload(t, &g, nm, n);
        snprintf(nm, sizeof nm, "grad_input.%s", golden_layers[i].name);
        float *gin = gload(t, &g, nm, GOLDEN_INPUT);
        if (!act || !cot || !gin) {
            free(act), free(cot), free(gin);
            continue;
        }
        snprintf(nm, sizeof nm, "act.%s", golden_layers[i].name);
        CHECK_REL_L2(t, s[i].y, act, n, 1e-4, nm);
        golden_backward(s, in, cot, scratch, i, d, ta, tb);
        snprintf(nm, sizeof nm, "grad_input.%s", golden_layers[i].name);
        CHECK_REL_L2(t, d, gin, GOLDEN_INPUT, 1e-3, nm);
        free(act), free(cot), free(gin);
    }
    free(in), free(scratch), free(d), free(ta), free(tb);
    golden_free(s);
    safetensors_close(&g.st);
}
