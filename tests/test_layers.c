/* Layer library (model/layers.h): SAME-padding shapes, hand-computed pool
 * examples, forwards against naive double-precision references and finite-
 * difference checks of every gradient (conv2d: test_conv.c; the golden
 * PyTorch network: test_layers_golden.c).
 *
 * Finite differences: central, in float inputs with the loss
 * sum(y .* r) accumulated in double; the step is divided by the actually
 * representable difference (float)(v+h) - (float)(v-h). Linear layers are
 * then exact up to float rounding of the few outputs a component touches
 * (~1e-5 relative); smooth nonlinear ones add O(h^2). Tolerance: rel. L2 of
 * (analytic - numeric) < 1e-3 over the checked components (all of them for
 * small tensors, an evenly spread subset of 400 otherwise). Inputs of relu
 * and maxpool are kept away from kinks and ties by construction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../core/core.h"
#include "../model/layers.h"
#include "layers_fixture.h"
#include "test.h"

/* ------------------------------------------------------------ geometry */

TEST(layers_same_shapes) {
    Window2d w;
    /* CochCNN9 on a 211 x 390 cochleagram */
    REQUIRE(t, window2d_init(&w, 211, 390, 7, 14, 3, 3, PAD_SAME, PAD_SAME) == 0, "conv0");
    CHECK(t, w.out_h == 71 && w.out_w == 130, "conv0 out %dx%d", w.out_h, w.out_w);
    CHECK(t, w.pad_t == 3 && w.pad_l == 5, "conv0 pads %d %d (totals 6, 11)", w.pad_t, w.pad_l);
    REQUIRE(t, window2d_init(&w, 71, 130, 2, 5, 2, 2, PAD_SAME, PAD_SAME) == 0, "pool0");
    CHECK(t, w.out_h == 36 && w.out_w == 65, "maxpool0 out %dx%d", w.out_h, w.out_w);
    CHECK(t, w.pad_t == 0 && w.pad_l == 1, "maxpool0 pads %d %d (totals 1, 3)", w.pad_t, w.pad_l);
    REQUIRE(t, window2d_init(&w, 36, 65, 4, 8, 2, 2, PAD_SAME, PAD_SAME) == 0, "conv1");
    CHECK(t, w.out_h == 18 && w.out_w == 33 && w.pad_t == 1 && w.pad_l == 3, "conv1 %dx%d %d %d",
          w.out_h, w.out_w, w.pad_t, w.pad_l);
    REQUIRE(t, window2d_init(&w, 18, 33, 2, 5, 2, 2, PAD_SAME, PAD_SAME) == 0, "pool1");
    CHECK(t, w.out_h == 9 && w.out_w == 17, "maxpool1 out %dx%d", w.out_h, w.out_w);
    REQUIRE(t, window2d_init(&w, 9, 17, 2, 5, 1, 1, PAD_SAME, PAD_SAME) == 0, "conv2");
    CHECK(t, w.out_h == 9 && w.out_w == 17 && w.pad_t == 0 && w.pad_l == 2, "conv2 %dx%d %d %d",
          w.out_h, w.out_w, w.pad_t, w.pad_l);
    REQUIRE(t, window2d_init(&w, 9, 17, 2, 5, 2, 2, PAD_SAME, PAD_SAME) == 0, "avgpool");
    CHECK(t, w.out_h == 5 && w.out_w == 9, "avgpool out %dx%d", w.out_h, w.out_w);
    CHECK(t, window2d_valid(&w), "SAME window reported invalid");

    int pb = -7;
    /* pad total clamps at 0 when the stride skips input: in 10, k 2, s 5 */
    CHECK(t, window_size(10, 2, 5, PAD_SAME, &pb) == 2 && pb == 0, "k2 s5 -> %d pad %d",
          window_size(10, 2, 5, PAD_SAME, &pb), pb);
    /* kernel larger than the input: SAME pads it out */
    CHECK(t, window_size(3, 5, 1, PAD_SAME, &pb) == 3 && pb == 2, "k5 on 3: pad %d", pb);
    CHECK(t, window_size(3, 5, 2, PAD_SAME, &pb) == 2 && pb == 2, "k5 s2 on 3: pad %d", pb);
    /* valid and explicit */
    CHECK(t, window_size(10, 3, 2, 0, &pb) == 4 && pb == 0, "valid 10/3/2");
    CHECK(t, window_size(10, 3, 2, 1, &pb) == 5 && pb == 1, "explicit pad 1");
    CHECK(t, window_size(2, 3, 1, 0, &pb) == 0, "valid kernel larger than input accepted");
    CHECK(t, window_size(0, 3, 1, PAD_SAME, &pb) == 0, "empty input accepted");
    CHECK(t, window_size(5, 3, 0, PAD_SAME, &pb) == 0, "stride 0 accepted");
    Window2d bad = {.in_h = 4, .in_w = 4, .out_h = 9, .out_w = 4, .kh = 2, .kw = 2,
                    .sh = 1, .sw = 1, .pad_t = 0, .pad_l = 0};
    CHECK(t, !window2d_valid(&bad), "window past the input accepted");
}

