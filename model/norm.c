/* batchnorm (inference and training forms) and TF local response norm
 * (see layers.h). Channel statistics are accumulated in double. */
#include "layers.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ batchnorm */

static inline double bn_invstd(double var, float eps) { return 1.0 / sqrt(var + (double)eps); }

/* y = gamma (x - mean) inv + beta over channel c of every item, folded into
 * one multiply-add per value (both forward forms). */
static void normalize_channel(const BatchNorm *L, int c, float *y, const float *x,
                              const float *gamma, const float *beta, double mean, double inv) {
    const size_t hw = (size_t)L->hw;
    double g = gamma ? gamma[c] : 1.0;
    float a = (float)(g * inv), b = (float)((beta ? beta[c] : 0.0) - mean * g * inv);
    for (int n = 0; n < L->n; n++) {
        size_t off = ((size_t)n * L->c + c) * hw;
        const float *xs = x + off;
        float *ys = y + off;
#pragma omp simd
        for (size_t i = 0; i < hw; i++) ys[i] = xs[i] * a + b;
    }
}

void batchnorm_forward(const BatchNorm *L, float *y, const float *x, const float *gamma,
                       const float *beta, const float *mean, const float *var) {
    for (int c = 0; c < L->c; c++)
        normalize_channel(L, c, y, x, gamma, beta, mean[c], bn_invstd(var[c], L->eps));
}

void batchnorm_backward(const BatchNorm *L, float *dx, float *dgamma, float *dbeta,
                        const float *dy, const float *x, const float *gamma, const float *mean,
                        const float *var) {
    const size_t hw = (size_t)L->hw;
    for (int c = 0; c < L->c; c++) {
        double inv = bn_invstd(var[c], L->eps);
        float a = (float)((gamma ? gamma[c] : 1.0) * inv), m = mean[c];
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < L->n; n++) {
            size_t off = ((size_t)n * L->c + c) * hw;
            const float *dys = dy + off;
            if (dgamma) {
                const float *xs = x + off;
                for (size_t i = 0; i < hw; i++) sdyx += (double)dys[i] * (xs[i] - m);
            }
            if (dbeta)
                for (size_t i = 0; i < hw; i++) sdy += dys[i];
            if (dx) {
                float *dxs = dx + off;
#pragma omp simd
                for (size_t i = 0; i < hw; i++) dxs[i] = dys[i] * a;
            }
        }
        if (dgamma) dgamma[c] += (float)(sdyx * inv);
        if (dbeta) dbeta[c] += (float)sdy;
    }
}

void batchnorm_train_forward(const BatchNorm *L, float *y, const float *x, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             float *save_mean, float *save_invstd) {
    const size_t hw = (size_t)L->hw;
    const double count = (double)L->n * (double)hw;
    for (int c = 0; c < L->c; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < L->n; n++) {
            const float *xs = x + ((size_t)n * L->c + c) * hw;
            for (size_t i = 0; i < hw; i++) s += xs[i];
        }
        double mean = s / count;
        for (int n = 0; n < L->n; n++) {
            const float *xs = x + ((size_t)n * L->c + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                double d = xs[i] - mean;
                ss += d * d;
            }
        }
        double var = ss / count, inv = bn_invstd(var, L->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)inv;
        if (running_mean)
            running_mean[c] = (float)((1.0 - L->momentum) * running_mean[c] + L->momentum * mean);
        if (running_var) {
            double unbiased = count > 1 ? ss / (count - 1) : var;
            running_var[c] =
                (float)((1.0 - L->momentum) * running_var[c] + L->momentum * unbiased);
        }
        normalize_channel(L, c, y, x, gamma, beta, mean, inv);
    }
}

