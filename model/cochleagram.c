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
#include "model.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* front_end.c: validation and the filterbank/window design (internal). */
int front_end_config_validate(const FrontEndConfig *c, Error *err);
int front_end_filter_bands(const FrontEndConfig *cfg, int **start, int **len, size_t **off,
                           double **values);
double *front_end_window(const FrontEndConfig *cfg);
typedef struct RfftDouble RfftDouble;
RfftDouble *rfft_double_create(int N); /* NULL: N has a prime factor > 64 */
void rfft_double_free(RfftDouble *f);
size_t rfft_double_scratch(int N); /* doubles */
void rfft_double(const RfftDouble *f, const float *x, double *X, double *scratch);

#define ENV_FLOOR 1e-16f /* |z|^2 clamp of chcochleagram's complex_abs */

struct Cochleagram {
    FrontEndConfig cfg;
    int N, nbins, C, T, hop, W;
    int *band_start, *band_len; /* per channel: first nonzero bin, count */
    size_t *band_off;           /* offset of the channel's values in filt */
    float *filt;                /* H_c[k] / N, concatenated */
    float *win;                 /* W taps */
    RfftDouble *rfft;           /* NULL: the float r2c plan computes X */
    size_t zstride;             /* complex samples per kept analytic signal */
    fftwf_plan ifft, c2r, r2c;
    void (*envelope)(const float *z, float *env, int n);
    void (*envelope_backward)(const float *z, const float *d_env, float *out, int n);
};

typedef struct {
    fftwf_complex *spec; /* N: zero except while a channel's band is filled in */
    fftwf_complex *buf;  /* N: backward's conj(d/dz) */
    fftwf_complex *buf2; /* N: its transform */
    float *env;          /* N: envelope (forward) or d/d envelope (backward) */
    float *g;            /* T: d/d downsampled */
} WorkerScratch;

struct CochleagramWork {
    int n_workers;
    float *wave;      /* N: aligned copy of the input, then of d_wave */
    double *dscratch; /* for rfft_double */
    double *X;        /* 2 x nbins: rfft of the last forward's wave */
    fftwf_complex *z; /* C x zstride: analytic signals kept for backward */
    float *u;         /* C x T: scale*(relu(d)+offset) saved for backward */
    /* Backward: each channel's d/dX on its band (laid out like filt), summed
     * in channel order afterwards so results do not depend on the number of
     * workers or on which worker ran which channel. */
    fftwf_complex *gband;
    fftwf_complex *G; /* nbins: d/dX */
    bool have_forward;
    WorkerScratch *ws;
};

static void pick_kernels(Cochleagram *c);

/* FFTW's planner is not thread-safe; execution of a finished plan is. */
static pthread_mutex_t planner_mu = PTHREAD_MUTEX_INITIALIZER;

static fftwf_complex *alloc_complex(size_t n) { return (fftwf_complex *)alloc_floats(2 * n); }
static double *alloc_doubles(size_t n) { return (double *)alloc_floats(2 * n); } /* n doubles */

/* ------------------------------------------------------------ set-up */

/* FFTW_MEASURE times candidate algorithms, so two processes may pick
 * different ones and round differently (results agree to ~1e-7, not bit for
 * bit), and measuring costs ~0.7 s per process. Wisdom pins the choice: plans
 * are read from a per-user cache file (METAMERS_FFTW_WISDOM, default
 * $XDG_CACHE_HOME/metamers/fftw-wisdom-f32; empty disables), rewritten
 * atomically when planning added to it. So every run on a machine uses the
 * same plans and a resumed synthesis reproduces an uninterrupted one. */
static const char *wisdom_path(char *buf, size_t n) {
    const char *env = getenv("METAMERS_FFTW_WISDOM");
    if (env) return *env ? env : NULL;
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(buf, n, "%s/metamers", cache);
    else if (home && *home)
        snprintf(buf, n, "%s/.cache/metamers", home);
    else
        return NULL;
    Error err;
    if (make_dirs(buf, 0755, &err) != 0) return NULL;
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "/fftw-wisdom-f32");
    return buf;
}

static void wisdom_import(const char *path) {
    if (path) fftwf_import_wisdom_from_filename(path); /* a missing file is fine */
}