/* ----------------------------------------------------------------- relu */

TEST(layers_relu) {
    float x[6] = {-2, -0.0f, 0, 1.5f, NAN, 3}, y[6], dy[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    relu_forward(y, x, 6);
    CHECK(t, y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 1.5f && isnan(y[4]) && y[5] == 3,
          "relu forward");
    relu_backward(dx, dy, x, 6, RELU_BACKWARD_EXACT);
    CHECK(t, dx[0] == 0 && dx[1] == 0 && dx[2] == 0 && dx[3] == 4 && dx[4] == 0 && dx[5] == 6,
          "relu backward (0 at x <= 0, like PyTorch)");
    relu_backward(dx, dy, NULL, 6, RELU_BACKWARD_FAKE);
    CHECK(t, memcmp(dx, dy, sizeof dx) == 0, "fake relu backward is the identity");
    float dy_signed[6] = {-1, 2, -3, 4, -5, 6};
    relu_backward(dx, dy_signed, x, 6, RELU_BACKWARD_REVIVE);
    CHECK(t, dx[0] == RELU_REVIVE_SLOPE * -1.0f && dx[1] == 0 && dx[2] == RELU_REVIVE_SLOPE * -3.0f && dx[3] == 4 && dx[5] == 6,
          "revive: inactive units pass a tenth of a gradient that would raise them, nothing else");
    memcpy(dx, dy, sizeof dx);
    relu_backward(dx, dx, x, 6, RELU_BACKWARD_EXACT);
    CHECK(t, dx[0] == 0 && dx[3] == 4 && dx[5] == 6, "relu backward in place");
    relu_forward(x, x, 6);
    CHECK(t, x[0] == 0 && x[3] == 1.5f, "relu forward in place");
}

typedef struct {
    size_t n;
    float *x, *y, *r;
} ReluCtx;

static double relu_loss(void *p) {
    ReluCtx *c = p;
    relu_forward(c->y, c->x, c->n);
    return dot_d(c->y, c->r, c->n);
}

TEST(layers_relu_gradient) {
    Rng r;
    rng_seed(&r, 3);
    ReluCtx c = {1000, NULL, NULL, NULL};
    c.x = rnd(&r, c.n, -1, 1), c.y = zeros(c.n), c.r = rnd(&r, c.n, -1, 1);
    for (size_t i = 0; i < c.n; i++) c.x[i] += c.x[i] < 0 ? -0.05f : 0.05f; /* off the kink */
    float *dx = zeros(c.n);
    relu_backward(dx, c.r, c.x, c.n, RELU_BACKWARD_EXACT);
    fd_check(t, relu_loss, &c, c.x, c.n, dx, 1e-2f, FD_TOL, "relu dx");
    free(c.x), free(c.y), free(c.r), free(dx);
}

/* ---------------------------------------------------------------- pools */

static size_t pool_in_count(const Pool2d *L) {
    return (size_t)L->n * L->c * L->win.in_h * L->win.in_w;
}

TEST(layers_pool_hand_examples) {
    /* 3x3 input, 2x2 stride 2 SAME: out 2x2, pad total 1 -> 0 before, 1 after */
    Pool2d L = {1, 1, {0}};
    REQUIRE(t, window2d_init(&L.win, 3, 3, 2, 2, 2, 2, PAD_SAME, PAD_SAME) == 0, "geometry");
    REQUIRE(t, L.win.out_h == 2 && L.win.out_w == 2 && L.win.pad_t == 0, "shape");
    float x[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    float y[4];
    int32_t am[4];
    maxpool2d_forward(&L, y, am, x);
    /* -inf padding never wins: the corner is -9, not 0 */
    CHECK(t, y[0] == -1 && y[1] == -3 && y[2] == -7 && y[3] == -9, "maxpool %g %g %g %g", y[0],
          y[1], y[2], y[3]);
    CHECK(t, am[0] == 0 && am[1] == 2 && am[2] == 6 && am[3] == 8, "argmax");
    /* zero padding counted: corner = -9/4, edge = (-3-6)/4 */
    avgpool2d_forward(&L, y, x);
    CHECK(t, y[0] == -3 && y[1] == -9.0f / 4 && y[2] == -15.0f / 4 && y[3] == -9.0f / 4,
          "avgpool %g %g %g %g", y[0], y[1], y[2], y[3]);
    float dy[4] = {4, 8, 12, 16}, dx[9];
    avgpool2d_backward(&L, dx, dy);
    float want_avg[9] = {1, 1, 2, 1, 1, 2, 3, 3, 4};
    CHECK(t, memcmp(dx, want_avg, sizeof dx) == 0, "avgpool backward");

    /* ties: first maximum in row-major window order, like PyTorch */
    float z[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    maxpool2d_forward(&L, y, am, z);
    CHECK(t, am[0] == 0 && am[1] == 2 && am[2] == 6 && am[3] == 8, "tie argmax %d %d %d %d",
          am[0], am[1], am[2], am[3]);
    float u[9] = {1, 5, 0, 5, 5, 0, 0, 0, 0};
    maxpool2d_forward(&L, y, am, u);
    CHECK(t, y[0] == 5 && am[0] == 1, "tie across rows goes to the first row: %d", am[0]);
    maxpool2d_backward(&L, dx, dy, am, NULL);
    float want_max[9] = {0, 4, 8, 0, 0, 0, 12, 0, 16};
    CHECK(t, memcmp(dx, want_max, sizeof dx) == 0, "maxpool backward routes to argmax");
    float dx2[9];
    maxpool2d_backward(&L, dx2, dy, NULL, u);
    CHECK(t, memcmp(dx2, want_max, sizeof dx) == 0, "maxpool backward recomputing argmax");
    u[4] = NAN;
    maxpool2d_forward(&L, y, am, u);
    CHECK(t, isnan(y[0]) && am[0] == 4, "NaN propagates");

    /* overlapping windows: 1x5 input, kernel 3 stride 1 SAME: both windows
     * around the max send their gradient to it */
    Pool2d L2 = {1, 1, {0}};
    REQUIRE(t, window2d_init(&L2.win, 1, 5, 1, 3, 1, 1, PAD_SAME, PAD_SAME) == 0, "geometry 2");
    float v[5] = {1, 9, 2, 3, 0}, w5[5], d5[5], g5[5] = {1, 1, 1, 1, 1};
    int32_t am5[5];
    maxpool2d_forward(&L2, w5, am5, v);
    CHECK(t, w5[0] == 9 && w5[1] == 9 && w5[2] == 9 && w5[3] == 3 && w5[4] == 3, "1x3 max");
    maxpool2d_backward(&L2, d5, g5, NULL, v);
    CHECK(t, d5[1] == 3 && d5[3] == 2 && d5[0] == 0 && d5[2] == 0 && d5[4] == 0,
          "overlapping windows accumulate");
    avgpool2d_forward(&L2, w5, v);
    CHECK(t, fabsf(w5[0] - 10.0f / 3) < 1e-6f && fabsf(w5[4] - 1.0f) < 1e-6f, "1x3 avg edges");
}

/* The vectorized maxpool against a plain row-major scan, values and argmax
 * exactly, on many shapes with many ties (small integers), including a
 * window too wide for the vectorized path's buffer. */
TEST(layers_maxpool_matches_scan) {
    static const int cases[][8] = {
        /* n, c, h, w, kh, kw, sh, sw (SAME unless noted) */
        {1, 2, 71, 130, 2, 5, 2, 2}, {2, 3, 9, 17, 2, 5, 2, 2}, {1, 2, 7, 300, 3, 4, 1, 3},
        {1, 1, 5, 600, 2, 3, 2, 1},  {1, 2, 6, 6, 6, 6, 1, 1},  {1, 1, 3, 5000, 1, 4500, 1, 1},
        {2, 1, 11, 23, 3, 7, 3, 4},
    };
    Rng r;
    rng_seed(&r, 11);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *cs = cases[k];
        Pool2d L = {cs[0], cs[1], {0}};
        REQUIRE(t, window2d_init(&L.win, cs[2], cs[3], cs[4], cs[5], cs[6], cs[7], PAD_SAME,
                                 PAD_SAME) == 0, "geometry %zu", k);
        const Window2d *w = &L.win;
        size_t nx = pool_in_count(&L), ny = maxpool2d_index_count(&L);
        float *x = zeros(nx), *y = zeros(ny);
        int32_t *am = xmalloc(ny * sizeof *am);
        for (size_t i = 0; i < nx; i++) x[i] = (float)rng_below(&r, 4) - 3.0f; /* ties, <= 0 */
        maxpool2d_forward(&L, y, am, x);
        size_t bad = 0;
        for (size_t pl = 0; pl < (size_t)L.n * L.c; pl++)
            for (int oh = 0; oh < w->out_h; oh++)
                for (int ow = 0; ow < w->out_w; ow++) {
                    const float *xp = x + pl * w->in_h * w->in_w;
                    float m = -INFINITY;
                    int32_t idx = -1;
                    for (int i = 0; i < w->kh; i++)
                        for (int j = 0; j < w->kw; j++) {
                            int ih = oh * w->sh - w->pad_t + i, iw = ow * w->sw - w->pad_l + j;
                            if (ih < 0 || ih >= w->in_h || iw < 0 || iw >= w->in_w) continue;
                            if (idx < 0 || xp[ih * w->in_w + iw] > m)
                                m = xp[ih * w->in_w + iw], idx = ih * w->in_w + iw;
                        }
                    size_t o = (pl * w->out_h + oh) * w->out_w + ow;
                    bad += y[o] != m || am[o] != idx;
                }
        CHECK(t, bad == 0, "case %zu: %zu outputs differ from the scan", k, bad);
        free(x), free(y), free(am);
    }
}

typedef struct {
    Pool2d L;
    bool max;
    float *x, *y, *r;
} PoolCtx;

static size_t pool_in(const Pool2d *L) { return (size_t)L->n * L->c * L->win.in_h * L->win.in_w; }
static size_t pool_out(const Pool2d *L) {
    return (size_t)L->n * L->c * L->win.out_h * L->win.out_w;
}

static double pool_loss(void *p) {
    PoolCtx *c = p;
    if (c->max)
        maxpool2d_forward(&c->L, c->y, NULL, c->x);
    else
        avgpool2d_forward(&c->L, c->y, c->x);
    return dot_d(c->y, c->r, pool_out(&c->L));
}

TEST(layers_pool_gradients) {
    static const int cases[][7] = {
        /* n, c, h, w, kh, kw, stride (SAME) */
        {2, 3, 7, 13, 2, 5, 2}, {1, 2, 9, 17, 2, 5, 2}, {3, 1, 5, 6, 3, 3, 1}, {2, 2, 4, 11, 3, 2, 3},
    };
    Rng r;
    rng_seed(&r, 4);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *cs = cases[k];
        for (int is_max = 0; is_max < 2; is_max++) {
            PoolCtx c = {{cs[0], cs[1], {0}}, is_max, NULL, NULL, NULL};
            REQUIRE(t, window2d_init(&c.L.win, cs[2], cs[3], cs[4], cs[5], cs[6], cs[6], PAD_SAME,
                                     PAD_SAME) == 0, "geometry");
            size_t nx = pool_in(&c.L), ny = pool_out(&c.L);
            /* distinct values 0.01 apart: no ties within 2h */
            c.x = zeros(nx);
            for (size_t i = 0; i < nx; i++) c.x[i] = 0.01f * (float)i - 0.005f * (float)nx;
            for (size_t i = nx - 1; i > 0; i--) {
                size_t j = rng_below(&r, i + 1);
                float tmp = c.x[i];
                c.x[i] = c.x[j], c.x[j] = tmp;
            }
            c.y = zeros(ny), c.r = rnd(&r, ny, -1, 1);
            float *dx = rnd(&r, nx, 3, 4), *dx2 = zeros(nx);
            int32_t *am = xmalloc(maxpool2d_index_count(&c.L) * sizeof *am);
            if (is_max) {
                maxpool2d_forward(&c.L, c.y, am, c.x);
                maxpool2d_backward(&c.L, dx, c.r, am, NULL);
                maxpool2d_backward(&c.L, dx2, c.r, NULL, c.x);
                CHECK(t, memcmp(dx, dx2, nx * sizeof *dx) == 0, "maxpool: argmax vs recompute");
            } else {
                avgpool2d_backward(&c.L, dx, c.r);
            }
            char what[64];
            snprintf(what, sizeof what, "%s case %zu dx", is_max ? "maxpool" : "avgpool", k);
            fd_check(t, pool_loss, &c, c.x, nx, dx, 2e-3f, FD_TOL, what);
            free(c.x), free(c.y), free(c.r), free(dx), free(dx2), free(am);
        }
    }
}

/* ------------------------------------------------------------ batchnorm */

typedef struct {
    BatchNorm L;
    bool train;
    float *x, *g, *b, *m, *v, *y, *r, *sm, *si;
} BnCtx;

static size_t bn_size(const BatchNorm *L) { return (size_t)L->n * L->c * L->hw; }

static double bn_loss(void *p) {
    BnCtx *c = p;
    if (c->train)
        batchnorm_train_forward(&c->L, c->y, c->x, c->g, c->b, NULL, NULL, c->sm, c->si);
    else
        batchnorm_forward(&c->L, c->y, c->x, c->g, c->b, c->m, c->v);
    return dot_d(c->y, c->r, bn_size(&c->L));
}

TEST(layers_batchnorm_inference) {
    Rng r;
    rng_seed(&r, 5);
    BnCtx c = {.L = {3, 4, 15, 1e-5f, 0.1f}, .train = false};
    size_t n = bn_size(&c.L);
    c.x = rnd(&r, n, -2, 2), c.g = rnd(&r, 4, 0.5f, 2), c.b = rnd(&r, 4, -1, 1);
    c.m = rnd(&r, 4, -1, 1), c.v = rnd(&r, 4, 0.2f, 3), c.y = zeros(n), c.r = rnd(&r, n, -1, 1);
    batchnorm_forward(&c.L, c.y, c.x, c.g, c.b, c.m, c.v);
    double err = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (int)(i / 15 % 4);
        double want = (c.x[i] - c.m[ch]) / sqrt((double)c.v[ch] + 1e-5) * c.g[ch] + c.b[ch];
        err = fmax(err, fabs(want - c.y[i]));
    }
    CHECK(t, err < 1e-5, "inference forward max error %g", err);
    float *dx = zeros(n), *dg = zeros(4), *db = zeros(4);
    batchnorm_backward(&c.L, dx, dg, db, c.r, c.x, c.g, c.m, c.v);
    fd_check(t, bn_loss, &c, c.x, n, dx, 1e-2f, FD_TOL, "bn dx");
    fd_check(t, bn_loss, &c, c.g, 4, dg, 1e-2f, FD_TOL, "bn dgamma");
    fd_check(t, bn_loss, &c, c.b, 4, db, 1e-2f, FD_TOL, "bn dbeta");
    /* affine=False */
    float *y2 = zeros(n);
    batchnorm_forward(&c.L, y2, c.x, NULL, NULL, c.m, c.v);
    CHECK(t, fabs(y2[0] - (c.x[0] - c.m[0]) / sqrt(c.v[0] + 1e-5)) < 1e-5, "no gamma/beta");
    /* in place */
    batchnorm_forward(&c.L, c.y, c.x, c.g, c.b, c.m, c.v); /* fd_check left c.y stale */
    memcpy(y2, c.x, n * sizeof *y2);
    batchnorm_forward(&c.L, y2, y2, c.g, c.b, c.m, c.v);
    CHECK(t, memcmp(y2, c.y, n * sizeof *y2) == 0, "in place differs");
    free(c.x), free(c.g), free(c.b), free(c.m), free(c.v), free(c.y), free(c.r);
    free(dx), free(dg), free(db), free(y2);
}

