/* The differentiable cochleagram (chcochleagram semantics, float32 hot path).
 *
 * Forward, per clip:
 *   X = rfft(wave)                                    (double precision, see below)
 *   per channel c (in parallel over the pool):
 *     z_c = ifft(zero-padded X * H_c)                 (complex, N samples)
 *     env_c = sqrt(max(|z_c|^2, 1e-16))
 *     d_c[t] = sum_j win[j] env_c[t*hop + j]          (sinc-Kaiser, no padding)
 *     u = scale*(relu(d) + offset);  out = u^power
 * Backward is the exact transpose of each step; the compression uses the
 * clipped gradient clamp(power*u^(power-1), +-clip) and relu passes the
 * gradient unchanged (chcochleagram's FakeReLU).
 *
 * Speed: each filter is nonzero on a short run of bins, so only those bins
 * are touched; the 1/N of the inverse FFT is folded into the stored filter
 * values (it appears identically in forward and backward); one FFTW plan
 * (complex, 1 x MEASURE) serves both directions. Per channel the work is one
 * N-point complex FFT each way; everything else is vectorized and small.
 *
 * Precision: X is computed in double because a float32 rfft spreads
 * eps*||x|| of noise over every bin, which swamps quiet channels (e.g. the
 * channels above a chirp's range, whose envelopes sit at the 1e-8 floor
 * where the backward pass is most sensitive). After that, float32 rounding
 * is relative to each channel's own spectrum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cochleagram_internal.h"

/* ------------------------------------------------------------ hot kernels */

/* The envelope kernels need a vector square root. With -fmath-errno (the
 * compilers' default; the Makefile passes -fno-math-errno, other builds may
 * not) neither GCC nor clang vectorizes sqrtf, so they are written
 * with intrinsics for AVX-512 and AVX2 (picked at run time) beside a scalar
 * version that gives the same bits (no FMA contraction anywhere: ISO C mode
 * does not contract, and the vector code multiplies and adds separately). */

/* env[n] = sqrt(max(|z[n]|^2, floor)). */
static void envelope_scalar(const float *restrict z, float *restrict env, int n) {
    for (int i = 0; i < n; i++) {
        float p = z[2 * i] * z[2 * i] + z[2 * i + 1] * z[2 * i + 1];
        env[i] = sqrtf(p > ENV_FLOOR ? p : ENV_FLOOR);
    }
}

/* conj(d_env * z/|z|), zero where the |z|^2 clamp was active (the clamp's
 * gradient is zero there). Conjugated because backward runs the inverse-FFT
 * plan: FFT(g) = conj(IFFT_unnormalized(conj(g))), one plan for both. */
static void envelope_backward_scalar(const float *restrict z, const float *restrict d_env,
                                     float *restrict out, int n) {
    for (int i = 0; i < n; i++) {
        float re = z[2 * i], im = z[2 * i + 1];
        float p = re * re + im * im;
        float f = p >= ENV_FLOOR ? d_env[i] / sqrtf(p) : 0.0f;
        out[2 * i] = f * re;
        out[2 * i + 1] = -(f * im);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static void envelope_avx512(const float *restrict z,
                                                               float *restrict env, int n) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 floor = _mm512_set1_ps(ENV_FLOOR);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_loadu_ps(z + 2 * i), b = _mm512_loadu_ps(z + 2 * i + 16);
        __m512 re = _mm512_permutex2var_ps(a, even, b), im = _mm512_permutex2var_ps(a, odd, b);
        __m512 p = _mm512_add_ps(_mm512_mul_ps(re, re), _mm512_mul_ps(im, im));
        _mm512_storeu_ps(env + i, _mm512_sqrt_ps(_mm512_max_ps(p, floor)));
    }
    envelope_scalar(z + 2 * i, env + i, n - i);
}

/* Works on interleaved (re, im) pairs: |z|^2 is formed in both lanes of a
 * pair and d_env is duplicated to match. */
