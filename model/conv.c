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
 */
#include "layers.h"

#include <cblas.h>
#include <string.h>

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

typedef struct {
    int hp, wq;      /* phase plane: rows, columns per phase */
    size_t row;      /* floats per padded row: sw * wq */
    size_t plane;    /* hp * row */
    int K, P;
} ConvGeom;

static ConvGeom conv_geom(const Conv2d *L) {
    const Window2d *w = &L->win;
    ConvGeom g;
    g.hp = (w->out_h - 1) * w->sh + w->kh;
    g.wq = w->out_w + (w->kw - 1) / w->sw;
    g.row = (size_t)w->sw * (size_t)g.wq;
    g.plane = (size_t)g.hp * g.row;
    g.K = L->in_c * w->kh * w->kw;
    g.P = w->out_h * w->out_w;
    return g;
}

/* 1x1, stride 1, no padding: the input plane is already the col matrix. */
static bool conv_pointwise(const Conv2d *L) {
    const Window2d *w = &L->win;
    return w->kh == 1 && w->kw == 1 && w->sh == 1 && w->sw == 1 && w->pad_t == 0 &&
           w->pad_l == 0 && w->out_h == w->in_h && w->out_w == w->in_w;
}

size_t conv2d_scratch_floats(const Conv2d *L) {
    if (conv_pointwise(L)) return 0;
    ConvGeom g = conv_geom(L);
    return round16(g.plane) + (size_t)g.K * (size_t)g.P;
}

/* ------------------------------------------------------ phase plane */

static void plane_pack(const Window2d *w, const ConvGeom *g, float *restrict xp,
                       const float *restrict x) {
    for (int r = 0; r < g->hp; r++) {
        float *dst = xp + (size_t)r * g->row;
        int ir = r - w->pad_t;
        if (ir < 0 || ir >= w->in_h)
            memset(dst, 0, g->row * sizeof *dst);
        else
            layers_split_phases(dst, x + (size_t)ir * w->in_w, w->in_w, -w->pad_l, w->sw, g->wq,
                                0.0f);
    }
}

/* dx plane = the phase plane's entries at real (unpadded) positions. */
static void plane_unpack(const Window2d *w, const ConvGeom *g, float *restrict dx,
                         const float *restrict xp) {
    const int sw = w->sw, wq = g->wq;
    for (int ir = 0; ir < w->in_h; ir++) {
        float *dst = dx + (size_t)ir * w->in_w;
        int r = ir + w->pad_t;
        if (r >= g->hp) { /* rows no window reaches (stride/valid remainder) */
            memset(dst, 0, (size_t)w->in_w * sizeof *dst);
            continue;
        }
        const float *src = xp + (size_t)r * g->row;
        if (sw == 1) {
            int n = wq - w->pad_l < w->in_w ? wq - w->pad_l : w->in_w;
            n = n > 0 ? n : 0;
            memcpy(dst, src + w->pad_l, (size_t)n * sizeof *dst);
            for (int i = n; i < w->in_w; i++) dst[i] = 0;
        } else {
            if ((long)wq * sw - w->pad_l < w->in_w) memset(dst, 0, (size_t)w->in_w * sizeof *dst);
            for (int q = 0; q < sw; q++)
                for (int j = 0; j < wq; j++) {
                    int ic = j * sw + q - w->pad_l;
                    if (ic >= 0 && ic < w->in_w) dst[ic] = src[q * wq + j];
                }
        }
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

/* col[K][P] from one example x[in_c][in_h][in_w]. */
static void im2col(const Conv2d *L, const ConvGeom *g, float *restrict col,
                   const float *restrict x, float *restrict xp) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w;
    const size_t rstride = (size_t)w->sh * g->row;
    float *crow = col;
    for (int c = 0; c < L->in_c; c++) {
        plane_pack(w, g, xp, x + (size_t)c * in_plane);
        for (int ki = 0; ki < w->kh; ki++)
            for (int kj = 0; kj < w->kw; kj++) {
                const float *base = xp + (size_t)ki * g->row + (size_t)(kj % w->sw) * g->wq +
                                    (size_t)(kj / w->sw);
                copy_taps(crow, base, w->out_h, w->out_w, rstride);
                crow += g->P;
            }
    }
}

/* dx[in_c][in_h][in_w] = col2im(dcol) (overwrites). */
static void col2im(const Conv2d *L, const ConvGeom *g, float *restrict dx,
                   const float *restrict col, float *restrict xp) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w;
    const size_t rstride = (size_t)w->sh * g->row;
    const float *crow = col;
    for (int c = 0; c < L->in_c; c++) {
        memset(xp, 0, g->plane * sizeof *xp);
        for (int ki = 0; ki < w->kh; ki++)
            for (int kj = 0; kj < w->kw; kj++) {
                float *base = xp + (size_t)ki * g->row + (size_t)(kj % w->sw) * g->wq +
                              (size_t)(kj / w->sw);
                add_taps(base, crow, w->out_h, w->out_w, rstride);
                crow += g->P;
            }
        plane_unpack(w, g, dx + (size_t)c * in_plane, xp);
    }
}

/* ------------------------------------------------------------ layer */

void conv2d_forward(const Conv2d *L, float *y, const float *x, const float *weight,
                    const float *bias, float *scratch) {
    const ConvGeom g = conv_geom(L);
    const bool pw = conv_pointwise(L);
    const size_t in_sz = (size_t)L->in_c * L->win.in_h * L->win.in_w;
    const size_t out_sz = (size_t)L->out_c * g.P;
    float *xp = scratch, *col = pw ? NULL : scratch + round16(g.plane);
    for (int b = 0; b < L->n; b++) {
        const float *xb = x + (size_t)b * in_sz;
        float *yb = y + (size_t)b * out_sz;
        if (!pw) im2col(L, &g, col, xb, xp);
        if (bias)
            for (int o = 0; o < L->out_c; o++) {
                float *r = yb + (size_t)o * g.P, v = bias[o];
                for (int p = 0; p < g.P; p++) r[p] = v;
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->out_c, g.P, g.K, 1.0f, weight,
                    g.K, pw ? xb : col, g.P, bias ? 1.0f : 0.0f, yb, g.P);
    }
}

void conv2d_backward(const Conv2d *L, float *dx, float *dweight, float *dbias,
                     const float *dy, const float *x, const float *weight, float *scratch) {
    const ConvGeom g = conv_geom(L);
    const bool pw = conv_pointwise(L);
    const size_t in_sz = (size_t)L->in_c * L->win.in_h * L->win.in_w;
    const size_t out_sz = (size_t)L->out_c * g.P;
    float *xp = scratch, *col = pw ? NULL : scratch + round16(g.plane);
    for (int b = 0; b < L->n; b++) {
        const float *dyb = dy + (size_t)b * out_sz;
        if (dbias)
            for (int o = 0; o < L->out_c; o++) {
                const float *r = dyb + (size_t)o * g.P;
                double s = 0;
                for (int p = 0; p < g.P; p++) s += r[p];
                dbias[o] += (float)s;
            }
        if (dweight) {
            const float *xb = x + (size_t)b * in_sz;
            if (!pw) im2col(L, &g, col, xb, xp);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L->out_c, g.K, g.P, 1.0f, dyb,
                        g.P, pw ? xb : col, g.P, 1.0f, dweight, g.K);
        }
        if (dx) {
            float *dxb = dx + (size_t)b * in_sz;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, g.P, L->out_c, 1.0f, weight,
                        g.K, dyb, g.P, 0.0f, pw ? dxb : col, g.P);
            if (!pw) col2im(L, &g, dxb, col, xp);
        }
    }
}
