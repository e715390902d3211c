/* Layer library (model/layers.h): SAME-padding shapes, hand-computed pool
 * examples, forwards against naive double-precision references, finite-
 * difference checks of every gradient, and the golden PyTorch network.
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
#include "test.h"

#define FD_TOL 1e-3

static float *rnd(Rng *r, size_t n, float lo, float hi) {
    float *p = alloc_floats(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rng_uniform(r);
    return p;
}

static float *zeros(size_t n) {
    float *p = alloc_floats(n ? n : 1);
    memset(p, 0, (n ? n : 1) * sizeof *p);
    return p;
}

/* Scratch of exactly the reported size with plain malloc (no rounding up
 * to a cache line), so ASan sees any overrun of *_scratch_floats. */
static float *exact(size_t n) { return xmalloc((n ? n : 1) * sizeof(float)); }

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*LossFn)(void *ctx);

/* Compares analytic[i] with the central difference of f w.r.t. v[i]. */
static void fd_check(TestCtx *t, LossFn f, void *ctx, float *v, size_t n, const float *analytic,
                     float h, double tol, const char *what) {
    size_t m = n <= 400 ? n : 400;
    float *num = xmalloc(m * sizeof *num), *ana = xmalloc(m * sizeof *ana);
    for (size_t k = 0; k < m; k++) {
        size_t i = m == n ? k : k * n / m;
        float v0 = v[i], vp = v0 + h, vm = v0 - h;
        v[i] = vp;
        double lp = f(ctx);
        v[i] = vm;
        double lm = f(ctx);
        v[i] = v0;
        num[k] = (float)((lp - lm) / ((double)vp - (double)vm));
        ana[k] = analytic[i];
    }
    CHECK_REL_L2(t, ana, num, m, tol, what);
    free(num);
    free(ana);
}

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

/* --------------------------------------------------------------- conv2d */

typedef struct {
    int n, ci, co, h, w, kh, kw, sh, sw, ph, pw;
} ConvCase;

static const ConvCase conv_cases[] = {
    {2, 3, 4, 7, 9, 3, 2, 2, 3, PAD_SAME, PAD_SAME},   /* odd sizes, mixed strides */
    {1, 1, 3, 11, 13, 7, 5, 3, 3, PAD_SAME, PAD_SAME}, /* first layer: one channel */
    {3, 2, 2, 5, 6, 2, 5, 1, 1, PAD_SAME, PAD_SAME},   /* CochCNN9 [2x5]/1, batch 3 */
    {2, 2, 3, 9, 8, 4, 8, 2, 2, PAD_SAME, PAD_SAME},   /* conv1-like, pad on both sides */
    {2, 3, 2, 6, 5, 3, 3, 2, 1, 1, 0},                 /* explicit / valid */
    {1, 2, 2, 8, 9, 3, 2, 3, 2, 0, 0},                 /* valid: last rows/cols unread */
    {2, 4, 3, 4, 5, 1, 1, 1, 1, 0, 0},                 /* pointwise: no im2col */
    {1, 2, 2, 3, 4, 5, 6, 2, 2, PAD_SAME, PAD_SAME},   /* kernel larger than input */
    {2, 2, 2, 5, 7, 1, 3, 2, 1, PAD_SAME, PAD_SAME},   /* 1-row kernel, strided rows */
};

static int conv_make(Conv2d *L, const ConvCase *c) {
    L->n = c->n, L->in_c = c->ci, L->out_c = c->co, L->pool = NULL;
    return window2d_init(&L->win, c->h, c->w, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw);
}

static size_t conv_in_size(const Conv2d *L) {
    return (size_t)L->n * L->in_c * L->win.in_h * L->win.in_w;
}
static size_t conv_out_size(const Conv2d *L) {
    return (size_t)L->n * L->out_c * L->win.out_h * L->win.out_w;
}

