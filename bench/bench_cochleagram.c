/* cochleagram_1 forward + backward per 2 s clip: the optimized front end
 * (sparse filters, vectorized downsampling, pool over channels) against a
 * plain dense reference written the obvious way (every filter multiplied over
 * all bins, scalar downsampling loops, one thread; same FFTW plans quality),
 * which also cross-checks the optimized output. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "bench.h"

#define RUNS 20

/* ------------------------------------------------- dense reference version */

typedef struct {
    int N, nb, C, T, hop, W;
    float *H;   /* C x nb dense filter responses */
    float *win; /* W */
    FrontEndConfig cfg;
    fftwf_plan r2c, c2r, ifft, fft;
    fftwf_complex *X, *Y, *z; /* nb, N, C x N */
    float *env, *u, *denv;    /* N, C x T, N */
    fftwf_complex *gz, *gy, *gx;
    float *xbuf;
} Dense;

static double erb(double f) { return 9.265 * log(1 + f / (24.7 * 9.265)); }
static double erb_inv(double e) { return 24.7 * 9.265 * (exp(e / 9.265) - 1); }

/* pycochleagram's ERB half-cosine bank, written out densely. */
static void dense_filters(Dense *d) {
    const FrontEndConfig *c = &d->cfg;
    int sf = c->sample_factor, nf = sf * (c->n + 1) - 1;
    double maxf = d->N % 2 ? c->sr * (d->N - 1) / 2.0 / d->N : c->sr / 2.0;
    double lo = erb(c->low_lim), hi = erb(c->high_lim), sp = (hi - lo) / (nf + 1);
    d->C = nf + 2 * sf;
    d->H = calloc((size_t)d->C * d->nb, sizeof(float));
    for (int k = 0; k < d->nb; k++) {
        double f = k == d->nb - 1 ? maxf : k * (maxf / (d->nb - 1)), e = erb(f);
        double bp[nf];
        for (int i = 0; i < nf; i++) {
            double cf = lo + (i + 1) * sp, l = cf - sf * sp, h = cf + sf * sp;
            bp[i] = e > l && e < h ? cos((e - (l + h) / 2) / (h - l) * M_PI) : 0;
            d->H[(size_t)(sf + i) * d->nb + k] = (float)(bp[i] / sqrt(sf));
        }
        for (int i = 0; i < sf; i++) {
            if (f < erb_inv(lo + (i + 1) * sp))
                d->H[(size_t)i * d->nb + k] = (float)(sqrt(1 - bp[i] * bp[i]) / sqrt(sf));
            if (f > erb_inv(lo + (nf - i) * sp))
                d->H[(size_t)(d->C - 1 - i) * d->nb + k] =
                    (float)(sqrt(1 - bp[nf - 1 - i] * bp[nf - 1 - i]) / sqrt(sf));
        }
    }
}

static double i0(double x) {
    double s = 1, t = 1;
    for (int k = 1; k < 200; k++)
        s += t *= x * x / 4 / ((double)k * k);
    return s;
}

static Dense *dense_create(const FrontEndConfig *cfg) {
    Dense *d = calloc(1, sizeof *d);
    d->cfg = *cfg;
    d->N = cfg->signal_size, d->nb = d->N / 2 + 1, d->hop = cfg->sr / cfg->env_sr;
    d->W = cfg->window_size, d->T = (d->N - d->W) / d->hop + 1;
    dense_filters(d);
    d->win = malloc(sizeof(float) * (size_t)d->W);
    for (int j = 0; j < d->W; j++) {
        double a = (d->W - 1) / 2.0, r = (j - a) / a, t = (-d->W / 2.0 + j) / d->hop;
        double s = t == 0 ? 1 : sin(M_PI * t) / (M_PI * t);
        d->win[j] =
            (float)(i0(cfg->kaiser_beta * sqrt(1 - r * r)) / i0(cfg->kaiser_beta) * s / d->hop);
    }
    size_t N = (size_t)d->N;
    d->X = fftwf_malloc(sizeof(fftwf_complex) * d->nb);
    d->Y = fftwf_malloc(sizeof(fftwf_complex) * N);
    d->z = fftwf_malloc(sizeof(fftwf_complex) * N * d->C);
    d->gz = fftwf_malloc(sizeof(fftwf_complex) * N);
    d->gy = fftwf_malloc(sizeof(fftwf_complex) * N);
    d->gx = fftwf_malloc(sizeof(fftwf_complex) * d->nb);
    d->xbuf = fftwf_malloc(sizeof(float) * N);
    d->env = malloc(sizeof(float) * N), d->denv = malloc(sizeof(float) * N);
    d->u = malloc(sizeof(float) * (size_t)d->C * d->T);
    d->r2c = fftwf_plan_dft_r2c_1d(d->N, d->xbuf, d->X, FFTW_MEASURE);
    d->c2r = fftwf_plan_dft_c2r_1d(d->N, d->gx, d->xbuf, FFTW_MEASURE);
    d->ifft = fftwf_plan_dft_1d(d->N, d->Y, d->gz, FFTW_BACKWARD, FFTW_MEASURE);
    d->fft = fftwf_plan_dft_1d(d->N, d->gz, d->gy, FFTW_FORWARD, FFTW_MEASURE);
    return d;
}