TEST(layers_batchnorm_training) {
    Rng r;
    rng_seed(&r, 6);
    BnCtx c = {.L = {3, 4, 7, 1e-5f, 0.1f}, .train = true};
    size_t n = bn_size(&c.L);
    c.x = rnd(&r, n, -2, 3), c.g = rnd(&r, 4, 0.5f, 2), c.b = rnd(&r, 4, -1, 1);
    c.y = zeros(n), c.r = rnd(&r, n, -1, 1), c.sm = zeros(4), c.si = zeros(4);
    float rm[4] = {0.5f, 0, 0, 0}, rv[4] = {2, 1, 1, 1};
    batchnorm_train_forward(&c.L, c.y, c.x, c.g, c.b, rm, rv, c.sm, c.si);
    for (int ch = 0; ch < 4; ch++) {
        double s = 0, ss = 0, ys = 0, yss = 0;
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 7; i++) {
                size_t k = ((size_t)b * 4 + ch) * 7 + i;
                s += c.x[k];
                double yh = (c.y[k] - c.b[ch]) / c.g[ch];
                ys += yh, yss += yh * yh;
            }
        double mean = s / 21;
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 7; i++) {
                double d = c.x[((size_t)b * 4 + ch) * 7 + i] - mean;
                ss += d * d;
            }
        CHECK(t, fabs(ys / 21) < 1e-5 && fabs(yss / 21 - ss / 21 / (ss / 21 + 1e-5)) < 1e-4,
              "channel %d not normalized: mean %g, var %g", ch, ys / 21, yss / 21);
        double want_rm = 0.9 * (ch == 0 ? 0.5 : 0) + 0.1 * mean;
        double want_rv = 0.9 * (ch == 0 ? 2 : 1) + 0.1 * ss / 20; /* unbiased */
        CHECK(t, fabs(rm[ch] - want_rm) < 1e-6 && fabs(rv[ch] - want_rv) < 1e-6,
              "running stats channel %d: %g %g, want %g %g", ch, rm[ch], rv[ch], want_rm, want_rv);
        CHECK(t, fabs(c.sm[ch] - mean) < 1e-6 && fabs(c.si[ch] - 1 / sqrt(ss / 21 + 1e-5)) < 1e-5,
              "saved statistics");
    }
    float *dx = zeros(n), *dg = zeros(4), *db = zeros(4);
    batchnorm_train_backward(&c.L, dx, dg, db, c.r, c.x, c.g, c.sm, c.si);
    fd_check(t, bn_loss, &c, c.x, n, dx, 1e-2f, FD_TOL, "train bn dx (through batch stats)");
    fd_check(t, bn_loss, &c, c.g, 4, dg, 1e-2f, FD_TOL, "train bn dgamma");
    fd_check(t, bn_loss, &c, c.b, 4, db, 1e-2f, FD_TOL, "train bn dbeta");
    free(c.x), free(c.g), free(c.b), free(c.y), free(c.r), free(c.sm), free(c.si);
    free(dx), free(dg), free(db);
}

