/* maxpool2d and avgpool2d (see layers.h). Windows are clipped to the input:
 * for max, -inf padding never wins, so skipping it is exact; for average,
 * zero padding adds nothing to the sum and the divisor is always kh*kw
 * (count_include_pad=true). */
#include "layers.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct {
    int hs, he, ws, we; /* clipped window [hs, he) x [ws, we) */
} Span;

static inline Span window_span(const Window2d *w, int oh, int ow) {
    Span s;
    int h0 = oh * w->sh - w->pad_t, w0 = ow * w->sw - w->pad_l;
    s.hs = h0 > 0 ? h0 : 0;
    s.he = h0 + w->kh < w->in_h ? h0 + w->kh : w->in_h;
    s.ws = w0 > 0 ? w0 : 0;
    s.we = w0 + w->kw < w->in_w ? w0 + w->kw : w->in_w;
    return s;
}

size_t maxpool2d_index_count(const Pool2d *L) {
    return (size_t)L->n * L->c * L->win.out_h * L->win.out_w;
}

/* Max and argmax of one window; PyTorch's rule: a later element wins only if
 * strictly greater, or NaN. */
static inline int32_t window_argmax(const float *x, int in_w, Span s, float *maxval) {
    float m = -INFINITY;
    int32_t idx = s.hs * in_w + s.ws;
    for (int h = s.hs; h < s.he; h++) {
        const float *row = x + (size_t)h * in_w;
        for (int w = s.ws; w < s.we; w++) {
            float v = row[w];
            bool take = v > m || isnan(v);
            m = take ? v : m;
            idx = take ? h * in_w + w : idx;
        }
    }
    *maxval = m;
    return idx;
}

/* Vectorized path. Outputs are processed in chunks of R output rows x n
 * outputs (whole rows when they fit). For each chunk, every input row a
 * window row reads is split into its sw phases (padding = -inf) in buf, so
 * tap (ki, kj) of all outputs of an output row is one contiguous run. Taps
 * are applied in row-major window order, exactly as window_argmax scans, so
 * the result (ties, NaN) is the same. */
#define MP_BUF 4096  /* floats of split rows per chunk (on the stack) */
#define MP_CHUNK 256 /* outputs per chunk */

/* One tap for R x n outputs: m, id are [R][n]; row r reads v + r*vstride
 * and its element o has input index base + r*bstride + o*sw. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void max_tap(int R, int n, const float *restrict v, size_t vstride, int32_t base,
                    int32_t bstride, int sw, float *restrict m, int32_t *restrict id) {
    for (int r = 0; r < R; r++) {
        const float *vr = v + (size_t)r * vstride;
        float *mr = m + (size_t)r * n;
        int32_t *ir = id + (size_t)r * n, b = base + r * bstride;
#pragma omp simd
        for (int o = 0; o < n; o++) {
            bool take = (vr[o] > mr[o]) | (vr[o] != vr[o]); /* no branch */
            mr[o] = take ? vr[o] : mr[o];
            ir[o] = take ? b + o * sw : ir[o];
        }
    }
}

static void maxpool_chunk(const Window2d *w, const float *x, int oh0, int R, int ow0, int n,
                          float *restrict m, int32_t *restrict id, float *restrict buf) {
    const int sw = w->sw, kh = w->kh, kw = w->kw, in_w = w->in_w;
    const int wq = n + (kw - 1) / sw, c0 = ow0 * sw - w->pad_l;
    const size_t row_len = (size_t)sw * wq;
    for (int r = 0; r < R; r++) {
        int h0 = (oh0 + r) * w->sh - w->pad_t, hs = h0 > 0 ? h0 : 0;
        for (int o = 0; o < n; o++) {
            int ws = c0 + o * sw;
            m[r * n + o] = -INFINITY;
            id[r * n + o] = hs * in_w + (ws > 0 ? ws : 0);
        }
        for (int ki = 0; ki < kh; ki++) {
            int h = h0 + ki;
            float *d = buf + (size_t)(r * kh + ki) * row_len;
            if (h < 0 || h >= w->in_h) {
                for (size_t j = 0; j < row_len; j++) d[j] = -INFINITY;
                continue;
            }
            layers_split_phases(d, x + (size_t)h * in_w, in_w, c0, sw, wq, -INFINITY);
        }
    }
    const int32_t h00 = oh0 * w->sh - w->pad_t;
    for (int ki = 0; ki < kh; ki++)
        for (int kj = 0; kj < kw; kj++)
            max_tap(R, n, buf + ki * row_len + (size_t)(kj % sw) * wq + kj / sw, kh * row_len,
                    (h00 + ki) * in_w + c0 + kj, w->sh * in_w, sw, m, id);
}

/* Max pooling of one plane; writes y and/or argmax, or (dx != NULL) adds dy
 * to dx at the argmax. */