__attribute__((target("avx512f"))) static void envelope_backward_avx512(const float *restrict z,
                                                                        const float *restrict d_env,
                                                                        float *restrict out,
                                                                        int n) {
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512 floor = _mm512_set1_ps(ENV_FLOOR);
    const __m512i conj = _mm512_set4_epi32((int)0x80000000, 0, (int)0x80000000, 0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512 v = _mm512_loadu_ps(z + 2 * i);
        __m512 sq = _mm512_mul_ps(v, v);
        __m512 p = _mm512_add_ps(sq, _mm512_permute_ps(sq, 0xB1));
        __m512 d = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(d_env + i)));
        __mmask16 live = _mm512_cmp_ps_mask(p, floor, _CMP_GE_OQ);
        __m512 f = _mm512_maskz_div_ps(live, d, _mm512_sqrt_ps(p));
        __m512 g = _mm512_mul_ps(f, v);
        _mm512_storeu_ps(out + 2 * i,
                         _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), conj)));
    }
    envelope_backward_scalar(z + 2 * i, d_env + i, out + 2 * i, n - i);
}

__attribute__((target("avx2"))) static void envelope_avx2(const float *restrict z,
                                                          float *restrict env, int n) {
    const __m256 floor = _mm256_set1_ps(ENV_FLOOR);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(z + 2 * i), b = _mm256_loadu_ps(z + 2 * i + 8);
        /* hadd pairs squares per complex value in the order z0 z1 z4 z5 | z2 z3 z6 z7 */
        __m256 p = _mm256_hadd_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
        p = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(p), 0xD8));
        _mm256_storeu_ps(env + i, _mm256_sqrt_ps(_mm256_max_ps(p, floor)));
    }
    envelope_scalar(z + 2 * i, env + i, n - i);
}

__attribute__((target("avx2"))) static void envelope_backward_avx2(const float *restrict z,
                                                                   const float *restrict d_env,
                                                                   float *restrict out, int n) {
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256 floor = _mm256_set1_ps(ENV_FLOOR);
    const __m256 conj = _mm256_castsi256_ps(_mm256_setr_epi32(
        0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000));
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256 v = _mm256_loadu_ps(z + 2 * i);
        __m256 sq = _mm256_mul_ps(v, v);
        __m256 p = _mm256_add_ps(sq, _mm256_permute_ps(sq, 0xB1));
        __m256 d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(d_env + i)), dup);
        __m256 live = _mm256_cmp_ps(p, floor, _CMP_GE_OQ);
        __m256 f = _mm256_and_ps(live, _mm256_div_ps(d, _mm256_sqrt_ps(p)));
        _mm256_storeu_ps(out + 2 * i, _mm256_xor_ps(_mm256_mul_ps(f, v), conj));
    }
    envelope_backward_scalar(z + 2 * i, d_env + i, out + 2 * i, n - i);
}
#endif

/* The widest the CPU has; METAMERS_COCH_KERNELS=scalar|avx2 picks a narrower
 * one (the tests check that all give the same bits). */
void cochleagram_pick_kernels(Cochleagram *c) {
    const char *want = getenv("METAMERS_COCH_KERNELS");
    c->envelope = envelope_scalar;
    c->envelope_backward = envelope_backward_scalar;
    if (want && strcmp(want, "scalar") == 0) return;
#if defined(__x86_64__)
    __builtin_cpu_init();
    bool avx2_only = want && strcmp(want, "avx2") == 0;
    if (__builtin_cpu_supports("avx512f") && !avx2_only) {
        c->envelope = envelope_avx512;
        c->envelope_backward = envelope_backward_avx512;
    } else if (__builtin_cpu_supports("avx2")) {
        c->envelope = envelope_avx2;
        c->envelope_backward = envelope_backward_avx2;
    }
#endif
}

/* Kernels get one clone per ISA: we do not build with -march=native. */
#if defined(__x86_64__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

/* out[t] = sum_j win[j] env[t*hop + j]. */
HOT static void downsample(const float *restrict env, const float *restrict win, int W, int hop,
                           int T, float *restrict out) {
    int t = 0;
    /* Four frames at a time: four independent accumulator chains hide the
     * add latency and each window load serves four products. */
    for (; t + 4 <= T; t += 4) {
        const float *e0 = env + (size_t)t * hop, *e1 = e0 + hop, *e2 = e1 + hop, *e3 = e2 + hop;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
        for (int j = 0; j < W; j++) {
            a0 += win[j] * e0[j];
            a1 += win[j] * e1[j];
            a2 += win[j] * e2[j];
            a3 += win[j] * e3[j];
        }
        out[t] = a0, out[t + 1] = a1, out[t + 2] = a2, out[t + 3] = a3;
    }
    for (; t < T; t++) {
        const float *e = env + (size_t)t * hop;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < W; j++)
            acc += win[j] * e[j];
        out[t] = acc;
    }
}