/* ------------------------------------------------------------------ LRN */

typedef struct {
    Lrn L;
    float *x, *y, *r;
} LrnCtx;

static size_t lrn_size(const Lrn *L) { return (size_t)L->n * L->c * L->hw; }

static double lrn_loss(void *p) {
    LrnCtx *c = p;
    lrn_forward(&c->L, c->y, c->x);
    return dot_d(c->y, c->r, lrn_size(&c->L));
}

TEST(layers_lrn) {
    Rng r;
    rng_seed(&r, 7);
    /* (radius, bias, alpha, beta): Kell 2018-like and a window wider than C */
    static const float params[][4] = {{2, 1, 1e-1f, 0.75f}, {1, 2, 0.5f, 0.5f}, {4, 1, 0.3f, 1}};
    for (size_t k = 0; k < 3; k++) {
        LrnCtx c = {.L = {2, 5, 6, (int)params[k][0], params[k][1], params[k][2], params[k][3]}};
        size_t n = lrn_size(&c.L);
        c.x = rnd(&r, n, -2, 2), c.y = zeros(n), c.r = rnd(&r, n, -1, 1);
        lrn_forward(&c.L, c.y, c.x);
        double err = 0;
        for (int b = 0; b < 2; b++)
            for (int ch = 0; ch < 5; ch++)
                for (int i = 0; i < 6; i++) {
                    double s = 0;
                    for (int j = ch - c.L.radius; j <= ch + c.L.radius; j++) {
                        if (j < 0 || j >= 5) continue;
                        double v = c.x[((size_t)b * 5 + j) * 6 + i];
                        s += v * v;
                    }
                    size_t idx = ((size_t)b * 5 + ch) * 6 + i;
                    double want = c.x[idx] / pow(c.L.bias + c.L.alpha * s, c.L.beta);
                    err = fmax(err, fabs(want - c.y[idx]));
                }
        CHECK(t, err < 1e-5, "lrn forward case %zu max error %g", k, err);
        float *dx = zeros(n), *s = exact(lrn_scratch_floats(&c.L));
        lrn_backward(&c.L, dx, c.r, c.x, s);
        char what[32];
        snprintf(what, sizeof what, "lrn case %zu dx", k);
        fd_check(t, lrn_loss, &c, c.x, n, dx, 1e-2f, FD_TOL, what);
        free(c.x), free(c.y), free(c.r), free(dx), free(s);
    }
}