static void maxpool_plane(const Window2d *w, const float *x, float *y, int32_t *am, float *dx,
                          const float *dy) {
    float buf[MP_BUF], m[MP_CHUNK];
    int32_t id[MP_CHUNK];
    const int kh = w->kh, sw = w->sw, extra = (w->kw - 1) / sw;
    /* chunk shape: whole rows if possible, else n outputs of one row */
    int n = w->out_w, R;
    if (n <= MP_CHUNK && (long)kh * sw * (n + extra) <= MP_BUF) {
        R = MP_CHUNK / n;
        int rb = MP_BUF / (kh * sw * (n + extra));
        R = R < rb ? R : rb;
    } else {
        R = 1;
        n = MP_BUF / (kh * sw) - extra;
        n = n < MP_CHUNK ? n : MP_CHUNK;
    }
    for (int oh0 = 0; oh0 < w->out_h; oh0 += R) {
        int rows = w->out_h - oh0 < R ? w->out_h - oh0 : R;
        for (int ow0 = 0; ow0 < w->out_w; ow0 += n > 0 ? n : 1) {
            int cnt = n > 0 && w->out_w - ow0 > n ? n : w->out_w - ow0;
            if (n > 0) {
                maxpool_chunk(w, x, oh0, rows, ow0, cnt, m, id, buf);
            } else { /* window too large for buf: one output at a time */
                cnt = 1;
                id[0] = window_argmax(x, w->in_w, window_span(w, oh0, ow0), &m[0]);
            }
            for (int r = 0; r < rows; r++) {
                size_t o = (size_t)(oh0 + r) * w->out_w + ow0;
                const float *mr = m + (size_t)r * cnt;
                const int32_t *ir = id + (size_t)r * cnt;
                if (y) memcpy(y + o, mr, (size_t)cnt * sizeof *y);
                if (am) memcpy(am + o, ir, (size_t)cnt * sizeof *am);
                if (dx)
                    for (int k = 0; k < cnt; k++) dx[ir[k]] += dy[o + k];
            }
        }
    }
}

void maxpool2d_forward(const Pool2d *L, float *y, int32_t *argmax, const float *x) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, out_plane = (size_t)w->out_h * w->out_w;
    const size_t planes = (size_t)L->n * L->c;
    for (size_t pl = 0; pl < planes; pl++)
        maxpool_plane(w, x + pl * in_plane, y + pl * out_plane,
                      argmax ? argmax + pl * out_plane : NULL, NULL, NULL);
}

void maxpool2d_backward(const Pool2d *L, float *dx, const float *dy, const int32_t *argmax,
                        const float *x) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, out_plane = (size_t)w->out_h * w->out_w;
    const size_t planes = (size_t)L->n * L->c;
    memset(dx, 0, planes * in_plane * sizeof *dx);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dxp = dx + pl * in_plane;
        const float *dyp = dy + pl * out_plane;
        if (argmax) {
            const int32_t *ap = argmax + pl * out_plane;
            for (size_t o = 0; o < out_plane; o++) dxp[ap[o]] += dyp[o];
        } else {
            maxpool_plane(w, x + pl * in_plane, NULL, NULL, dxp, dyp);
        }
    }
}

void avgpool2d_forward(const Pool2d *L, float *y, const float *x) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, out_plane = (size_t)w->out_h * w->out_w;
    const size_t planes = (size_t)L->n * L->c;
    const float inv = 1.0f / (float)(w->kh * w->kw);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * in_plane;
        float *yp = y + pl * out_plane;
        for (int oh = 0; oh < w->out_h; oh++)
            for (int ow = 0; ow < w->out_w; ow++) {
                Span s = window_span(w, oh, ow);
                float sum = 0;
                for (int h = s.hs; h < s.he; h++)
                    for (int c = s.ws; c < s.we; c++) sum += xp[(size_t)h * w->in_w + c];
                yp[oh * w->out_w + ow] = sum * inv;
            }
    }
}

void avgpool2d_backward(const Pool2d *L, float *dx, const float *dy) {
    const Window2d *w = &L->win;
    const size_t in_plane = (size_t)w->in_h * w->in_w, out_plane = (size_t)w->out_h * w->out_w;
    const size_t planes = (size_t)L->n * L->c;
    const float inv = 1.0f / (float)(w->kh * w->kw);
    memset(dx, 0, planes * in_plane * sizeof *dx);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dxp = dx + pl * in_plane;
        const float *dyp = dy + pl * out_plane;
        for (int oh = 0; oh < w->out_h; oh++)
            for (int ow = 0; ow < w->out_w; ow++) {
                Span s = window_span(w, oh, ow);
                float g = dyp[oh * w->out_w + ow] * inv;
                for (int h = s.hs; h < s.he; h++)
                    for (int c = s.ws; c < s.we; c++) dxp[(size_t)h * w->in_w + c] += g;
            }
    }
}
