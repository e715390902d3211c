/* conv2d: im2col + sgemm forward, sgemm + col2im backward (see layers.h).
 *
 * im2col layout: col[K][P], K = in_c*kh*kw in the weight's (c, ki, kj) order,
 * P = out_h*out_w, so the forward is one row-major sgemm
 *     y[out_c][P] = W[out_c][K] . col[K][P]
 * and the input gradient another, dcol = W^T dy, followed by col2im.
 *
 * To make every col row a run of contiguous copies whatever the padding and
 * the width stride, each input plane is first copied into a small "phase
 * plane" xp[Hp][sw][Wq]: padded row r, padded column j*sw + q lands at
 * xp[r][q][j]. Kernel tap (ki, kj) of output (oh, ow) then reads
 * xp[oh*sh + ki][kj % sw][kj / sw + ow]: contiguous in ow. The phase plane is
 * one input plane in size (L1/L2-resident), so the cost is one extra pass
 * over the input. col2im accumulates into the phase plane the same way and
 * then scatters it back to the input layout.
 *
 * Threads. With a pool of T > 1 workers and OpenBLAS at one thread, the work
 * is cut into up to T tasks (shares of >= 2^22 multiply-adds, layers_tasks),
 * each one serial sgemm plus the im2col that feeds it or the col2im that
 * drains it, on the worker's own scratch:
 *   - forward of one example: by output rows (GEMM columns) when the weights
 *     are smaller than the col matrix, since each task packs the weights
 *     again; else by output channels after an im2col split by kernel rows;
 *   - input gradient of one example: by input channels (rows of dcol), each
 *     task's col2im writing only its channels of dx; a one-channel input is
 *     split by dcol columns, then col2im by rows of the plane;
 *   - weight gradient: by (channel, kernel row) units of K, i.e. by columns
 *     of dW, each task looping over the examples (no races, no reduction);
 *   - forward and input gradient of a batch: by groups of examples.
 * A batch is taken G examples at a time, side by side as the columns of one
 * product (col[K][G*P], aiming at GROUP_COLS columns): a 2x9 plane alone
 * gives 18-column sgemms that run at a half to a fifth of the speed. The
 * forward computes into a [out_c][G*P] buffer scattered to y, the backward
 * gathers dy into one first.
 * Each output element stays one sgemm dot product over the same K, so the
 * result does not depend on the number of workers. With OpenBLAS threaded,
 * everything is one task on the calling thread and OpenBLAS threads the
 * sgemm (two thread systems on two cores would only fight).
 */
#include "../core/core.h"
#include "layers.h"

#include <cblas.h>
#include <string.h>

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

#define GROUP_COLS 512 /* columns a batch's product aims for */

typedef struct {
    int hp, wq;    /* phase plane: rows, columns per phase */
    size_t row;    /* floats per padded row: sw * wq */
    size_t plane;  /* hp * row */
    int K, P, kk;  /* kk = kh * kw */
    int G, groups; /* examples per product, products per batch */
    bool pw;       /* pointwise, one example at a time: x is already the col matrix */
    size_t col;    /* floats of col: K * G * P */
    size_t stride; /* scratch floats per worker: phase plane, col, [out_c][G*P] buffer */
} ConvGeom;

/* 1x1, stride 1, no padding: the input plane is already the col matrix. */
static bool conv_pointwise(const Conv2d *L) {
    const Window2d *w = &L->win;
    return w->kh == 1 && w->kw == 1 && w->sh == 1 && w->sw == 1 && w->pad_t == 0 &&
           w->pad_l == 0 && w->out_h == w->in_h && w->out_w == w->in_w;
}