/* Transpose of downsample: d_env[t*hop + j] += win[j] g[t]; samples no
 * window reaches get zero. (A polyphase form that stores each output once
 * measured 1.7x slower: the running window of d_env stays in L1 here.) */
HOT static void upsample(const float *restrict g, const float *restrict win, int W, int hop, int T,
                         int n, float *restrict d_env) {
    memset(d_env, 0, sizeof(float) * (size_t)n);
    for (int t = 0; t < T; t++) {
        float *d = d_env + (size_t)t * hop;
        float gt = g[t];
#pragma omp simd
        for (int j = 0; j < W; j++)
            d[j] += win[j] * gt;
    }
}

/* ------------------------------------------------------------ per channel */

typedef struct {
    const Cochleagram *c;
    CochleagramWork *w;
    const float *d_out;
    float *out;
} Job;

/* Channel ch's bins [k0, k0+len) land at (k0 + m) mod M of an M-point
 * transform: with M = N (exact) at k0 + m; with M = N/r the M-point inverse
 * FFT of the folded band is the analytic signal at every r-th sample,
 * exactly (e^(2 pi i k r n / N) = e^(2 pi i (k mod M) n / M)). At most one
 * wrap, since len <= M: the band is two runs, [0, split) and [split, len). */
static int band_split(const Cochleagram *c, int ch, int *first) {
    int M = c->N / c->rates[c->env_rate[ch]].step, k0 = c->band_start[ch] % M, len = c->band_len[ch];
    *first = k0;
    return M - k0 < len ? M - k0 : len;
}

/* Channel ch's analytic signal (at every step-th sample of its rate), kept in w->z
 * for backward. Keeping it (C x N complex floats, 67 MB for cochleagram_1)
 * beat recomputing it in backward with one more FFT per channel, memory
 * traffic included: 43-46 against 50-51 ms per cochleagram_1 fwd+bwd. */
static fftwf_complex *analytic_signal(const Cochleagram *c, CochleagramWork *w, WorkerScratch *s,
                                      int ch) {
    fftwf_complex *z = w->z + (size_t)ch * c->zstride;
    int first, split = band_split(c, ch, &first), len = c->band_len[ch];
    const float *h = c->filt + c->band_off[ch];
    const double *X = w->X + 2 * (size_t)c->band_start[ch];
    for (int m = 0; m < len; m++) {
        int k = m < split ? first + m : m - split;
        s->spec[k][0] = (float)(X[2 * m] * h[m]);
        s->spec[k][1] = (float)(X[2 * m + 1] * h[m]);
    }
    fftwf_execute_dft(c->rates[c->env_rate[ch]].plan, s->spec, z);
    memset(s->spec + first, 0, sizeof(fftwf_complex) * (size_t)split); /* zero again */
    memset(s->spec, 0, sizeof(fftwf_complex) * (size_t)(len - split));
    return z;
}

static void forward_channel(void *ctx, int ch, int worker) {
    const Job *job = ctx;
    const Cochleagram *c = job->c;
    CochleagramWork *w = job->w;
    WorkerScratch *s = &w->ws[worker];
    const fftwf_complex *z = analytic_signal(c, w, s, ch);
    const struct EnvRate *e = &c->rates[c->env_rate[ch]];
    c->envelope((const float *)z, s->env, c->N / e->step);
    float *d = job->out + (size_t)ch * c->T, *u = w->u + (size_t)ch * c->T;
    downsample(s->env, e->win, e->taps, c->hop / e->step, c->T, d);
    const FrontEndConfig *f = &c->cfg;
    for (int t = 0; t < c->T; t++) {
        float x = d[t] > 0 ? d[t] : 0;
        u[t] = (float)f->comp_scale * (x + (float)f->comp_offset);
        d[t] = powf(u[t], (float)f->comp_power);
    }
}