/* --------------------------------------------------------------- linear */

typedef struct {
    Linear L;
    float *x, *w, *b, *y, *r;
} LinCtx;

static double lin_loss(void *p) {
    LinCtx *c = p;
    linear_forward(&c->L, c->y, c->x, c->w, c->b);
    return dot_d(c->y, c->r, (size_t)c->L.n * c->L.out);
}

TEST(layers_linear) {
    Rng r;
    rng_seed(&r, 8);
    static const int cases[][3] = {{1, 37, 11}, {3, 20, 7}, {2, 1, 5}};
    for (size_t k = 0; k < 3; k++) {
        LinCtx c = {.L = {cases[k][0], cases[k][1], cases[k][2], NULL}};
        size_t nx = (size_t)c.L.n * c.L.in, ny = (size_t)c.L.n * c.L.out,
               nw = (size_t)c.L.in * c.L.out;
        c.x = rnd(&r, nx, -1, 1), c.w = rnd(&r, nw, -1, 1), c.b = rnd(&r, c.L.out, -1, 1);
        c.y = rnd(&r, ny, 9, 10), c.r = rnd(&r, ny, -1, 1);
        linear_forward(&c.L, c.y, c.x, c.w, c.b);
        double err = 0;
        for (int b = 0; b < c.L.n; b++)
            for (int o = 0; o < c.L.out; o++) {
                double s = c.b[o];
                for (int i = 0; i < c.L.in; i++)
                    s += (double)c.x[(size_t)b * c.L.in + i] * c.w[(size_t)o * c.L.in + i];
                err = fmax(err, fabs(s - c.y[(size_t)b * c.L.out + o]));
            }
        CHECK(t, err < 1e-5, "linear forward case %zu error %g", k, err);
        float *dx = rnd(&r, nx, 5, 6), *dw = zeros(nw), *db = zeros(c.L.out);
        linear_backward(&c.L, dx, dw, db, c.r, c.x, c.w);
        char what[48];
        snprintf(what, sizeof what, "linear case %zu dx", k);
        fd_check(t, lin_loss, &c, c.x, nx, dx, 1e-2f, FD_TOL, what);
        snprintf(what, sizeof what, "linear case %zu dweight", k);
        fd_check(t, lin_loss, &c, c.w, nw, dw, 1e-2f, FD_TOL, what);
        snprintf(what, sizeof what, "linear case %zu dbias", k);
        fd_check(t, lin_loss, &c, c.b, c.L.out, db, 1e-2f, FD_TOL, what);
        /* no bias */
        linear_forward(&c.L, c.y, c.x, c.w, NULL);
        double s = 0;
        for (int i = 0; i < c.L.in; i++) s += (double)c.x[i] * c.w[i];
        CHECK(t, fabs(s - c.y[0]) < 1e-5, "linear without bias");
        free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db);
    }
}