/* Direct convolution in double. */
static void conv_ref(const Conv2d *L, double *y, const float *x, const float *wt,
                     const float *bias) {
    const Window2d *w = &L->win;
    for (int b = 0; b < L->n; b++)
        for (int o = 0; o < L->out_c; o++)
            for (int oh = 0; oh < w->out_h; oh++)
                for (int ow = 0; ow < w->out_w; ow++) {
                    double s = bias ? bias[o] : 0;
                    for (int c = 0; c < L->in_c; c++)
                        for (int ki = 0; ki < w->kh; ki++)
                            for (int kj = 0; kj < w->kw; kj++) {
                                int ih = oh * w->sh - w->pad_t + ki, iw = ow * w->sw - w->pad_l + kj;
                                if (ih < 0 || ih >= w->in_h || iw < 0 || iw >= w->in_w) continue;
                                s += (double)wt[((o * L->in_c + c) * w->kh + ki) * w->kw + kj] *
                                     x[(((size_t)b * L->in_c + c) * w->in_h + ih) * w->in_w + iw];
                            }
                    y[(((size_t)b * L->out_c + o) * w->out_h + oh) * w->out_w + ow] = s;
                }
}

TEST(layers_conv_forward_matches_direct) {
    Rng r;
    rng_seed(&r, 1);
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            Conv2d L;
            REQUIRE(t, conv_make(&L, &conv_cases[ci]) == 0, "case %zu geometry", ci);
            size_t nx = conv_in_size(&L), ny = conv_out_size(&L);
            size_t nw = (size_t)L.out_c * L.in_c * L.win.kh * L.win.kw;
            float *x = rnd(&r, nx, -1, 1), *wt = rnd(&r, nw, -1, 1), *b = rnd(&r, L.out_c, -1, 1);
            float *y = rnd(&r, ny, 5, 6); /* garbage: forward must overwrite */
            float *s = exact(conv2d_scratch_floats(&L));
            double *ref = xmalloc(ny * sizeof *ref);
            conv2d_forward(&L, y, x, wt, with_bias ? b : NULL, s);
            conv_ref(&L, ref, x, wt, with_bias ? b : NULL);
            float *reff = xmalloc(ny * sizeof *reff);
            for (size_t i = 0; i < ny; i++) reff[i] = (float)ref[i];
            char what[64];
            snprintf(what, sizeof what, "conv case %zu bias %d", ci, with_bias);
            CHECK_REL_L2(t, y, reff, ny, 1e-6, what);
            free(x), free(wt), free(b), free(y), free(s), free(ref), free(reff);
        }
    }
}

typedef struct {
    Conv2d L;
    float *x, *w, *b, *y, *r, *s;
} ConvCtx;

static double conv_loss(void *p) {
    ConvCtx *c = p;
    conv2d_forward(&c->L, c->y, c->x, c->w, c->b, c->s);
    return dot_d(c->y, c->r, conv_out_size(&c->L));
}

TEST(layers_conv_gradients) {
    Rng r;
    rng_seed(&r, 2);
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        ConvCtx c;
        REQUIRE(t, conv_make(&c.L, &conv_cases[ci]) == 0, "case %zu geometry", ci);
        size_t nx = conv_in_size(&c.L), ny = conv_out_size(&c.L);
        size_t nw = (size_t)c.L.out_c * c.L.in_c * c.L.win.kh * c.L.win.kw;
        c.x = rnd(&r, nx, -1, 1), c.w = rnd(&r, nw, -1, 1), c.b = rnd(&r, c.L.out_c, -1, 1);
        c.y = zeros(ny), c.r = rnd(&r, ny, -1, 1);
        c.s = exact(conv2d_scratch_floats(&c.L));
        float *dx = rnd(&r, nx, 7, 8); /* overwritten */
        float *dw = zeros(nw), *db = zeros(c.L.out_c);
        conv2d_backward(&c.L, dx, dw, db, c.r, c.x, c.w, c.s);
        char what[64];
        snprintf(what, sizeof what, "conv case %zu dx", ci);
        fd_check(t, conv_loss, &c, c.x, nx, dx, 1e-2f, FD_TOL, what);
        snprintf(what, sizeof what, "conv case %zu dweight", ci);
        fd_check(t, conv_loss, &c, c.w, nw, dw, 1e-2f, FD_TOL, what);
        snprintf(what, sizeof what, "conv case %zu dbias", ci);
        fd_check(t, conv_loss, &c, c.b, c.L.out_c, db, 1e-2f, FD_TOL, what);

        /* parameter gradients accumulate; dx alone works without x */
        float *dw2 = zeros(nw), *db2 = zeros(c.L.out_c), *dx2 = zeros(nx);
        conv2d_backward(&c.L, NULL, dw2, db2, c.r, c.x, NULL, c.s);
        conv2d_backward(&c.L, NULL, dw2, db2, c.r, c.x, NULL, c.s);
        conv2d_backward(&c.L, dx2, NULL, NULL, c.r, NULL, c.w, c.s);
        for (size_t i = 0; i < nw; i++) dw[i] *= 2;
        for (int i = 0; i < c.L.out_c; i++) db[i] *= 2;
        CHECK_REL_L2(t, dw2, dw, nw, 1e-6, "dweight accumulates over two calls");
        CHECK_REL_L2(t, db2, db, (size_t)c.L.out_c, 1e-6, "dbias accumulates over two calls");
        CHECK_REL_L2(t, dx2, dx, nx, 1e-6, "dx alone");
        free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(c.s);
        free(dx), free(dw), free(db), free(dw2), free(db2), free(dx2);
    }
}