static void backward_channel(void *ctx, int ch, int worker) {
    const Job *job = ctx;
    const Cochleagram *c = job->c;
    CochleagramWork *w = job->w;
    WorkerScratch *s = &w->ws[worker];
    const FrontEndConfig *f = &c->cfg;
    const float *u = w->u + (size_t)ch * c->T, *dy = job->d_out + (size_t)ch * c->T;
    float p = (float)f->comp_power, clip = (float)f->comp_clip, scale = (float)f->comp_scale;
    for (int t = 0; t < c->T; t++) {
        float slope = p * powf(u[t], p - 1);
        slope = slope > clip ? clip : slope < -clip ? -clip : slope;
        s->g[t] = dy[t] * slope * scale;
    }
    const struct EnvRate *e = &c->rates[c->env_rate[ch]];
    int M = c->N / e->step;
    upsample(s->g, e->win, e->taps, c->hop / e->step, c->T, M, s->env);
    const fftwf_complex *z = w->z + (size_t)ch * c->zstride;
    c->envelope_backward((const float *)z, s->env, (float *)s->buf, M);
    /* Transpose of the inverse FFT (1/N is in the filter values): an FFT,
     * done as conj(IFFT(conj)) so that one plan serves both passes. */
    fftwf_execute_dft(e->plan, s->buf, s->buf2);
    int first, split = band_split(c, ch, &first), len = c->band_len[ch];
    const float *h = c->filt + c->band_off[ch];
    fftwf_complex *gb = w->gband + c->band_off[ch];
    for (int m = 0; m < len; m++) {
        int k = m < split ? first + m : m - split;
        gb[m][0] = h[m] * s->buf2[k][0];
        gb[m][1] = -(h[m] * s->buf2[k][1]);
    }
}

/* The work has scratch for w->n_workers: a bigger pool runs single-threaded
 * rather than sharing scratch. */
static Pool *usable_pool(const CochleagramWork *w, Pool *pool) {
    return pool && pool_size(pool) <= w->n_workers ? pool : NULL;
}

void cochleagram_forward(const Cochleagram *c, CochleagramWork *w, Pool *pool, const float *wave,
                         float *out) {
    if (c->rfft) {
        rfft_double(c->rfft, wave, w->X, w->dscratch);
    } else { /* float rfft into worker 0's scratch, widened */
        fftwf_complex *Xf = w->ws[0].buf;
        memcpy(w->wave, wave, sizeof(float) * (size_t)c->N);
        fftwf_execute_dft_r2c(c->r2c, w->wave, Xf);
        for (int k = 0; k < c->nbins; k++)
            w->X[2 * k] = Xf[k][0], w->X[2 * k + 1] = Xf[k][1];
    }
    Job job = {c, w, NULL, out};
    pool_run(usable_pool(w, pool), forward_channel, &job, c->C);
    w->have_forward = true;
}

/* d_wave[n] = Re sum_{k<=N/2} G[k] e^{2 pi i k n/N} for the one-sided
 * gradient G of the rfft output: a c2r of G with interior bins halved (c2r
 * counts them twice through Hermitian symmetry). */
static void rfft_backward(const Cochleagram *c, CochleagramWork *w, float *d_wave) {
    fftwf_complex *G = w->G;
    memset(G, 0, sizeof(fftwf_complex) * (size_t)c->nbins);
    for (int ch = 0; ch < c->C; ch++) {
        const fftwf_complex *gb = w->gband + c->band_off[ch];
        fftwf_complex *g = G + c->band_start[ch];
        for (int m = 0; m < c->band_len[ch]; m++) {
            g[m][0] += gb[m][0];
            g[m][1] += gb[m][1];
        }
    }
    int last_real = c->N % 2 == 0 ? c->nbins - 1 : -1; /* Nyquist bin */
    for (int b = 0; b < c->nbins; b++) {
        bool edge = b == 0 || b == last_real;
        G[b][0] *= edge ? 1.0f : 0.5f;
        G[b][1] = edge ? 0.0f : 0.5f * G[b][1];
    }
    fftwf_execute_dft_c2r(c->c2r, G, w->wave);
    memcpy(d_wave, w->wave, sizeof(float) * (size_t)c->N);
}

void cochleagram_backward(const Cochleagram *c, CochleagramWork *w, Pool *pool, const float *d_out,
                          float *d_wave) {
    if (!w->have_forward) { /* nothing to differentiate at */
        memset(d_wave, 0, sizeof(float) * (size_t)c->N);
        return;
    }
    Job job = {c, w, d_out, NULL};
    pool_run(usable_pool(w, pool), backward_channel, &job, c->C);
    rfft_backward(c, w, d_wave);
}