static ConvGeom conv_geom(const Conv2d *L) {
    const Window2d *w = &L->win;
    ConvGeom g;
    g.hp = (w->out_h - 1) * w->sh + w->kh;
    g.wq = w->out_w + (w->kw - 1) / w->sw;
    g.row = (size_t)w->sw * (size_t)g.wq;
    g.plane = (size_t)g.hp * g.row;
    g.kk = w->kh * w->kw;
    g.K = L->in_c * g.kk;
    g.P = w->out_h * w->out_w;
    long groups = ((long)L->n * g.P + GROUP_COLS - 1) / GROUP_COLS;
    groups = groups < 1 ? 1 : groups > L->n ? L->n : groups;
    g.G = (int)((L->n + groups - 1) / groups);
    g.groups = (L->n + g.G - 1) / g.G;
    g.pw = conv_pointwise(L) && g.G == 1;
    g.col = (size_t)g.K * (size_t)g.G * (size_t)g.P;
    g.stride = g.pw ? 0 : round16(g.plane) + round16(g.col);
    if (g.G > 1) g.stride += round16((size_t)L->out_c * (size_t)g.G * (size_t)g.P);
    return g;
}

size_t conv2d_scratch_floats(const Conv2d *L) {
    return (size_t)pool_size(L->pool) * conv_geom(L).stride;
}

/* Tasks to cut a product with `cols` columns into (see the top of the file). */
static int conv_tasks(const Conv2d *L, const ConvGeom *g, int cols) {
    return layers_tasks(L->pool, (double)L->out_c * g->K * cols);
}

/* ------------------------------------------------------ phase plane */

/* Padded rows [r0, r1) of the phase plane from input plane x. */
static void plane_pack(const Window2d *w, const ConvGeom *g, float *restrict xp,
                       const float *restrict x, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        float *dst = xp + (size_t)r * g->row;
        int ir = r - w->pad_t;
        if (ir < 0 || ir >= w->in_h)
            memset(dst, 0, g->row * sizeof *dst);
        else
            layers_split_phases(dst, x + (size_t)ir * w->in_w, w->in_w, -w->pad_l, w->sw, g->wq,
                                0.0f);
    }
}

/* One input row of dx from its padded row of the phase plane. */
static void row_unpack(const Window2d *w, const ConvGeom *g, float *restrict dst,
                       const float *restrict src) {
    const int sw = w->sw, wq = g->wq;
    if (sw == 1) {
        int n = wq - w->pad_l < w->in_w ? wq - w->pad_l : w->in_w;
        n = n > 0 ? n : 0;
        memcpy(dst, src + w->pad_l, (size_t)n * sizeof *dst);
        for (int i = n; i < w->in_w; i++) dst[i] = 0;
        return;
    }
    if ((long)wq * sw - w->pad_l < w->in_w) memset(dst, 0, (size_t)w->in_w * sizeof *dst);
    for (int q = 0; q < sw; q++)
        for (int j = 0; j < wq; j++) {
            int ic = j * sw + q - w->pad_l;
            if (ic >= 0 && ic < w->in_w) dst[ic] = src[q * wq + j];
        }
}

/* The dx rows whose padded rows are [r0, r1) (the last range also takes the
 * rows no window reaches, which get 0). */
static void plane_unpack(const Window2d *w, const ConvGeom *g, float *restrict dx,
                         const float *restrict xp, int r0, int r1) {
    int lo = r0 - w->pad_t > 0 ? r0 - w->pad_t : 0;
    int hi = r1 == g->hp ? w->in_h : r1 - w->pad_t < w->in_h ? r1 - w->pad_t : w->in_h;
    for (int ir = lo; ir < hi; ir++) {
        float *dst = dx + (size_t)ir * w->in_w;
        int r = ir + w->pad_t;
        if (r >= g->hp) /* stride/valid remainder */
            memset(dst, 0, (size_t)w->in_w * sizeof *dst);
        else
            row_unpack(w, g, dst, xp + (size_t)r * g->row);
    }
}

/* ------------------------------------------------------ im2col / col2im */

__attribute__((target_clones("avx512f", "avx2", "default")))
static void copy_taps(float *restrict dst, const float *restrict src, int rows, int n,
                      size_t src_stride) {
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * n;
        const float *s = src + (size_t)r * src_stride;
#pragma omp simd
        for (int i = 0; i < n; i++) d[i] = s[i];
    }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void add_taps(float *restrict dst, const float *restrict src, int rows, int n,
                     size_t dst_stride) {
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * dst_stride;
        const float *s = src + (size_t)r * n;
#pragma omp simd
        for (int i = 0; i < n; i++) d[i] += s[i];
    }
}