/* With a pool (and OpenBLAS at one thread) conv2d cuts its sgemms into one
 * task per worker: by output rows, by output channels, by input channels or
 * by dcol columns for a one-channel input, and the weight gradient by kernel
 * rows; a batch by groups of examples. Every output is the same dot product,
 * so the results must equal the serial ones bit for bit. The cases reach each
 * of those splits (a product is only cut into shares of >= 2^22
 * multiply-adds). */
static const ConvCase pool_cases[] = {
    {1, 1, 48, 60, 300, 7, 14, 3, 3, PAD_SAME, PAD_SAME}, /* conv0: rows; dcol columns */
    {1, 32, 64, 24, 40, 4, 8, 2, 2, PAD_SAME, PAD_SAME},  /* conv1: rows; input channels */
    {1, 128, 512, 3, 8, 2, 5, 1, 1, PAD_SAME, PAD_SAME},  /* conv3: output channels */
    {1, 512, 512, 4, 8, 1, 1, 1, 1, 0, 0},                /* pointwise, output channels */
    {1, 1, 2, 4, 5, 1, 1, 1, 1, 0, 0},                    /* too small to cut */
    {3, 2, 3, 9, 8, 4, 8, 2, 2, PAD_SAME, PAD_SAME},      /* batch: one group of 3 */
    {8, 32, 64, 24, 40, 4, 8, 2, 2, PAD_SAME, PAD_SAME},  /* batch: 4 groups of 2 */
    {6, 64, 64, 3, 8, 1, 1, 1, 1, 0, 0},                  /* pointwise batch: one group */
};

/* A pool of n workers with OpenBLAS at one thread (so the layers use it). */
static Pool *blas_serial_pool(int n, int *old_threads) {
    *old_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return pool_create(n);
}

static void blas_serial_pool_end(Pool *pool, int old_threads) {
    pool_free(pool);
    openblas_set_num_threads(old_threads);
}

static void conv_run_all(const Conv2d *L, const float *x, const float *wt, const float *b,
                         const float *dy, float *y, float *dx, float *dw, float *db) {
    float *s = exact(conv2d_scratch_floats(L));
    size_t nw = (size_t)L->out_c * L->in_c * L->win.kh * L->win.kw;
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, (size_t)L->out_c * sizeof *db);
    conv2d_forward(L, y, x, wt, b, s);
    conv2d_backward(L, dx, dw, db, dy, x, wt, s);
    free(s);
}

