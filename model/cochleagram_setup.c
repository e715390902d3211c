/* Building a cochleagram: filters, windows, FFTW plans (with a per-user
 * wisdom cache), and for reduced-rate envelopes the choice of each channel's
 * sampling step. Owns every buffer of Cochleagram and CochleagramWork. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cochleagram_internal.h"

/* FFTW's planner is not thread-safe; execution of a finished plan is. */
static pthread_mutex_t planner_mu = PTHREAD_MUTEX_INITIALIZER;

static fftwf_complex *alloc_complex(size_t n) { return (fftwf_complex *)alloc_floats(2 * n); }
static double *alloc_doubles(size_t n) { return (double *)alloc_floats(2 * n); } /* n doubles */

/* ------------------------------------------------------------ set-up */

/* FFTW_MEASURE times candidate algorithms, so two processes may pick
 * different ones, which round differently (~1e-7 per pass); the 24000
 * normalized-gradient steps of a metamer turn that into a different sound,
 * and a borderline metamer's verdict with it. (FFTW_ESTIMATE would be
 * deterministic without any cache, but runs the default front end 1.4-1.6x
 * slower here.) So plans are made only from wisdom in a plan cache: one
 * file per set of transforms, written once by the first process that needs
 * it (link, never rename, so a file is never replaced under a reader) and
 * then read by every process, the first one included. Each set is planned
 * from its own file alone, after forgetting FFTW's global wisdom, because
 * what earlier plans leave there changes which entry a lookup picks (one
 * problem can be stored under several planner flags). The single shared
 * file used before let concurrent processes each run their own measured
 * plans and then overwrite each other's. File names are keyed by the sizes,
 * FFTW's version and the CPU's SIMD features, so nodes of a cluster with
 * the same features and a shared home plan alike. Cache directory:
 * METAMERS_FFTW_WISDOM_DIR, default $XDG_CACHE_HOME/metamers/fftw-wisdom;
 * empty disables it (each process then measures its own plans). */
static const char *wisdom_dir(char *buf, size_t n) {
    const char *env = getenv("METAMERS_FFTW_WISDOM_DIR");
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (env)
        snprintf(buf, n, "%s", env);
    else if (cache && *cache)
        snprintf(buf, n, "%s/metamers/fftw-wisdom", cache);
    else if (home && *home)
        snprintf(buf, n, "%s/.cache/metamers/fftw-wisdom", home);
    else
        return NULL;
    Error err;
    return *buf && make_dirs(buf, 0755, &err) == 0 ? buf : NULL;
}

/* The instruction sets FFTW's codelets test for: wisdom naming an AVX-512
 * codelet cannot serve an AVX2 machine. */
static const char *simd_features(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2")) return __builtin_cpu_supports("fma") ? "avx2+fma" : "avx2";
    if (__builtin_cpu_supports("avx")) return "avx";
    return "sse2";
#else
    return "generic";
#endif
}

/* <dir>/plans-<N>-<first 16 hex of sha256(key)>, key naming every size. */
static const char *wisdom_file(const Cochleagram *c, char *buf, size_t n) {
    char dir[900], key[512], hex[65];
    if (!wisdom_dir(dir, sizeof dir)) return NULL;
    int len = snprintf(key, sizeof key, "%s %s N=%d r2c=%d rates=", fftwf_version,
                       simd_features(), c->N, !c->rfft);
    for (int i = 0; i < c->n_rates && len < (int)sizeof key; i++)
        len += snprintf(key + len, sizeof key - (size_t)len, "%d,", c->N / c->rates[i].step);
    sha256_hex(key, strlen(key), hex);
    snprintf(buf, n, "%s/plans-%d-%.16s", dir, c->N, hex);
    return buf;
}

static void destroy_plans(Cochleagram *c) {
    fftwf_plan plans[3] = {c->ifft, c->c2r, c->r2c};
    for (int i = 0; i < 3; i++)
        if (plans[i]) fftwf_destroy_plan(plans[i]);
    for (int i = 1; i < c->n_rates; i++)
        if (c->rates[i].plan) fftwf_destroy_plan(c->rates[i].plan);
    c->ifft = c->c2r = c->r2c = NULL;
    for (int i = 0; i < c->n_rates; i++) c->rates[i].plan = NULL;
}