/* Rows of col for units [u0, u1) (unit = input channel c, kernel row ki:
 * u = c*kh + ki, kw col rows each) and output rows [oh0, oh1) of example x;
 * col rows are ld apart. */
static void im2col(const Conv2d *L, const ConvGeom *g, float *restrict col, size_t ld,
                   const float *restrict x, float *restrict xp, int u0, int u1, int oh0, int oh1) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, rstride = (size_t)w->sh * g->row;
    int packed = -1, r0 = oh0 * w->sh, r1 = (oh1 - 1) * w->sh + w->kh;
    for (int u = u0; u < u1; u++) {
        int c = u / w->kh, ki = u % w->kh;
        if (c != packed) plane_pack(w, g, xp, x + (size_t)c * in_plane, r0, r1), packed = c;
        for (int kj = 0; kj < w->kw; kj++) {
            const float *base = xp + (size_t)(r0 + ki) * g->row + (size_t)(kj % w->sw) * g->wq +
                                (size_t)(kj / w->sw);
            copy_taps(col + (size_t)((u - u0) * w->kw + kj) * ld, base, oh1 - oh0, w->out_w,
                      rstride);
        }
    }
}

/* dx channels [c0, c1), the rows whose padded rows are [r0, r1), from col
 * (rows of channels c0.., ld apart) (overwrites). */
static void col2im(const Conv2d *L, const ConvGeom *g, float *restrict dx,
                   const float *restrict col, size_t ld, float *restrict xp, int c0, int c1,
                   int r0, int r1) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, rstride = (size_t)w->sh * g->row;
    for (int c = c0; c < c1; c++) {
        memset(xp + (size_t)r0 * g->row, 0, (size_t)(r1 - r0) * g->row * sizeof *xp);
        for (int ki = 0; ki < w->kh; ki++) {
            /* output rows oh with oh*sh + ki in [r0, r1) */
            int lo = r0 - ki > 0 ? (r0 - ki + w->sh - 1) / w->sh : 0;
            int hi = r1 - ki > 0 ? (r1 - ki + w->sh - 1) / w->sh : 0;
            hi = hi < w->out_h ? hi : w->out_h;
            if (lo >= hi) continue;
            for (int kj = 0; kj < w->kw; kj++) {
                float *base = xp + (size_t)(lo * w->sh + ki) * g->row +
                              (size_t)(kj % w->sw) * g->wq + (size_t)(kj / w->sw);
                const float *crow = col + (size_t)((c - c0) * g->kk + ki * w->kw + kj) * ld;
                add_taps(base, crow + (size_t)lo * w->out_w, hi - lo, w->out_w, rstride);
            }
        }
        plane_unpack(w, g, dx + (size_t)c * in_plane, xp, r0, r1);
    }
}

/* ------------------------------------------------------------ jobs */

typedef struct {
    const Conv2d *L;
    ConvGeom g;
    int tasks;
    float *out; /* y (forward) or dx (input gradient) */
    float *dw;
    const float *in; /* x (forward, dw) or dy (input gradient) */
    const float *dy; /* dw */
    const float *weight, *bias;
    float *scratch;
    float *shared; /* col or dcol shared by the tasks of a two-phase split */
} ConvJob;

static float *worker_xp(const ConvJob *j, int worker) {
    return j->scratch + (size_t)worker * j->g.stride;
}
static float *worker_col(const ConvJob *j, int worker) {
    return worker_xp(j, worker) + round16(j->g.plane);
}
static float *worker_tmp(const ConvJob *j, int worker) {
    return worker_col(j, worker) + round16(j->g.col);
}

static size_t in_size(const Conv2d *L) { return (size_t)L->in_c * L->win.in_h * L->win.in_w; }
static size_t out_size(const Conv2d *L, const ConvGeom *g) { return (size_t)L->out_c * g->P; }

