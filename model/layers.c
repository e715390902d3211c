/* layers: window geometry, relu, linear, dropout, softmax cross-entropy.
 * conv2d is in conv.c, pools in pool.c, batchnorm and LRN in norm.c. */
#include "../core/core.h"
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------- geometry */

int window_size(int in, int k, int s, int pad, int *pad_before) {
    if (in < 1 || k < 1 || s < 1 || pad < PAD_SAME) return 0;
    int total;
    if (pad == PAD_SAME) {
        int out = (in + s - 1) / s;
        total = (out - 1) * s + k - in;
        if (total < 0) total = 0;
        *pad_before = total / 2;
    } else {
        total = 2 * pad;
        *pad_before = pad;
    }
    if (in + total < k) return 0;
    return (in + total - k) / s + 1;
}

int window2d_init(Window2d *w, int in_h, int in_w, int kh, int kw, int sh, int sw, int pad_h,
                  int pad_w) {
    memset(w, 0, sizeof *w);
    w->in_h = in_h, w->in_w = in_w, w->kh = kh, w->kw = kw, w->sh = sh, w->sw = sw;
    w->out_h = window_size(in_h, kh, sh, pad_h, &w->pad_t);
    w->out_w = window_size(in_w, kw, sw, pad_w, &w->pad_l);
    return w->out_h > 0 && w->out_w > 0 ? 0 : -1;
}

static bool dim_valid(int in, int out, int k, int s, int pad) {
    if (in < 1 || out < 1 || k < 1 || s < 1 || pad < 0 || pad >= k) return false;
    /* the last window must start inside the input */
    return (long)(out - 1) * s - pad <= in - 1;
}

bool window2d_valid(const Window2d *w) {
    return dim_valid(w->in_h, w->out_h, w->kh, w->sh, w->pad_t) &&
           dim_valid(w->in_w, w->out_w, w->kw, w->sw, w->pad_l);
}

/* ----------------------------------------------------------------- relu */

/* Multiversioned kernels are static: clang 14 does not export a
 * target_clones function under its plain name. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void relu_kernel(float *y, const float *x, size_t count) {
    /* x > 0 ? x : 0 would turn NaN into 0; PyTorch's relu keeps NaN. */