static void dense_free(Dense *d) {
    fftwf_destroy_plan(d->r2c), fftwf_destroy_plan(d->c2r);
    fftwf_destroy_plan(d->ifft), fftwf_destroy_plan(d->fft);
    fftwf_free(d->X), fftwf_free(d->Y), fftwf_free(d->z), fftwf_free(d->gz);
    fftwf_free(d->gy), fftwf_free(d->gx), fftwf_free(d->xbuf);
    free(d->H), free(d->win), free(d->env), free(d->denv), free(d->u), free(d);
}

static void dense_forward(Dense *d, const float *wave, float *out) {
    int N = d->N;
    memcpy(d->xbuf, wave, sizeof(float) * N);
    fftwf_execute(d->r2c);
    for (int c = 0; c < d->C; c++) {
        const float *h = d->H + (size_t)c * d->nb;
        fftwf_complex *z = d->z + (size_t)c * N;
        for (int k = 0; k < N; k++) {
            bool pos = k < d->nb;
            d->Y[k][0] = pos ? d->X[k][0] * h[k] / N : 0;
            d->Y[k][1] = pos ? d->X[k][1] * h[k] / N : 0;
        }
        fftwf_execute_dft(d->ifft, d->Y, z);
        for (int n = 0; n < N; n++)
            d->env[n] = sqrtf(fmaxf(z[n][0] * z[n][0] + z[n][1] * z[n][1], 1e-16f));
        for (int t = 0; t < d->T; t++) {
            float acc = 0;
            for (int j = 0; j < d->W; j++)
                acc += d->win[j] * d->env[t * d->hop + j];
            float u = (float)d->cfg.comp_scale * (fmaxf(acc, 0) + (float)d->cfg.comp_offset);
            d->u[c * d->T + t] = u;
            out[c * d->T + t] = powf(u, (float)d->cfg.comp_power);
        }
    }
}

static void dense_backward(Dense *d, const float *dy, float *dx) {
    int N = d->N;
    float p = (float)d->cfg.comp_power, clip = (float)d->cfg.comp_clip;
    memset(d->gx, 0, sizeof(fftwf_complex) * d->nb);
    for (int c = 0; c < d->C; c++) {
        const fftwf_complex *z = d->z + (size_t)c * N;
        memset(d->denv, 0, sizeof(float) * N);
        for (int t = 0; t < d->T; t++) {
            float s = fminf(fmaxf(p * powf(d->u[c * d->T + t], p - 1), -clip), clip);
            float g = dy[c * d->T + t] * s * (float)d->cfg.comp_scale;
            for (int j = 0; j < d->W; j++)
                d->denv[t * d->hop + j] += d->win[j] * g;
        }
        for (int n = 0; n < N; n++) {
            float q = z[n][0] * z[n][0] + z[n][1] * z[n][1];
            float f = q >= 1e-16f ? d->denv[n] / sqrtf(q) : 0;
            d->gz[n][0] = f * z[n][0], d->gz[n][1] = f * z[n][1];
        }
        fftwf_execute_dft(d->fft, d->gz, d->gy);
        const float *h = d->H + (size_t)c * d->nb;
        for (int k = 0; k < d->nb; k++) {
            d->gx[k][0] += h[k] * d->gy[k][0] / N;
            d->gx[k][1] += h[k] * d->gy[k][1] / N;
        }
    }
    for (int k = 0; k < d->nb; k++) {
        bool edge = k == 0 || (N % 2 == 0 && k == d->nb - 1);
        d->gx[k][0] *= edge ? 1 : 0.5f;
        d->gx[k][1] = edge ? 0 : 0.5f * d->gx[k][1];
    }
    fftwf_execute(d->c2r);
    memcpy(dx, d->xbuf, sizeof(float) * N);
}

/* ------------------------------------------------------------- benches */

static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static double time_optimized(const Cochleagram *c, int threads, const float *wave, const float *cot,
                             float *out, float *grad) {
    Pool *pool = pool_create(threads);
    CochleagramWork *w = cochleagram_work_create(c, pool_size(pool));
    double s[RUNS];
    for (int r = -3; r < RUNS; r++) { /* 3 warm-up runs */
        double t0 = now_seconds();
        cochleagram_forward(c, w, pool, wave, out);
        cochleagram_backward(c, w, pool, cot, grad);
        if (r >= 0) s[r] = now_seconds() - t0;
    }
    cochleagram_work_free(w);
    pool_free(pool);
    return bench_median(s, RUNS);
}