/* Scratch arrays for planning: MEASURE overwrites them; the plans run later
 * on other, equally 64-byte aligned, arrays through the new-array API. */
typedef struct {
    float *re;
    fftwf_complex *a, *b;
} PlanArrays;

/* Every plan: the N-point inverse FFT (rates[0]) and each reduced rate's
 * with `measure` (only the complex transforms run per channel, 2 x channels
 * times per clip, and earn measuring), the real ones, which run once per
 * pass, estimated. All or none: false leaves no plan. */
static bool plan_all(Cochleagram *c, const PlanArrays *p, unsigned measure) {
    int N = c->N;
    c->ifft = fftwf_plan_dft_1d(N, p->a, p->b, FFTW_BACKWARD, measure);
    c->rates[0].plan = c->ifft;
    bool ok = c->ifft != NULL;
    for (int i = 1; i < c->n_rates && ok; i++)
        ok = (c->rates[i].plan = fftwf_plan_dft_1d(N / c->rates[i].step, p->a, p->b, FFTW_BACKWARD,
                                                   measure)) != NULL;
    ok = ok && (c->c2r = fftwf_plan_dft_c2r_1d(N, p->a, p->re, FFTW_ESTIMATE)) != NULL;
    ok = ok && (c->rfft || (c->r2c = fftwf_plan_dft_r2c_1d(N, p->re, p->a, FFTW_ESTIMATE)));
    if (!ok) destroy_plans(c);
    return ok;
}

static bool plan_from_wisdom(Cochleagram *c, const PlanArrays *p, const char *wisdom) {
    fftwf_forget_wisdom();
    if (!wisdom || !fftwf_import_wisdom_from_string(wisdom) ||
        !plan_all(c, p, FFTW_MEASURE | FFTW_WISDOM_ONLY))
        return false;
    char hex[65];
    sha256_hex(wisdom, strlen(wisdom), hex);
    snprintf(c->plans_id, sizeof c->plans_id, "%.16s", hex);
    return true;
}

/* Measures the plans from scratch and returns them as wisdom text (malloc). */
static char *measure_wisdom(Cochleagram *c, const PlanArrays *p) {
    fftwf_forget_wisdom();
    if (!plan_all(c, p, FFTW_MEASURE)) return NULL;
    destroy_plans(c);
    char *fftw_text = fftwf_export_wisdom_to_string();
    char *text = fftw_text ? xstrdup(fftw_text) : NULL;
    fftwf_free(fftw_text);
    return text;
}

/* 1: c planned from the wisdom in file path; 0: the file holds no usable
 * wisdom (damaged, or from another FFTW); -1: no file to read. */
static int plan_from_file(Cochleagram *c, const PlanArrays *p, const char *path) {
    char *text = NULL;
    size_t n;
    Error err;
    int got = read_file(path, &text, &n, &err) == 0 ? plan_from_wisdom(c, p, text) : -1;
    free(text);
    return got;
}

/* Makes c's plans from the cache file's wisdom; without a usable file, from
 * wisdom measured now and published there, unless another process published
 * first: then from theirs, so that both use the same plans. A damaged file,
 * or one from another FFTW, is replaced. A cache that cannot be written
 * costs only reproducibility. */
static bool plan_cached(Cochleagram *c, const PlanArrays *p, const char *path) {
    int got = path ? plan_from_file(c, p, path) : -1;
    if (got == 1) return true;
    if (got == 0) unlink(path);
    char *ours = measure_wisdom(c, p);
    if (!ours) return false;
    Error err;
    bool ok = path && atomic_create_file(path, ours, strlen(ours), 0644, &err) == 1 &&
              plan_from_file(c, p, path) == 1;
    ok = ok || plan_from_wisdom(c, p, ours);
    free(ours);
    return ok;
}