static void wisdom_export(const char *path) {
    if (!path) return;
    char *now = fftwf_export_wisdom_to_string(), *old = NULL;
    size_t n = 0;
    Error err;
    bool same = read_file(path, &old, &n, &err) == 0 && now && strcmp(old, now) == 0;
    if (now && !same) atomic_write_file(path, now, strlen(now), 0644, &err); /* best effort */
    free(old);
    fftwf_free(now);
}

static int make_plans(Cochleagram *c, Error *err) {
    int N = c->N;
    float *re = alloc_floats((size_t)N + 16);
    fftwf_complex *a = alloc_complex((size_t)N), *b = alloc_complex((size_t)N);
    char buf[1024];
    const char *wisdom = wisdom_path(buf, sizeof buf);
    pthread_mutex_lock(&planner_mu);
    wisdom_import(wisdom);
    /* MEASURE overwrites the arrays: these are scratch, executed later on
     * other (equally 64-byte aligned) arrays through the new-array API.
     * Only the complex transform runs per channel (2 x channels times per
     * clip) and earns MEASURE's ~0.7 s; the real ones run once per pass. */
    c->ifft = fftwf_plan_dft_1d(N, a, b, FFTW_BACKWARD, FFTW_MEASURE);
    c->c2r = fftwf_plan_dft_c2r_1d(N, a, re, FFTW_ESTIMATE);
    if (!c->rfft) c->r2c = fftwf_plan_dft_r2c_1d(N, re, a, FFTW_ESTIMATE);
    wisdom_export(wisdom);
    pthread_mutex_unlock(&planner_mu);
    free(re);
    free(a);
    free(b);
    if (!c->ifft || !c->c2r || (!c->rfft && !c->r2c))
        return error_set(err, "front_end: FFTW could not plan a %d-point transform", N);
    return 0;
}

/* Filters as float, scaled by 1/N. The reference rounds its filters to
 * float32 before use; rounding the same way first keeps us closest to it. */
static void load_design(Cochleagram *c) {
    double *values, *win = front_end_window(&c->cfg);
    c->C = front_end_filter_bands(&c->cfg, &c->band_start, &c->band_len, &c->band_off, &values);
    size_t total = c->band_off[c->C];
    c->filt = alloc_floats(total + 1);
    for (size_t i = 0; i < total; i++)
        c->filt[i] = (float)((double)(float)values[i] / c->N);
    c->win = alloc_floats((size_t)c->W);
    for (int j = 0; j < c->W; j++)
        c->win[j] = (float)win[j];
    free(values);
    free(win);
}

Cochleagram *cochleagram_create(const FrontEndConfig *cfg, Error *err) {
    if (front_end_config_validate(cfg, err) != 0) return NULL;
    Cochleagram *c = xcalloc(1, sizeof *c);
    c->cfg = *cfg;
    c->N = cfg->signal_size;
    c->nbins = c->N / 2 + 1;
    c->hop = cfg->sr / cfg->env_sr;
    c->W = cfg->window_size;
    c->T = (c->N - c->W) / c->hop + 1;
    c->zstride = ((size_t)c->N + 7) / 8 * 8; /* every channel 64-byte aligned for FFTW */
    load_design(c);
    c->rfft = rfft_double_create(c->N);
    pick_kernels(c);
    if (make_plans(c, err) != 0) {
        cochleagram_free(c);
        return NULL;
    }
    return c;
}

void cochleagram_free(Cochleagram *c) {
    if (!c) return;
    pthread_mutex_lock(&planner_mu);
    fftwf_plan plans[3] = {c->ifft, c->c2r, c->r2c};
    for (int i = 0; i < 3; i++)
        if (plans[i]) fftwf_destroy_plan(plans[i]);
    pthread_mutex_unlock(&planner_mu);
    free(c->band_start);
    free(c->band_len);
    free(c->band_off);
    free(c->filt);
    free(c->win);
    rfft_double_free(c->rfft);
    free(c);
}

int cochleagram_channels(const Cochleagram *c) { return c->C; }
int cochleagram_frames(const Cochleagram *c) { return c->T; }
int cochleagram_samples(const Cochleagram *c) { return c->N; }
const FrontEndConfig *cochleagram_config(const Cochleagram *c) { return &c->cfg; }