/* y rows [m0, m1), columns [p0, p0 + np) (ldy = P) = W rows . b (+ bias). */
static void gemm_forward(const ConvJob *j, float *y, int m0, int m1, int np, const float *b,
                         size_t ldb) {
    const int P = j->g.P, K = j->g.K;
    if (j->bias)
        for (int o = m0; o < m1; o++) {
            float *r = y + (size_t)o * P, v = j->bias[o];
            for (int p = 0; p < np; p++) r[p] = v;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, np, K, 1.0f,
                j->weight + (size_t)m0 * K, K, b, (int)ldb, j->bias ? 1.0f : 0.0f,
                y + (size_t)m0 * P, P);
}

/* Forward of example b, output rows [oh0, oh1): im2col then one sgemm. */
static void forward_rows(const ConvJob *j, int b, int oh0, int oh1, int worker) {
    const Conv2d *L = j->L;
    const ConvGeom *g = &j->g;
    const float *x = j->in + (size_t)b * in_size(L);
    float *y = j->out + (size_t)b * out_size(L, g);
    const int ow = L->win.out_w, np = (oh1 - oh0) * ow;
    if (np <= 0) return;
    if (g->pw) {
        gemm_forward(j, y + (size_t)oh0 * ow, 0, L->out_c, np, x + (size_t)oh0 * ow, (size_t)g->P);
        return;
    }
    float *col = worker_col(j, worker);
    im2col(L, g, col, (size_t)np, x, worker_xp(j, worker), 0, L->in_c * L->win.kh, oh0, oh1);
    gemm_forward(j, y + (size_t)oh0 * ow, 0, L->out_c, np, col, (size_t)np);
}

/* [out_c][n*P] buffer <-> examples b0 .. b0+n of t ([n][out_c][P]), + bias. */
static void group_scatter(const ConvJob *j, float *t, const float *buf, int b0, int n,
                          const float *bias) {
    const int M = j->L->out_c, P = j->g.P;
    for (int b = 0; b < n; b++)
        for (int m = 0; m < M; m++) {
            float *d = t + ((size_t)(b0 + b) * M + m) * P;
            const float *s = buf + (size_t)m * n * P + (size_t)b * P, v = bias ? bias[m] : 0.0f;
            for (int p = 0; p < P; p++) d[p] = s[p] + v;
        }
}

static void group_gather(const ConvJob *j, float *buf, const float *t, int b0, int n) {
    const int M = j->L->out_c, P = j->g.P;
    for (int b = 0; b < n; b++)
        for (int m = 0; m < M; m++)
            memcpy(buf + (size_t)m * n * P + (size_t)b * P, t + ((size_t)(b0 + b) * M + m) * P,
                   (size_t)P * sizeof *buf);
}

/* col rows of units [u0, u1) for examples b0 .. b0+n, side by side. */
static void group_im2col(const ConvJob *j, float *col, int b0, int n, int u0, int u1,
                         int worker) {
    const Conv2d *L = j->L;
    for (int b = 0; b < n; b++)
        im2col(L, &j->g, col + (size_t)b * j->g.P, (size_t)n * j->g.P,
               j->in + (size_t)(b0 + b) * in_size(L), worker_xp(j, worker), u0, u1, 0,
               L->win.out_h);
}

/* Task t: examples [t*G, t*G + G) as one product. */
static void forward_group_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    const Conv2d *L = j->L;
    const int b0 = t * j->g.G, n = L->n - b0 < j->g.G ? L->n - b0 : j->g.G, cols = n * j->g.P;
    if (n == 1) {
        forward_rows(j, b0, 0, L->win.out_h, worker);
        return;
    }
    float *col = worker_col(j, worker), *buf = worker_tmp(j, worker);
    group_im2col(j, col, b0, n, 0, L->in_c * L->win.kh, worker);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->out_c, cols, j->g.K, 1.0f,
                j->weight, j->g.K, col, cols, 0.0f, buf, cols);
    group_scatter(j, j->out, buf, b0, n, j->bias);
}