BENCH(cochleagram_1_forward_backward) {
    Error err = {{0}};
    FrontEndConfig cfg;
    if (front_end_config_preset("cochleagram_1", &cfg, &err) != 0) {
        printf("  %s\n", err.msg);
        return;
    }
    double t0 = now_seconds();
    Cochleagram *c = cochleagram_create(&cfg, &err);
    if (!c) {
        printf("  %s\n", err.msg);
        return;
    }
    bench_report("cochleagram_create (filters + FFTW_MEASURE plans)", 1e3 * (now_seconds() - t0),
                 "ms", "first in process");
    size_t N = (size_t)cochleagram_samples(c);
    size_t n_out = (size_t)cochleagram_channels(c) * cochleagram_frames(c);
    Rng rng;
    rng_seed(&rng, 1);
    float *wave = alloc_floats(N), *cot = alloc_floats(n_out);
    for (size_t i = 0; i < N; i++)
        wave[i] = (float)(0.05 * rng_normal(&rng));
    for (size_t i = 0; i < n_out; i++)
        cot[i] = (float)rng_normal(&rng);
    float *out = alloc_floats(n_out), *grad = alloc_floats(N);
    float *rout = alloc_floats(n_out), *rgrad = alloc_floats(N);

    int nt = default_thread_count();
    char note[128];
    double t_n = time_optimized(c, nt, wave, cot, out, grad);
    snprintf(note, sizeof note, "median of %d, pool of %d", RUNS, nt);
    bench_report("optimized fwd+bwd, 2 s clip", 1e3 * t_n, "ms", note);
    double t_1 = time_optimized(c, 1, wave, cot, out, grad);
    bench_report("optimized fwd+bwd, 2 s clip", 1e3 * t_1, "ms", "pool of 1");

    Dense *d = dense_create(&cfg);
    double s[5];
    for (int r = -1; r < 5; r++) {
        double t1 = now_seconds();
        dense_forward(d, wave, rout);
        dense_backward(d, cot, rgrad);
        if (r >= 0) s[r] = now_seconds() - t1;
    }
    double t_ref = bench_median(s, 5);
    bench_report("dense reference fwd+bwd, 2 s clip", 1e3 * t_ref, "ms", "median of 5, 1 thread");
    snprintf(note, sizeof note, "pool of %d (%.1f with 1 worker)", nt, t_ref / t_1);
    bench_report("ratio = reference / optimized", t_ref / t_n, "x", note);
    snprintf(note, sizeof note, "gradient %.2g ppm", 1e6 * rel_diff(grad, rgrad, N));
    bench_report("optimized vs reference rel. L2: cochleagram", 1e6 * rel_diff(out, rout, n_out),
                 "ppm", note);
    dense_free(d);
    free(wave), free(cot), free(out), free(grad), free(rout), free(rgrad);
    cochleagram_free(c);
}

/* The reduced-rate envelope surrogate (`metamers synth --envelope reduced`)
 * against the exact front end in the same run: fwd+bwd time on one thread,
 * and its output and gradient error, for the default model's front end and
 * cochleagram_1. Input: white noise (the metamers' starting point). */
BENCH(cochleagram_reduced_envelope) {
    const char *presets[] = {"default", "cochleagram_1"};
    for (int p = 0; p < 2; p++) {
        Error err = {{0}};
        FrontEndConfig cfg;
        if (front_end_config_preset(presets[p], &cfg, &err) != 0) {
            printf("  %s\n", err.msg);
            return;
        }
        Cochleagram *ex = cochleagram_create(&cfg, &err), *re = cochleagram_create_reduced(&cfg, COCHLEAGRAM_REDUCED_OVERSAMPLE, &err);
        if (!ex || !re) {
            printf("  %s\n", err.msg);
            cochleagram_free(ex);
            return;
        }
        size_t N = (size_t)cochleagram_samples(ex);
        size_t n_out = (size_t)cochleagram_channels(ex) * cochleagram_frames(ex);
        Rng rng;
        rng_seed(&rng, 1);
        float *wave = alloc_floats(N), *cot = alloc_floats(n_out);
        for (size_t i = 0; i < N; i++) wave[i] = (float)(0.05 * rng_normal(&rng));
        for (size_t i = 0; i < n_out; i++) cot[i] = (float)rng_normal(&rng);
        float *out = alloc_floats(n_out), *grad = alloc_floats(N);
        float *rout = alloc_floats(n_out), *rgrad = alloc_floats(N);
        double t_ex = time_optimized(ex, 1, wave, cot, out, grad);
        double t_re = time_optimized(re, 1, wave, cot, rout, rgrad);
        char what[120], note[160];
        snprintf(what, sizeof what, "%s: reduced envelope fwd+bwd, 1 thread", presets[p]);
        snprintf(note, sizeof note, "exact %.2f ms in the same run; %d of %zu envelope samples",
                 1e3 * t_ex, cochleagram_envelope_samples(re), (size_t)cochleagram_channels(ex) * N);
        bench_report(what, 1e3 * t_re, "ms", note);
        snprintf(what, sizeof what, "%s: ratio = exact / reduced", presets[p]);
        bench_report(what, t_ex / t_re, "x", NULL);
        snprintf(what, sizeof what, "%s: reduced vs exact rel. L2: cochleagram", presets[p]);
        snprintf(note, sizeof note, "gradient %.3g ppm", 1e6 * rel_diff(rgrad, grad, N));
        bench_report(what, 1e6 * rel_diff(rout, out, n_out), "ppm", note);
        free(wave), free(cot), free(out), free(grad), free(rout), free(rgrad);
        cochleagram_free(ex);
        cochleagram_free(re);
    }
}