#pragma omp simd
    for (size_t i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void relu_mask_kernel(float *dx, const float *dy, const float *x, size_t count) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void relu_forward(float *y, const float *x, size_t count) { relu_kernel(y, x, count); }

void relu_backward(float *dx, const float *dy, const float *x, size_t count, ReluBackward mode) {
    if (mode == RELU_BACKWARD_FAKE) {
        if (dx != dy) memmove(dx, dy, count * sizeof *dx);
        return;
    }
    if (mode == RELU_BACKWARD_EXACT) {
        relu_mask_kernel(dx, dy, x, count);
        return;
    }
    for (size_t i = 0; i < count; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : dy[i] < 0.0f ? RELU_REVIVE_SLOPE * dy[i] : 0.0f;
}

/* --------------------------------------------------------------- linear */

typedef enum { LIN_FORWARD, LIN_DX, LIN_DWEIGHT } LinearPart;

typedef struct {
    const Linear *L;
    LinearPart part;
    float *y, *dx, *dw;
    const float *x, *dy, *w, *b;
    int tasks;
    bool skip_zero_rows; /* dx of one example: see linear_dx_skipping */
} LinearJob;

/* Outputs [o0, o1) of y (n rows, out apart). */
static void linear_rows(const LinearJob *j, int o0, int o1) {
    const Linear *L = j->L;
    const float *w = j->w + (size_t)o0 * L->in;
    const float beta = j->b ? 1.0f : 0.0f;
    for (int b = 0; j->b && b < L->n; b++)
        memcpy(j->y + (size_t)b * L->out + o0, j->b + o0, (size_t)(o1 - o0) * sizeof *j->y);
    if (L->n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, o1 - o0, L->in, 1.0f, w, L->in, j->x, 1, beta,
                    j->y + o0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L->n, o1 - o0, L->in, 1.0f, j->x,
                    L->in, w, L->in, beta, j->y + o0, L->out);
}

/* d[i] += sum_k a[k] w[k][i] for four rows of W. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void add_rows4(float *restrict d, const float *const *w, const float *a, int n) {
    const float *restrict w0 = w[0], *restrict w1 = w[1], *restrict w2 = w[2], *restrict w3 = w[3];
#pragma omp simd
    for (int i = 0; i < n; i++) d[i] += a[0] * w0[i] + a[1] * w1[i] + a[2] * w2[i] + a[3] * w3[i];
}

/* Inputs [i0, i1) of dx = dy W for one example, skipping the rows of W
 * whose dy is 0 (exactly: 0 * w adds nothing for finite w). Behind a relu
 * about half are, and CochCNN9's fc weights are 377 MB, read once forward
 * and once here: this halves the second read. Four rows at a time over a
 * chunk of dx that stays in L1. */
#define DX_CHUNK 4096

static void linear_dx_skipping(const LinearJob *j, int i0, int i1) {
    const Linear *L = j->L;
    for (int c0 = i0; c0 < i1; c0 += DX_CHUNK) {
        int n = i1 - c0 < DX_CHUNK ? i1 - c0 : DX_CHUNK, k = 0;
        float *d = j->dx + c0, a[4];
        const float *w[4];
        memset(d, 0, (size_t)n * sizeof *d);
        for (int o = 0; o < L->out; o++) {
            if (j->dy[o] == 0.0f) continue;
            w[k] = j->w + (size_t)o * L->in + c0, a[k] = j->dy[o];
            if (++k == 4) add_rows4(d, w, a, n), k = 0;
        }
        for (int q = 0; q < k; q++)
            for (int i = 0; i < n; i++) d[i] += a[q] * w[q][i];
    }
}

/* Inputs [i0, i1) of dx = dy W. */
static void linear_dx(const LinearJob *j, int i0, int i1) {
    const Linear *L = j->L;
    if (j->skip_zero_rows)
        linear_dx_skipping(j, i0, i1);
    else if (L->n == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, L->out, i1 - i0, 1.0f, j->w + i0, L->in, j->dy, 1,
                    0.0f, j->dx + i0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->n, i1 - i0, L->out, 1.0f,
                    j->dy, L->out, j->w + i0, L->in, 0.0f, j->dx + i0, L->in);
}

/* Rows [o0, o1) of dW += dy^T x. */
static void linear_dweight(const LinearJob *j, int o0, int o1) {
    const Linear *L = j->L;
    float *dw = j->dw + (size_t)o0 * L->in;
    if (L->n == 1)
        cblas_sger(CblasRowMajor, o1 - o0, L->in, 1.0f, j->dy + o0, 1, j->x, 1, dw, L->in);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, L->in, L->n, 1.0f,
                    j->dy + o0, L->out, j->x, L->in, 1.0f, dw, L->in);
}

static void linear_task(void *ctx, int t, int worker) {
    (void)worker;
    const LinearJob *j = ctx;
    int lo, hi;
    layers_split_range(j->part == LIN_DX ? j->L->in : j->L->out, 64, j->tasks, t, &lo, &hi);
    if (lo >= hi) return;
    if (j->part == LIN_FORWARD) linear_rows(j, lo, hi);
    if (j->part == LIN_DX) linear_dx(j, lo, hi);
    if (j->part == LIN_DWEIGHT) linear_dweight(j, lo, hi);
}

static int linear_tasks(const Linear *L) {
    return layers_tasks(L->pool, (double)L->n * L->in * L->out);
}

void linear_forward(const Linear *L, float *y, const float *x, const float *weight,
                    const float *bias) {
    LinearJob j = {.L = L, .part = LIN_FORWARD, .y = y, .x = x, .w = weight, .b = bias,
                   .tasks = linear_tasks(L)};
    pool_run(L->pool, linear_task, &j, j.tasks);
}

void linear_backward(const Linear *L, float *dx, float *dweight, float *dbias, const float *dy,
                     const float *x, const float *weight) {
    LinearJob j = {.L = L, .dx = dx, .dw = dweight, .x = x, .dy = dy, .w = weight,
                   .tasks = linear_tasks(L)};
    /* Worth it for a large layer with at least 1/8 of dy zero (a relu's). */
    int zeros = 0;
    for (int o = 0; L->n == 1 && o < L->out; o++) zeros += dy[o] == 0.0f;
    j.skip_zero_rows = L->n == 1 && (double)L->in * L->out >= 4194304.0 && zeros >= L->out / 8;
    if (dx) j.part = LIN_DX, pool_run(L->pool, linear_task, &j, j.tasks);
    if (dweight) j.part = LIN_DWEIGHT, pool_run(L->pool, linear_task, &j, j.tasks);
    if (dbias)
        for (int o = 0; o < L->out; o++) {
            double s = 0;
            for (int b = 0; b < L->n; b++) s += dy[(size_t)b * L->out + o];
            dbias[o] += (float)s;
        }
}

/* -------------------------------------------------------------- dropout */

/* Element i's random bits: the i-th output of splitmix64 seeded with seed
 * (a counter-based generator: any element, any order, same answer). */
static inline uint64_t mix64(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Keep iff the top 24 bits, as u in [0, 1), satisfy u >= p. */
static void dropout_apply(const Dropout *L, float *y, const float *x, uint64_t seed) {
    if (L->p <= 0.0f) {
        if (y != x) memmove(y, x, L->count * sizeof *y);
        return;
    }
    const uint32_t thresh = L->p >= 1.0f ? (1u << 24) : (uint32_t)ceil((double)L->p * 16777216.0);
    const float scale = L->p >= 1.0f ? 0.0f : (float)(1.0 / (1.0 - (double)L->p));
    for (size_t i = 0; i < L->count; i++) {
        uint32_t u = (uint32_t)(mix64(seed, i) >> 40);
        y[i] = u >= thresh ? x[i] * scale : 0.0f;
    }
}

void dropout_forward(const Dropout *L, float *y, const float *x, uint64_t seed) {
    dropout_apply(L, y, x, seed);
}

void dropout_backward(const Dropout *L, float *dx, const float *dy, uint64_t seed) {
    dropout_apply(L, dx, dy, seed);
}

/* ------------------------------------------------ softmax cross-entropy */

static double row_logsumexp(const float *z, int k) {
    float m = z[0];
    for (int j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
    double s = 0;
    for (int j = 0; j < k; j++) s += exp((double)z[j] - m);
    return m + log(s);
}

static int count_labelled(const SoftmaxXent *L, const int32_t *labels) {
    int n = 0;
    for (int b = 0; b < L->n; b++) n += labels[b] >= 0;
    return n;
}

float softmax_xent_forward(const SoftmaxXent *L, const float *logits, const int32_t *labels) {
    int n = count_labelled(L, labels);
    if (n == 0) return 0.0f;
    double loss = 0;
    for (int b = 0; b < L->n; b++) {
        if (labels[b] < 0) continue;
        const float *z = logits + (size_t)b * L->classes;
        loss += row_logsumexp(z, L->classes) - z[labels[b]];
    }
    return (float)(loss / n);
}

void softmax_xent_backward(const SoftmaxXent *L, float *dlogits, const float *logits,
                           const int32_t *labels, float dloss) {
    int n = count_labelled(L, labels);
    for (int b = 0; b < L->n; b++) {
        const float *z = logits + (size_t)b * L->classes;
        float *d = dlogits + (size_t)b * L->classes;
        if (labels[b] < 0) {
            memset(d, 0, (size_t)L->classes * sizeof *d);
            continue;
        }
        double lse = row_logsumexp(z, L->classes), scale = (double)dloss / n;
        for (int j = 0; j < L->classes; j++)
            d[j] = (float)(scale * (exp((double)z[j] - lse) - (j == labels[b])));
    }
}

/* -------------------------------------------------------------- helpers */

int layers_workers(const Pool *pool) {
    int n = pool_size(pool);
    return n > 1 && openblas_get_num_threads() == 1 ? n : 1;
}

int layers_tasks(const Pool *pool, double work) {
    int n = layers_workers(pool);
    double shares = work / 4194304.0;
    return shares >= n ? n : shares >= 1 ? (int)shares : 1;
}

void layers_split_range(int n, int align, int tasks, int t, int *lo, int *hi) {
    int units = (n + align - 1) / align;
    *lo = (int)((long)units * t / tasks) * align;
    *hi = (int)((long)units * (t + 1) / tasks) * align;
    *lo = *lo < n ? *lo : n;
    *hi = *hi < n ? *hi : n;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void deinterleave2(float *restrict a, float *restrict b, const float *restrict s, int n) {
#pragma omp simd
    for (int j = 0; j < n; j++) {
        a[j] = s[2 * j];
        b[j] = s[2 * j + 1];
    }
}

/* first j >= 0 with first + q + j*sw >= 0, and first j with it >= n */
static int phase_lo(int first, int q, int sw) {
    int c = first + q;
    return c >= 0 ? 0 : (-c + sw - 1) / sw;
}
static int phase_hi(int first, int q, int sw, int n) {
    int c = n - (first + q);
    return c <= 0 ? 0 : (c + sw - 1) / sw;
}

void layers_split_phases(float *d, const float *row, int n, int first, int sw, int wq, float pad) {
    int lo[2], hi[2];
    for (int q = 0; q < sw; q++) {
        int jlo = phase_lo(first, q, sw), jhi = phase_hi(first, q, sw, n);
        jhi = jhi < wq ? jhi : wq;
        jlo = jlo < jhi ? jlo : jhi;
        if (sw == 2) lo[q] = jlo, hi[q] = jhi;
        float *dq = d + (size_t)q * wq;
        for (int j = 0; j < jlo; j++) dq[j] = pad;
        for (int j = jhi; j < wq; j++) dq[j] = pad;
        if (sw == 1)
            memcpy(dq + jlo, row + first + jlo, (size_t)(jhi - jlo) * sizeof *dq);
        else if (sw != 2)
            for (int j = jlo; j < jhi; j++) dq[j] = row[first + q + j * sw];
    }
    if (sw != 2) return;
    /* both phases inside for j in [a, b): one vectorized pass, edges scalar */
    int a = lo[0] > lo[1] ? lo[0] : lo[1], b = hi[0] < hi[1] ? hi[0] : hi[1];
    if (b < a) b = a;
    for (int q = 0; q < 2; q++) {
        for (int j = lo[q]; j < hi[q] && j < a; j++) d[(size_t)q * wq + j] = row[first + q + 2 * j];
        for (int j = b > lo[q] ? b : lo[q]; j < hi[q]; j++)
            d[(size_t)q * wq + j] = row[first + q + 2 * j];
    }
    deinterleave2(d + a, d + wq + a, row + first + 2 * a, b - a);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void add_kernel(float *dst, const float *src, size_t count) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) dst[i] += src[i];
}

void layers_add(float *dst, const float *src, size_t count) { add_kernel(dst, src, count); }