static void forward_rows_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    int oh0, oh1;
    layers_split_range(j->L->win.out_h, 1, j->tasks, t, &oh0, &oh1);
    forward_rows(j, 0, oh0, oh1, worker);
}

static void im2col_units_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    int u0, u1;
    layers_split_range(j->L->in_c * j->L->win.kh, 1, j->tasks, t, &u0, &u1);
    if (u0 < u1)
        im2col(j->L, &j->g, j->shared + (size_t)u0 * j->L->win.kw * j->g.P, (size_t)j->g.P, j->in,
               worker_xp(j, worker), u0, u1, 0, j->L->win.out_h);
}

static void forward_channels_task(void *ctx, int t, int worker) {
    (void)worker;
    const ConvJob *j = ctx;
    int m0, m1;
    layers_split_range(j->L->out_c, 16, j->tasks, t, &m0, &m1);
    if (m0 < m1)
        gemm_forward(j, j->out, m0, m1, j->g.P, j->g.pw ? j->in : j->shared, (size_t)j->g.P);
}

void conv2d_forward(const Conv2d *L, float *y, const float *x, const float *weight,
                    const float *bias, float *scratch) {
    ConvJob j = {.L = L, .g = conv_geom(L), .out = y, .in = x, .weight = weight, .bias = bias,
                 .scratch = scratch};
    j.tasks = conv_tasks(L, &j.g, j.g.P);
    if (L->n > 1 || j.tasks == 1) {
        pool_run(layers_workers(L->pool) > 1 ? L->pool : NULL, forward_group_task, &j,
                 j.g.groups);
    } else if (L->out_c <= j.g.P && L->win.out_h >= j.tasks) {
        pool_run(L->pool, forward_rows_task, &j, j.tasks);
    } else { /* small plane, many channels: the col matrix is the smaller */
        j.shared = worker_col(&j, 0);
        if (!j.g.pw) pool_run(L->pool, im2col_units_task, &j, j.tasks);
        pool_run(L->pool, forward_channels_task, &j, j.tasks);
    }
}

/* ------------------------------------------------------------ backward */

/* dx channels [c0, c1) of example b: their dcol rows, then col2im. */
static void dx_channels(const ConvJob *j, int b, int c0, int c1, int worker) {
    const Conv2d *L = j->L;
    const ConvGeom *g = &j->g;
    const float *dy = j->in + (size_t)b * out_size(L, g);
    float *dx = j->out + (size_t)b * in_size(L);
    if (c0 >= c1) return;
    float *dcol = g->pw ? dx + (size_t)c0 * g->P : worker_col(j, worker);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (c1 - c0) * g->kk, g->P, L->out_c, 1.0f,
                j->weight + (size_t)c0 * g->kk, g->K, dy, g->P, 0.0f, dcol, g->P);
    if (!g->pw) col2im(L, g, dx, dcol, (size_t)g->P, worker_xp(j, worker), c0, c1, 0, g->hp);
}

static void dx_group_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    const Conv2d *L = j->L;
    const ConvGeom *g = &j->g;
    const int b0 = t * g->G, n = L->n - b0 < g->G ? L->n - b0 : g->G, cols = n * g->P;
    if (n == 1) {
        dx_channels(j, b0, 0, L->in_c, worker);
        return;
    }
    float *dcol = worker_col(j, worker), *buf = worker_tmp(j, worker);
    group_gather(j, buf, j->in, b0, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, cols, L->out_c, 1.0f, j->weight,
                g->K, buf, cols, 0.0f, dcol, cols);
    for (int b = 0; b < n; b++)
        col2im(L, g, j->out + (size_t)(b0 + b) * in_size(L), dcol + (size_t)b * g->P,
               (size_t)cols, worker_xp(j, worker), 0, L->in_c, 0, g->hp);
}

static void dx_channels_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    int c0, c1;
    layers_split_range(j->L->in_c, 1, j->tasks, t, &c0, &c1);
    dx_channels(j, 0, c0, c1, worker);
}