CochleagramWork *cochleagram_work_create(const Cochleagram *c, int n_workers) {
    if (n_workers < 1) n_workers = 1;
    CochleagramWork *w = xcalloc(1, sizeof *w);
    size_t N = (size_t)c->N, nb = (size_t)c->nbins;
    w->n_workers = n_workers;
    w->wave = alloc_floats(N + 16);
    w->dscratch = alloc_doubles(rfft_double_scratch(c->N));
    w->X = alloc_doubles(2 * nb);
    w->z = alloc_complex((size_t)c->C * c->zstride);
    /* Touch the kept signals (67 MB for cochleagram_1) now, not in the first forward. */
    memset(w->z, 0, sizeof(fftwf_complex) * (size_t)c->C * c->zstride);
    w->u = alloc_floats((size_t)c->C * (size_t)c->T);
    w->ws = xcalloc((size_t)n_workers, sizeof *w->ws);
    for (int k = 0; k < n_workers; k++) {
        WorkerScratch *s = &w->ws[k];
        s->spec = alloc_complex(N);
        memset(s->spec, 0, sizeof(fftwf_complex) * N);
        s->buf = alloc_complex(N);
        s->buf2 = alloc_complex(N);
        s->env = alloc_floats(N);
        s->g = alloc_floats((size_t)c->T);
    }
    w->gband = alloc_complex(c->band_off[c->C] + 1);
    w->G = alloc_complex(nb);
    return w;
}

void cochleagram_work_free(CochleagramWork *w) {
    if (!w) return;
    for (int k = 0; k < w->n_workers; k++) {
        WorkerScratch *s = &w->ws[k];
        free(s->spec);
        free(s->buf);
        free(s->buf2);
        free(s->env);
        free(s->g);
    }
    free(w->ws);
    free(w->wave);
    free(w->dscratch);
    free(w->X);
    free(w->z);
    free(w->u);
    free(w->gband);
    free(w->G);
    free(w);
}

/* ------------------------------------------------------------ hot kernels */

/* The envelope kernels need a vector square root. With the default
 * -fmath-errno neither GCC nor clang vectorizes sqrtf, so they are written
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
static void pick_kernels(Cochleagram *c) {
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

/* Channel ch's analytic signal IFFT(zero-padded X * H_ch), kept in w->z for
 * backward. Keeping it (C x N complex floats, 67 MB for cochleagram_1) beat
 * recomputing it in backward with one more FFT per channel, memory traffic
 * included: 43-46 against 50-51 ms per cochleagram_1 fwd+bwd on one core. */
static fftwf_complex *analytic_signal(const Cochleagram *c, CochleagramWork *w, WorkerScratch *s,
                                      int ch) {
    fftwf_complex *z = w->z + (size_t)ch * c->zstride;
    int k0 = c->band_start[ch], len = c->band_len[ch];
    const float *h = c->filt + c->band_off[ch];
    const double *X = w->X + 2 * (size_t)k0;
    for (int m = 0; m < len; m++) {
        s->spec[k0 + m][0] = (float)(X[2 * m] * h[m]);
        s->spec[k0 + m][1] = (float)(X[2 * m + 1] * h[m]);
    }
    fftwf_execute_dft(c->ifft, s->spec, z);
    memset(s->spec + k0, 0, sizeof(fftwf_complex) * (size_t)len); /* zero again */
    return z;
}

static void forward_channel(void *ctx, int ch, int worker) {
    const Job *job = ctx;
    const Cochleagram *c = job->c;
    CochleagramWork *w = job->w;
    WorkerScratch *s = &w->ws[worker];
    const fftwf_complex *z = analytic_signal(c, w, s, ch);
    c->envelope((const float *)z, s->env, c->N);
    float *d = job->out + (size_t)ch * c->T, *u = w->u + (size_t)ch * c->T;
    downsample(s->env, c->win, c->W, c->hop, c->T, d);
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
    upsample(s->g, c->win, c->W, c->hop, c->T, c->N, s->env);
    const fftwf_complex *z = w->z + (size_t)ch * c->zstride;
    c->envelope_backward((const float *)z, s->env, (float *)s->buf, c->N);
    /* Transpose of the inverse FFT (1/N is in the filter values): an FFT,
     * done as conj(IFFT(conj)) so that one plan serves both passes. */
    fftwf_execute_dft(c->ifft, s->buf, s->buf2);
    int k0 = c->band_start[ch], len = c->band_len[ch];
    const float *h = c->filt + c->band_off[ch];
    fftwf_complex *gb = w->gband + c->band_off[ch];
    for (int m = 0; m < len; m++) {
        gb[m][0] = h[m] * s->buf2[k0 + m][0];
        gb[m][1] = -(h[m] * s->buf2[k0 + m][1]);
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
