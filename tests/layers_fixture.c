/* Helpers of the layer tests (layers_fixture.h). */
#include <stdlib.h>
#include <string.h>

#include "layers_fixture.h"

float *rnd(Rng *r, size_t n, float lo, float hi) {
    float *p = alloc_floats(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rng_uniform(r);
    return p;
}

float *zeros(size_t n) {
    float *p = alloc_floats(n ? n : 1);
    memset(p, 0, (n ? n : 1) * sizeof *p);
    return p;
}

float *exact(size_t n) { return xmalloc((n ? n : 1) * sizeof(float)); }

double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

void fd_check(TestCtx *t, LossFn f, void *ctx, float *v, size_t n, const float *analytic,
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