TEST(layers_conv_pool_matches_serial) {
    Rng r;
    rng_seed(&r, 9);
    int old_threads;
    Pool *pool = blas_serial_pool(3, &old_threads);
    for (size_t ci = 0; ci < sizeof pool_cases / sizeof pool_cases[0]; ci++) {
        Conv2d L;
        REQUIRE(t, conv_make(&L, &pool_cases[ci]) == 0, "case %zu geometry", ci);
        size_t nx = conv_in_size(&L), ny = conv_out_size(&L);
        size_t nw = (size_t)L.out_c * L.in_c * L.win.kh * L.win.kw, nb = (size_t)L.out_c;
        float *x = rnd(&r, nx, -1, 1), *wt = rnd(&r, nw, -1, 1), *b = rnd(&r, nb, -1, 1);
        float *dy = rnd(&r, ny, -1, 1);
        float *y[2], *dx[2], *dw[2], *db[2];
        for (int k = 0; k < 2; k++) {
            y[k] = rnd(&r, ny, 5, 6), dx[k] = rnd(&r, nx, 5, 6); /* overwritten */
            dw[k] = zeros(nw), db[k] = zeros(nb);
            L.pool = k ? pool : NULL;
            conv_run_all(&L, x, wt, b, dy, y[k], dx[k], dw[k], db[k]);
        }
        CHECK(t, floats_identical(y[0], y[1], ny), "case %zu: y differs", ci);
        CHECK(t, floats_identical(dx[0], dx[1], nx), "case %zu: dx differs", ci);
        CHECK(t, floats_identical(dw[0], dw[1], nw), "case %zu: dweight differs", ci);
        CHECK(t, floats_identical(db[0], db[1], nb), "case %zu: dbias differs", ci);
        free(x), free(wt), free(b), free(dy);
        for (int k = 0; k < 2; k++) free(y[k]), free(dx[k]), free(dw[k]), free(db[k]);
    }
    blas_serial_pool_end(pool, old_threads);
}

/* The same for linear, cut by outputs (forward, dweight) and by inputs (dx).
 * The first case's dy is half zeros, as behind a relu: its dx skips those
 * rows of W, and must still match a double-precision dy W. */
TEST(layers_linear_pool_matches_serial) {
    static const int cases[][3] = {{1, 4160, 2100}, {8, 1100, 1000}}; /* n, in, out */
    Rng r;
    rng_seed(&r, 10);
    int old_threads;
    Pool *pool = blas_serial_pool(2, &old_threads);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Linear L = {cases[k][0], cases[k][1], cases[k][2], NULL};
        size_t nx = (size_t)L.n * L.in, ny = (size_t)L.n * L.out, nw = (size_t)L.in * L.out;
        float *x = rnd(&r, nx, -1, 1), *wt = rnd(&r, nw, -1, 1), *b = rnd(&r, L.out, -1, 1);
        float *dy = rnd(&r, ny, -1, 1), *y[2], *dx[2], *dw[2];
        for (size_t o = 0; L.n == 1 && o < ny; o += 2) dy[o] = 0.0f;
        for (int p = 0; p < 2; p++) {
            y[p] = zeros(ny), dx[p] = zeros(nx), dw[p] = zeros(nw);
            L.pool = p ? pool : NULL;
            linear_forward(&L, y[p], x, wt, b);
            linear_backward(&L, dx[p], dw[p], NULL, dy, x, wt);
        }
        CHECK(t, floats_identical(y[0], y[1], ny), "case %zu: y differs", k);
        CHECK(t, floats_identical(dx[0], dx[1], nx), "case %zu: dx differs", k);
        CHECK(t, floats_identical(dw[0], dw[1], nw), "case %zu: dweight differs", k);
        float *ref = exact(nx);
        for (int e = 0; e < L.n; e++)
            for (int i = 0; i < L.in; i++) {
                double v = 0;
                for (int o = 0; o < L.out; o++)
                    v += (double)dy[(size_t)e * L.out + o] * wt[(size_t)o * L.in + i];
                ref[(size_t)e * L.in + i] = (float)v;
            }
        CHECK_REL_L2(t, dx[1], ref, nx, 1e-6, "linear dx against double precision");
        free(x), free(wt), free(b), free(dy), free(ref);
        for (int p = 0; p < 2; p++) free(y[p]), free(dx[p]), free(dw[p]);
    }
    blas_serial_pool_end(pool, old_threads);
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

/* bn0 -> conv0 against PyTorch (float64): activation and input gradient. */
TEST(layers_golden_bn0_conv0) {
    Golden g = {0};
    REQUIRE(t, safetensors_open(&g.st, golden_path("network_small.safetensors"), &g.err) == 0,
            "%s", g.err.msg);
    GState s[N_GOLDEN];
    size_t sf;
    REQUIRE(t, golden_build(t, &g, s, &sf) == 0, "building the golden chain");
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
    REQUIRE(t, safetensors_open(&g.st, golden_path("network_small.safetensors"), &g.err) == 0,
            "%s", g.err.msg);
    GState s[N_GOLDEN];
    size_t sf;
    REQUIRE(t, golden_build(t, &g, s, &sf) == 0, "building the golden chain");
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