/* Fewer input channels than tasks: dcol by output rows, then col2im by rows. */
static void dcol_rows_task(void *ctx, int t, int worker) {
    (void)worker;
    const ConvJob *j = ctx;
    const int ow = j->L->win.out_w, P = j->g.P;
    int oh0, oh1;
    layers_split_range(j->L->win.out_h, 1, j->tasks, t, &oh0, &oh1);
    if (oh0 < oh1)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j->g.K, (oh1 - oh0) * ow,
                    j->L->out_c, 1.0f, j->weight, j->g.K, j->in + (size_t)oh0 * ow, P, 0.0f,
                    j->shared + (size_t)oh0 * ow, P);
}

static void col2im_rows_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    int r0, r1;
    layers_split_range(j->g.hp, 1, j->tasks, t, &r0, &r1);
    if (r0 < r1)
        col2im(j->L, &j->g, j->out, j->shared, (size_t)j->g.P, worker_xp(j, worker), 0,
               j->L->in_c, r0, r1);
}

static void conv_input_gradient(const Conv2d *L, float *dx, const float *dy, const float *weight,
                                float *scratch) {
    ConvJob j = {.L = L, .g = conv_geom(L), .out = dx, .in = dy, .weight = weight,
                 .scratch = scratch};
    j.tasks = conv_tasks(L, &j.g, j.g.P);
    if (L->n > 1 || j.tasks == 1) {
        pool_run(layers_workers(L->pool) > 1 ? L->pool : NULL, dx_group_task, &j, j.g.groups);
    } else if (L->in_c >= j.tasks) {
        pool_run(L->pool, dx_channels_task, &j, j.tasks);
    } else {
        j.shared = j.g.pw ? dx : worker_col(&j, 0);
        pool_run(L->pool, dcol_rows_task, &j, j.tasks);
        if (!j.g.pw) pool_run(L->pool, col2im_rows_task, &j, j.tasks);
    }
}

/* dW columns of units [u0, u1) (see im2col), summed over the examples. */
static void dweight_task(void *ctx, int t, int worker) {
    const ConvJob *j = ctx;
    const Conv2d *L = j->L;
    const ConvGeom *g = &j->g;
    const int kw = L->win.kw;
    int u0, u1;
    layers_split_range(L->in_c * L->win.kh, 1, j->tasks, t, &u0, &u1);
    if (u0 >= u1) return;
    for (int b0 = 0; b0 < L->n; b0 += g->G) {
        const int n = L->n - b0 < g->G ? L->n - b0 : g->G, cols = n * g->P;
        const float *col = j->in + (size_t)b0 * in_size(L) + (size_t)u0 * g->P; /* pointwise */
        const float *dy = j->dy + (size_t)b0 * out_size(L, g);
        if (!g->pw) {
            group_im2col(j, worker_col(j, worker), b0, n, u0, u1, worker);
            col = worker_col(j, worker);
        }
        if (n > 1) {
            group_gather(j, worker_tmp(j, worker), j->dy, b0, n);
            dy = worker_tmp(j, worker);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L->out_c, (u1 - u0) * kw, cols, 1.0f,
                    dy, cols, col, cols, 1.0f, j->dw + (size_t)u0 * kw, g->K);
    }
}

void conv2d_backward(const Conv2d *L, float *dx, float *dweight, float *dbias,
                     const float *dy, const float *x, const float *weight, float *scratch) {
    const ConvGeom g = conv_geom(L);
    if (dbias)
        for (int b = 0; b < L->n; b++)
            for (int o = 0; o < L->out_c; o++) {
                const float *r = dy + (size_t)b * out_size(L, &g) + (size_t)o * g.P;
                double s = 0;
                for (int p = 0; p < g.P; p++) s += r[p];
                dbias[o] += (float)s;
            }
    if (dweight) {
        ConvJob j = {.L = L, .g = g, .tasks = conv_tasks(L, &g, g.G * g.P), .dw = dweight,
                     .in = x, .dy = dy, .scratch = scratch};
        pool_run(L->pool, dweight_task, &j, j.tasks);
    }
    if (dx) conv_input_gradient(L, dx, dy, weight, scratch);
}