static int make_plans(Cochleagram *c, Error *err) {
    size_t N = (size_t)c->N;
    PlanArrays p = {alloc_floats(N + 16), alloc_complex(N), alloc_complex(N)};
    char buf[1024];
    const char *path = wisdom_file(c, buf, sizeof buf);
    pthread_mutex_lock(&planner_mu);
    bool ok = plan_cached(c, &p, path);
    pthread_mutex_unlock(&planner_mu);
    free(p.re);
    free(p.a);
    free(p.b);
    if (!ok) return error_set(err, "front_end: FFTW could not plan a %d-point transform", c->N);
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

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* The rate with this step, added (window included) on first use. */
static int rate_index(Cochleagram *c, int step) {
    for (int i = 0; i < c->n_rates; i++)
        if (c->rates[i].step == step) return i;
    struct EnvRate *e = &c->rates[c->n_rates];
    e->step = step, e->taps = (c->W - 1) / step + 1;
    /* The window at every step-th tap, rescaled so its sum (the gain at
     * 0 Hz) is the full window's: a Riemann sum of the same filter. */
    double total = 0, part = 0;
    for (int j = 0; j < c->W; j++) total += c->win[j];
    for (int m = 0; m < e->taps; m++) part += c->win[m * step];
    e->win = alloc_floats((size_t)e->taps);
    for (int m = 0; m < e->taps; m++) e->win[m] = (float)(c->win[m * step] * total / part);
    return c->n_rates++;
}

/* Each channel's envelope step r (1: exact). r divides both the hop and N,
 * so frames start on kept samples, and is the largest such that the kept
 * rate N/r covers oversample x the band's width plus the window's passband
 * (N/hop bins): the envelope's square is band-limited to the band's width,
 * so what the coarser sampling aliases into the window's passband is only
 * the small tail of the square root beyond it. oversample 0: exact. The
 * divisors of gcd(hop, N) bound the distinct rates (at most 12 for hop 200). */
static void choose_envelope_steps(Cochleagram *c, double oversample) {
    int g = gcd(c->hop, c->N);
    c->rates[0] = (struct EnvRate){.step = 1, .taps = c->W, .win = c->win};
    c->n_rates = 1;
    c->env_rate = xcalloc((size_t)c->C, sizeof(int));
    for (int ch = 0; ch < c->C; ch++) {
        double need = oversample * c->band_len[ch] + (double)c->N / c->hop;
        for (int d = g; oversample > 0 && d > 1; d--)
            if (g % d == 0 && c->N / d >= need && c->N / d >= c->band_len[ch] &&
                c->n_rates < (int)(sizeof c->rates / sizeof c->rates[0])) {
                c->env_rate[ch] = rate_index(c, d);
                break;
            }
    }
}

Cochleagram *cochleagram_create_reduced(const FrontEndConfig *cfg, double oversample, Error *err) {
    if (front_end_config_validate(cfg, err) != 0) return NULL;
    if (!(oversample >= 0) || oversample > 1e3)
        return error_set(err, "front_end: envelope oversampling %g out of range (0 = exact, up to 1000)", oversample), NULL;
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
    cochleagram_pick_kernels(c);
    choose_envelope_steps(c, oversample);
    if (make_plans(c, err) != 0) {
        cochleagram_free(c);
        return NULL;
    }
    return c;
}

Cochleagram *cochleagram_create(const FrontEndConfig *cfg, Error *err) {
    return cochleagram_create_reduced(cfg, 0, err);
}

int cochleagram_envelope_samples(const Cochleagram *c) {
    int n = 0;
    for (int ch = 0; ch < c->C; ch++) n += c->N / c->rates[c->env_rate[ch]].step;
    return n;
}

void cochleagram_free(Cochleagram *c) {
    if (!c) return;
    pthread_mutex_lock(&planner_mu);
    destroy_plans(c);
    pthread_mutex_unlock(&planner_mu);
    for (int i = 1; i < c->n_rates; i++) free(c->rates[i].win);
    free(c->env_rate);
    free(c->band_start);
    free(c->band_len);
    free(c->band_off);
    free(c->filt);
    free(c->win);
    rfft_double_free(c->rfft);
    free(c);
}

int cochleagram_channels(const Cochleagram *c) { return c->C; }
const char *cochleagram_plans_id(const Cochleagram *c) { return c->plans_id; }
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
