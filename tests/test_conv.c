/* conv2d (model/conv.c): forward against a naive double-precision
 * reference, gradients by finite differences (layers_fixture.h), and the
 * pool-split products against the serial ones, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../core/core.h"
#include "../model/layers.h"
#include "layers_fixture.h"
#include "test.h"

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