void batchnorm_train_backward(const BatchNorm *L, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *gamma,
                              const float *save_mean, const float *save_invstd) {
    const size_t hw = (size_t)L->hw;
    const double count = (double)L->n * (double)hw;
    for (int c = 0; c < L->c; c++) {
        const float m = save_mean[c];
        const double inv = save_invstd[c];
        double sdy = 0, sdyx = 0; /* sum dy, sum dy * xhat */
        for (int n = 0; n < L->n; n++) {
            size_t off = ((size_t)n * L->c + c) * hw;
            const float *xs = x + off, *dys = dy + off;
            for (size_t i = 0; i < hw; i++) {
                sdy += dys[i];
                sdyx += (double)dys[i] * (xs[i] - m);
            }
        }
        sdyx *= inv;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        /* dx = g*inv * (dy - mean(dy) - xhat * mean(dy*xhat)) */
        const double g = gamma ? gamma[c] : 1.0;
        const float a = (float)(g * inv), k1 = (float)(sdy / count),
                    k2 = (float)(sdyx / count * inv);
        for (int n = 0; n < L->n; n++) {
            size_t off = ((size_t)n * L->c + c) * hw;
            const float *xs = x + off, *dys = dy + off;
            float *dxs = dx + off;
#pragma omp simd
            for (size_t i = 0; i < hw; i++) dxs[i] = a * (dys[i] - k1 - (xs[i] - m) * k2);
        }
    }
}

/* ------------------------------------------------- local response norm */

/* s[c] = bias + alpha * sum_{c' in window(c)} x[c']^2 for one example. */
static void lrn_scale(const Lrn *L, float *s, const float *x) {
    const size_t hw = (size_t)L->hw;
    for (int c = 0; c < L->c; c++) {
        float *sc = s + (size_t)c * hw;
        int lo = c - L->radius < 0 ? 0 : c - L->radius;
        int hi = c + L->radius >= L->c ? L->c - 1 : c + L->radius;
        memset(sc, 0, hw * sizeof *sc);
        for (int k = lo; k <= hi; k++) {
            const float *xk = x + (size_t)k * hw;
#pragma omp simd
            for (size_t i = 0; i < hw; i++) sc[i] += xk[i] * xk[i];
        }
#pragma omp simd
        for (size_t i = 0; i < hw; i++) sc[i] = L->bias + L->alpha * sc[i];
    }
}

size_t lrn_scratch_floats(const Lrn *L) { return 2 * (size_t)L->c * (size_t)L->hw; }

void lrn_forward(const Lrn *L, float *y, const float *x) {
    const size_t ex = (size_t)L->c * L->hw;
    for (int n = 0; n < L->n; n++) {
        const float *xn = x + (size_t)n * ex;
        float *yn = y + (size_t)n * ex;
        lrn_scale(L, yn, xn);
        for (size_t i = 0; i < ex; i++) yn[i] = xn[i] * powf(yn[i], -L->beta);
    }
}

/* With s_c as above and y_c = x_c s_c^-beta (windows are symmetric, so
 * j in window(c) iff c in window(j)):
 *   dx_j = dy_j s_j^-beta - 2 alpha beta x_j sum_{c in window(j)} dy_c x_c s_c^(-beta-1) */
void lrn_backward(const Lrn *L, float *dx, const float *dy, const float *x, float *scratch) {
    const size_t hw = (size_t)L->hw, ex = (size_t)L->c * hw;
    float *s = scratch, *t = scratch + ex;
    const float k = -2.0f * L->alpha * L->beta;
    for (int n = 0; n < L->n; n++) {
        const float *xn = x + (size_t)n * ex, *dyn = dy + (size_t)n * ex;
        float *dxn = dx + (size_t)n * ex;
        lrn_scale(L, s, xn);
        for (size_t i = 0; i < ex; i++) {
            float p = powf(s[i], -L->beta); /* s^-beta */
            t[i] = dyn[i] * xn[i] * p / s[i];
            s[i] = p;
        }
        for (int c = 0; c < L->c; c++) {
            int lo = c - L->radius < 0 ? 0 : c - L->radius;
            int hi = c + L->radius >= L->c ? L->c - 1 : c + L->radius;
            float *d = dxn + (size_t)c * hw;
            memset(d, 0, hw * sizeof *d);
            for (int j = lo; j <= hi; j++) {
                const float *tj = t + (size_t)j * hw;
#pragma omp simd
                for (size_t i = 0; i < hw; i++) d[i] += tj[i];
            }
            const float *xc = xn + (size_t)c * hw, *dyc = dyn + (size_t)c * hw,
                        *pc = s + (size_t)c * hw;
#pragma omp simd
            for (size_t i = 0; i < hw; i++) d[i] = dyc[i] * pc[i] + k * xc[i] * d[i];
        }
    }
}