/* -------------------------------------------------------------- dropout */

TEST(layers_dropout) {
    Rng r;
    rng_seed(&r, 9);
    Dropout L = {20000, 0.3f};
    float *x = rnd(&r, L.count, 0.5f, 1.5f), *y = zeros(L.count), *y2 = zeros(L.count);
    dropout_forward(&L, y, x, 1234);
    dropout_forward(&L, y2, x, 1234);
    CHECK(t, memcmp(y, y2, L.count * sizeof *y) == 0, "same seed, different mask");
    size_t kept = 0;
    int scale_ok = 1;
    for (size_t i = 0; i < L.count; i++) {
        if (y[i] != 0) {
            kept++;
            scale_ok &= fabsf(y[i] - x[i] / 0.7f) <= 1e-6f * fabsf(y[i]);
        }
    }
    double frac = (double)kept / L.count;
    CHECK(t, fabs(frac - 0.7) < 0.015, "kept fraction %g, want 0.7", frac);
    CHECK(t, scale_ok, "kept elements not scaled by 1/(1-p)");
    dropout_forward(&L, y2, x, 1235);
    CHECK(t, memcmp(y, y2, L.count * sizeof *y) != 0, "another seed, same mask");
    /* backward: the same mask and scale applied to dy */
    float *dy = rnd(&r, L.count, -1, 1), *dx = zeros(L.count);
    dropout_backward(&L, dx, dy, 1234);
    int mask_ok = 1;
    for (size_t i = 0; i < L.count; i++)
        mask_ok &= (y[i] == 0) == (dx[i] == 0) && (y[i] == 0 || fabsf(dx[i] - dy[i] / 0.7f) < 1e-6f);
    CHECK(t, mask_ok, "backward mask differs from forward");
    /* in place, p = 0 and p = 1 */
    memcpy(y2, x, L.count * sizeof *y2);
    dropout_forward(&L, y2, y2, 1234);
    CHECK(t, memcmp(y, y2, L.count * sizeof *y) == 0, "in place differs");
    Dropout L0 = {L.count, 0}, L1 = {L.count, 1};
    dropout_forward(&L0, y2, x, 5);
    CHECK(t, memcmp(x, y2, L.count * sizeof *y) == 0, "p = 0 is not the identity");
    dropout_forward(&L1, y2, x, 5);
    int allz = 1;
    for (size_t i = 0; i < L.count; i++) allz &= y2[i] == 0;
    CHECK(t, allz, "p = 1 keeps something");
    free(x), free(y), free(y2), free(dy), free(dx);
}

/* ------------------------------------------------ softmax cross-entropy */

typedef struct {
    SoftmaxXent L;
    float *z;
    int32_t *labels;
} XentCtx;

static double xent_loss(void *p) {
    XentCtx *c = p;
    return softmax_xent_forward(&c->L, c->z, c->labels);
}

TEST(layers_softmax_xent) {
    Rng r;
    rng_seed(&r, 10);
    int32_t labels[4] = {2, 0, -1, 6};
    XentCtx c = {{4, 7}, rnd(&r, 28, -3, 3), labels};
    double want = 0;
    for (int b = 0; b < 4; b++) {
        if (labels[b] < 0) continue;
        double s = 0;
        for (int j = 0; j < 7; j++) s += exp(c.z[b * 7 + j]);
        want += log(s) - c.z[b * 7 + labels[b]];
    }
    want /= 3; /* the ignored example does not count */
    float loss = softmax_xent_forward(&c.L, c.z, labels);
    CHECK(t, fabs(loss - want) < 1e-6 * fabs(want) + 1e-7, "loss %g want %g", loss, want);
    float dz[28];
    softmax_xent_backward(&c.L, dz, c.z, labels, 1.0f);
    /* float loss: FD step 1e-2 and float rounding of the loss (~1e-7 rel) */
    fd_check(t, xent_loss, &c, c.z, 28, dz, 1e-2f, 5e-3, "softmax xent dlogits");
    double rowsum = 0;
    for (int j = 0; j < 7; j++) rowsum += dz[j];
    CHECK(t, fabs(rowsum) < 1e-6, "gradient row does not sum to 0: %g", rowsum);
    CHECK(t, dz[14] == 0 && dz[20] == 0, "ignored example has a gradient");
    /* stability: huge logits */
    float big[3] = {1000, 1001, 999};
    int32_t lb[1] = {0};
    SoftmaxXent L1 = {1, 3};
    float lbig = softmax_xent_forward(&L1, big, lb), db[3];
    double wbig = log(exp(-1.0) + 1 + exp(-2.0)) + 1;
    CHECK(t, isfinite(lbig) && fabs(lbig - wbig) < 1e-5, "large logits: %g want %g", lbig, wbig);
    softmax_xent_backward(&L1, db, big, lb, 2.0f);
    CHECK(t, isfinite(db[0]) && db[0] < 0 && db[1] > 0 && fabsf(db[0] + db[1] + db[2]) < 1e-6f,
          "large logits gradient %g %g %g", db[0], db[1], db[2]);
    free(c.z);
}
