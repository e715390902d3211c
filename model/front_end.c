/* Front-end configuration: named presets, validation, and the `front_end`
 * JSON schema that the golden files and model metadata carry:
 *
 *   {"sr": 20000, "signal_size": 40000, "n": 50, "low_lim": 50, "high_lim": 10000,
 *    "sample_factor": 4, "full_filter": false, "envelope": "hilbert", "env_sr": 200,
 *    "downsampling": {"type": "sinc_kaiser", "window_size": 1001, "beta": 5},
 *    "compression": {"type": "clipped_grad_power", "scale": 1, "offset": 1e-08,
 *                    "clip_value": 5, "power": 0.3}}
 *
 * Every key is required and unknown keys are errors: a typo in a model file
 * must not silently fall back to a default front end the network was not
 * trained on.
 *
 * Also here, for cochleagram.c: the filterbank and window design (the
 * reference's formulas, evaluated once in double) and a double-precision
 * real FFT. */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Internal interface with cochleagram.c (no private header: these are
 * declared again there). */
int front_end_config_validate(const FrontEndConfig *c, Error *err);
int front_end_filter_bands(const FrontEndConfig *cfg, int **start, int **len, size_t **off,
                           double **values);
double *front_end_window(const FrontEndConfig *cfg);
typedef struct RfftDouble RfftDouble;
RfftDouble *rfft_double_create(int N);
void rfft_double_free(RfftDouble *f);
size_t rfft_double_scratch(int N);
void rfft_double(const RfftDouble *f, const float *x, double *X, double *scratch);

/* ---------------------------------------------------------------- presets */

/* clang-format off */

static const FrontEndConfig preset_cochleagram_1 = {
    .sr = 20000, .signal_size = 40000, .n = 50, .low_lim = 50, .high_lim = 10000,
    .sample_factor = 4, .full_filter = false, .env_sr = 200, .window_size = 1001,
    .kaiser_beta = 5, .comp_scale = 1, .comp_offset = 1e-8, .comp_power = 0.3, .comp_clip = 5,
};

/* 0.25 s at 8 kHz, 21 channels x 20 frames: the same pipeline, small enough
 * for finite-difference tests. */
static const FrontEndConfig preset_tiny = {
    .sr = 8000, .signal_size = 2000, .n = 8, .low_lim = 50, .high_lim = 4000,
    .sample_factor = 2, .full_filter = false, .env_sr = 100, .window_size = 401,
    .kaiser_beta = 5, .comp_scale = 1, .comp_offset = 1e-8, .comp_power = 0.3, .comp_clip = 5,
};

/* 1 s at 16 kHz, 2x oversampled 30 filters: a mid-size front end. */
static const FrontEndConfig preset_small = {
    .sr = 16000, .signal_size = 16000, .n = 30, .low_lim = 50, .high_lim = 8000,
    .sample_factor = 2, .full_filter = false, .env_sr = 100, .window_size = 801,
    .kaiser_beta = 5, .comp_scale = 1, .comp_offset = 1e-8, .comp_power = 0.3, .comp_clip = 5,
};

/* The bundled default model's front end (model/README.md): the full
 * 2 s clip at 20 kHz like cochleagram_1, but 1x-oversampled filters and a
 * 100 Hz envelope. Training recomputes cochleagrams of fresh noisy mixes,
 * so the front end's cost bounds the examples per second. */
static const FrontEndConfig preset_default = {
    .sr = 20000, .signal_size = 40000, .n = 40, .low_lim = 50, .high_lim = 10000,
    .sample_factor = 1, .full_filter = false, .env_sr = 100, .window_size = 1001,
    .kaiser_beta = 5, .comp_scale = 1, .comp_offset = 1e-8, .comp_power = 0.3, .comp_clip = 5,
};

static const struct {
    const char *name;
    const FrontEndConfig *cfg;
} presets[] = {
    {"cochleagram_1", &preset_cochleagram_1},
    {"small", &preset_small},
    {"tiny", &preset_tiny},
    {"default", &preset_default},
};

/* clang-format on */

int front_end_config_preset(const char *name, FrontEndConfig *cfg, Error *err) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (name && strcmp(name, presets[i].name) == 0) {
            *cfg = *presets[i].cfg;
            return 0;
        }
    return error_set(err, "unknown front end preset '%s' (cochleagram_1, small, tiny, default)",
                     name ? name : "(null)");
}

/* ------------------------------------------------------------- validation */

/* Largest clip we accept: keeps channels * samples * 8 bytes of saved
 * analytic signals and int arithmetic far from overflow. */
#define MAX_SIGNAL_SIZE (1 << 24)

int front_end_config_validate(const FrontEndConfig *c, Error *err) {
    if (c->sr <= 0) return error_set(err, "front_end: sr must be positive (got %d)", c->sr);
    if (c->signal_size < 2 || c->signal_size > MAX_SIGNAL_SIZE)
        return error_set(err, "front_end: signal_size must be in [2, %d] (got %d)", MAX_SIGNAL_SIZE,
                         c->signal_size);
    if (c->n < 1 || c->n > 10000)
        return error_set(err, "front_end: n must be in [1, 10000] (got %d)", c->n);
    if (c->sample_factor < 1 || c->sample_factor > 64 ||
        (c->sample_factor != 1 && c->sample_factor % 2 != 0))
        return error_set(err, "front_end: sample_factor must be 1 or even, at most 64 (got %d)",
                         c->sample_factor);
    double nyquist = c->sr / 2.0;
    if (!(c->low_lim >= 0 && c->low_lim < c->high_lim))
        return error_set(err, "front_end: low_lim must be >= 0 and below high_lim (got %g, %g)",
                         c->low_lim, c->high_lim);
    if (!(c->high_lim <= nyquist))
        return error_set(err, "front_end: high_lim %g Hz is above the Nyquist frequency %g Hz",
                         c->high_lim, nyquist);
    if (c->full_filter)
        return error_set(err, "front_end: full_filter: only false (one-sided rfft filters) "
                              "is supported");
    if (c->env_sr <= 0 || c->env_sr > c->sr || c->sr % c->env_sr != 0)
        return error_set(err, "front_end: env_sr must divide sr = %d (got %d)", c->sr, c->env_sr);
    int hop = c->sr / c->env_sr;
    if (c->signal_size % hop != 0)
        return error_set(err,
                         "front_end: signal_size %d is not a multiple of the hop %d (sr/env_sr)",
                         c->signal_size, hop);
    if (c->window_size < 1 || c->window_size > c->signal_size)
        return error_set(err, "front_end: window_size must be in [1, signal_size = %d] (got %d)",
                         c->signal_size, c->window_size);
    if (!(c->kaiser_beta >= 0 && c->kaiser_beta <= 100))
        return error_set(err, "front_end: downsampling.beta must be in [0, 100] (got %g)",
                         c->kaiser_beta);
    if (!(c->comp_scale > 0 && isfinite(c->comp_scale)))
        return error_set(err, "front_end: compression.scale must be positive (got %g)",
                         c->comp_scale);
    if (!(c->comp_offset >= 0 && isfinite(c->comp_offset)))
        return error_set(err, "front_end: compression.offset must be >= 0 (got %g)",
                         c->comp_offset);
    if (!(c->comp_power > 0 && c->comp_power <= 10))
        return error_set(err, "front_end: compression.power must be in (0, 10] (got %g)",
                         c->comp_power);
    /* backward keeps every channel's analytic signal (complex float) */
    double channels = c->sample_factor * (c->n + 1.0) - 1 + 2 * c->sample_factor;
    double gbytes = channels * c->signal_size * 8 / 1e9;
    if (gbytes > 8)
        return error_set(err,
                         "front_end: %.0f channels x %d samples would need %.1f GB (limit 8); "
                         "use fewer channels (n, sample_factor) or a shorter signal_size",
                         channels, c->signal_size, gbytes);
    if (!(c->comp_clip > 0))
        return error_set(err, "front_end: compression.clip_value must be positive (got %g)",
                         c->comp_clip);
    return 0;
}

/* ------------------------------------------------------------ JSON parsing */

/* Reads key `key` of obj as a number; `path` names it in messages
 * ("downsampling.beta"). */
static int get_number(json_t *obj, const char *key, const char *path, double *out, Error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return error_set(err, "front_end: missing key '%s'", path);
    if (!json_is_number(v)) return error_set(err, "front_end: '%s' must be a number", path);
    *out = json_number_value(v);
    if (!isfinite(*out)) return error_set(err, "front_end: '%s' must be finite", path);
    return 0;
}

/* Integers may arrive as 20000.0 from Python; accept integral reals. */
static int get_int(json_t *obj, const char *key, const char *path, int *out, Error *err) {
    double d = 0;
    if (get_number(obj, key, path, &d, err) != 0) return -1;
    if (d != floor(d) || fabs(d) > 1e9)
        return error_set(err, "front_end: '%s' must be an integer (got %g)", path, d);
    *out = (int)d;
    return 0;
}

static int get_string(json_t *obj, const char *key, const char *path, const char *want,
                      Error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return error_set(err, "front_end: missing key '%s'", path);
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
        return error_set(err, "front_end: '%s' must be \"%s\" (the only supported value)", path,
                         want);
    return 0;
}

/* Rejects keys outside `allowed` (NULL-terminated); `prefix` is "" or "downsampling.". */
static int check_keys(json_t *obj, const char *const *allowed, const char *prefix, Error *err) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        (void)v;
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            ok |= strcmp(key, allowed[i]) == 0;
        if (!ok) return error_set(err, "front_end: unknown key '%s%s'", prefix, key);
    }
    return 0;
}

static json_t *get_object(json_t *obj, const char *key, Error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return error_set(err, "front_end: missing key '%s'", key), NULL;
    if (!json_is_object(v)) return error_set(err, "front_end: '%s' must be an object", key), NULL;
    return v;
}

static int parse_top(json_t *root, FrontEndConfig *c, Error *err) {
    static const char *const keys[] = {"sr",       "signal_size",   "n",           "low_lim",
                                       "high_lim", "sample_factor", "full_filter", "envelope",
                                       "env_sr",   "downsampling",  "compression", NULL};
    if (check_keys(root, keys, "", err) != 0) return -1;
    if (get_int(root, "sr", "sr", &c->sr, err) ||
        get_int(root, "signal_size", "signal_size", &c->signal_size, err) ||
        get_int(root, "n", "n", &c->n, err) ||
        get_number(root, "low_lim", "low_lim", &c->low_lim, err) ||
        get_number(root, "high_lim", "high_lim", &c->high_lim, err) ||
        get_int(root, "sample_factor", "sample_factor", &c->sample_factor, err) ||
        get_string(root, "envelope", "envelope", "hilbert", err) ||
        get_int(root, "env_sr", "env_sr", &c->env_sr, err))
        return -1;
    json_t *ff = json_object_get(root, "full_filter");
    if (!ff) return error_set(err, "front_end: missing key 'full_filter'");
    if (!json_is_boolean(ff))
        return error_set(err, "front_end: 'full_filter' must be true or false");
    c->full_filter = json_is_true(ff);
    return 0;
}

static int parse_downsampling(json_t *root, FrontEndConfig *c, Error *err) {
    static const char *const keys[] = {"type", "window_size", "beta", NULL};
    json_t *d = get_object(root, "downsampling", err);
    if (!d || check_keys(d, keys, "downsampling.", err) != 0) return -1;
    if (get_string(d, "type", "downsampling.type", "sinc_kaiser", err) ||
        get_int(d, "window_size", "downsampling.window_size", &c->window_size, err) ||
        get_number(d, "beta", "downsampling.beta", &c->kaiser_beta, err))
        return -1;
    return 0;
}

static int parse_compression(json_t *root, FrontEndConfig *c, Error *err) {
    static const char *const keys[] = {"type", "scale", "offset", "clip_value", "power", NULL};
    json_t *d = get_object(root, "compression", err);
    if (!d || check_keys(d, keys, "compression.", err) != 0) return -1;
    if (get_string(d, "type", "compression.type", "clipped_grad_power", err) ||
        get_number(d, "scale", "compression.scale", &c->comp_scale, err) ||
        get_number(d, "offset", "compression.offset", &c->comp_offset, err) ||
        get_number(d, "clip_value", "compression.clip_value", &c->comp_clip, err) ||
        get_number(d, "power", "compression.power", &c->comp_power, err))
        return -1;
    return 0;
}

int front_end_config_from_json(const char *json, FrontEndConfig *cfg, Error *err) {
    json_error_t jerr;
    json_t *root = json ? json_loads(json, 0, &jerr) : NULL;
    if (!root) return error_set(err, "front_end: invalid JSON: %s", json ? jerr.text : "(null)");
    FrontEndConfig c;
    memset(&c, 0, sizeof c);
    int rc = json_is_object(root) ? 0 : error_set(err, "front_end: must be a JSON object");
    if (rc == 0) rc = parse_top(root, &c, err);
    if (rc == 0) rc = parse_downsampling(root, &c, err);
    if (rc == 0) rc = parse_compression(root, &c, err);
    json_decref(root);
    if (rc == 0) rc = front_end_config_validate(&c, err);
    if (rc == 0) *cfg = c; /* cfg untouched on error */
    return rc;
}

/* ------------------------------------------------------------ JSON output */

/* Shortest text that reads back to exactly x, as Python's repr does
 * (50 -> "50", 1e-08 -> "1e-08"), so printed configs look like the golden
 * metadata and round-trip bit for bit. */
static void format_number(char *buf, size_t n, double x) {
    if (x == 0) x = 0; /* -0 would print "-0", which JSON reads back as integer 0 */
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

char *front_end_config_to_json(const FrontEndConfig *c) {
    char lo[32], hi[32], beta[32], scale[32], off[32], clip[32], pw[32];
    format_number(lo, sizeof lo, c->low_lim);
    format_number(hi, sizeof hi, c->high_lim);
    format_number(beta, sizeof beta, c->kaiser_beta);
    format_number(scale, sizeof scale, c->comp_scale);
    format_number(off, sizeof off, c->comp_offset);
    format_number(clip, sizeof clip, c->comp_clip);
    format_number(pw, sizeof pw, c->comp_power);
    const char *fmt =
        "{\"sr\": %d, \"signal_size\": %d, \"n\": %d, \"low_lim\": %s, \"high_lim\": %s, "
        "\"sample_factor\": %d, \"full_filter\": %s, \"envelope\": \"hilbert\", \"env_sr\": %d, "
        "\"downsampling\": {\"type\": \"sinc_kaiser\", \"window_size\": %d, \"beta\": %s}, "
        "\"compression\": {\"type\": \"clipped_grad_power\", \"scale\": %s, \"offset\": %s, "
        "\"clip_value\": %s, \"power\": %s}}";
    int len = snprintf(NULL, 0, fmt, c->sr, c->signal_size, c->n, lo, hi, c->sample_factor,
                       c->full_filter ? "true" : "false", c->env_sr, c->window_size, beta, scale,
                       off, clip, pw);
    char *s = xmalloc((size_t)len + 1);
    snprintf(s, (size_t)len + 1, fmt, c->sr, c->signal_size, c->n, lo, hi, c->sample_factor,
             c->full_filter ? "true" : "false", c->env_sr, c->window_size, beta, scale, off, clip,
             pw);
    return s;
}

/* ------------------------------------------------------- filterbank design
 *
 * pycochleagram's make_erb_cos_filters_nx with full_filter=False, evaluated
 * in double on the rfft bins k*sr/N, k = 0..N/2. Used by cochleagram.c only;
 * the functions below are its (non-public) interface. */

static double freq2erb(double f) { return 9.265 * log(1 + f / (24.7 * 9.265)); }
static double erb2freq(double e) { return 24.7 * 9.265 * (exp(e / 9.265) - 1); }

typedef struct {
    int nbins, nf, sf;   /* bins, band-pass filters, sample factor */
    double *freqs, *erb; /* per bin: Hz and ERB number */
    double *cf;          /* nf band-pass centres, ERB number */
    double spacing;      /* ERB step between centres */
} ErbGrid;

/* numpy.linspace(a, b, num)[i]: i*step + a, last element exactly b. */
static double linspace_at(double a, double b, int num, int i) {
    return i == num - 1 ? b : i * ((b - a) / (num - 1)) + a;
}

static void erb_grid_init(ErbGrid *g, const FrontEndConfig *cfg) {
    int N = cfg->signal_size;
    double max_freq = N % 2 == 0 ? cfg->sr / 2.0 : cfg->sr * (N - 1) / 2.0 / N;
    g->nbins = N / 2 + 1;
    g->sf = cfg->sample_factor;
    g->nf = g->sf * (cfg->n + 1) - 1;
    g->freqs = xmalloc(sizeof(double) * (size_t)g->nbins);
    g->erb = xmalloc(sizeof(double) * (size_t)g->nbins);
    for (int k = 0; k < g->nbins; k++) {
        g->freqs[k] = linspace_at(0, max_freq, g->nbins, k);
        g->erb[k] = freq2erb(g->freqs[k]);
    }
    double lo = freq2erb(cfg->low_lim), hi = freq2erb(cfg->high_lim);
    g->spacing = (hi - lo) / (g->nf + 1);
    g->cf = xmalloc(sizeof(double) * (size_t)g->nf);
    for (int i = 0; i < g->nf; i++)
        g->cf[i] = linspace_at(lo, hi, g->nf + 2, i + 1);
}

static void erb_grid_free(ErbGrid *g) {
    free(g->freqs);
    free(g->erb);
    free(g->cf);
}

/* Band-pass filter i at bin k (before the 1/sqrt(sample_factor) scaling):
 * a half cosine over the open ERB interval cf -+ sf*spacing. */
static double bandpass(const ErbGrid *g, int i, int k) {
    double l = g->cf[i] - g->sf * g->spacing, h = g->cf[i] + g->sf * g->spacing;
    double e = g->erb[k];
    if (!(e > l && e < h)) return 0;
    return cos((e - (l + h) / 2) / (h - l) * M_PI);
}

/* Response of channel ch at bin k. Channels: sf low-passes, nf band-passes,
 * sf high-passes; low-pass i reaches up to the peak of band-pass i and
 * high-pass i (counted from the top) down to the peak of band-pass nf-1-i,
 * each completing its partner so that squared responses sum to one. */
static double channel_response(const ErbGrid *g, int ch, int k) {
    double r;
    if (ch < g->sf) {
        double b = bandpass(g, ch, k);
        r = g->freqs[k] < erb2freq(g->cf[ch]) ? sqrt(1 - b * b) : 0;
    } else if (ch < g->sf + g->nf) {
        r = bandpass(g, ch - g->sf, k);
    } else {
        int partner = g->nf - 1 - (2 * g->sf + g->nf - 1 - ch); /* high-pass 0 = topmost */
        double b = bandpass(g, partner, k);
        r = g->freqs[k] > erb2freq(g->cf[partner]) ? sqrt(1 - b * b) : 0;
    }
    return r / sqrt(g->sf);
}

/* Each channel's run of nonzero bins: start[ch], len[ch] and the responses
 * at values[off[ch] .. off[ch] + len[ch]). Returns the channel count. */
int front_end_filter_bands(const FrontEndConfig *cfg, int **start, int **len, size_t **off,
                           double **values) {
    ErbGrid g;
    erb_grid_init(&g, cfg);
    int C = g.nf + 2 * g.sf;
    *start = xcalloc((size_t)C, sizeof(int));
    *len = xcalloc((size_t)C, sizeof(int));
    *off = xcalloc((size_t)C + 1, sizeof(size_t));
    double *resp = xmalloc(sizeof(double) * (size_t)g.nbins);
    /* First pass sizes the runs, second stores them. */
    for (int pass = 0; pass < 2; pass++) {
        size_t total = 0;
        for (int ch = 0; ch < C; ch++) {
            int first = -1, last = -1;
            for (int k = 0; k < g.nbins; k++) {
                resp[k] = channel_response(&g, ch, k);
                if (resp[k] != 0) last = k, first = first < 0 ? k : first;
            }
            int n = first < 0 ? 0 : last - first + 1;
            (*start)[ch] = first < 0 ? 0 : first;
            (*len)[ch] = n;
            (*off)[ch] = total;
            if (pass == 1) memcpy(*values + total, resp + (*start)[ch], sizeof(double) * (size_t)n);
            total += (size_t)n;
        }
        (*off)[C] = total;
        if (pass == 0) *values = xmalloc(sizeof(double) * (total + 1));
    }
    free(resp);
    erb_grid_free(&g);
    return C;
}

/* Modified Bessel function I0 by its power series (converges fast for the
 * betas a Kaiser window uses). */
static double bessel_i0(double x) {
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 500 && term > 1e-17 * sum; k++) {
        term *= q / ((double)k * k);
        sum += term;
    }
    return sum;
}

static double sinc(double x) { return x == 0 ? 1 : sin(M_PI * x) / (M_PI * x); }

/* chcochleagram's SincWithKaiserWindow: sinc(t/hop)/hop at t = -W/2 + j
 * (half-integer offsets for odd W) times a symmetric Kaiser window.
 * window_size values, malloc'd. */
double *front_end_window(const FrontEndConfig *cfg) {
    int W = cfg->window_size, hop = cfg->sr / cfg->env_sr;
    double *win = xmalloc(sizeof(double) * (size_t)W);
    double alpha = (W - 1) / 2.0, i0b = bessel_i0(cfg->kaiser_beta);
    for (int j = 0; j < W; j++) {
        double r = W > 1 ? (j - alpha) / alpha : 0;
        double kaiser = bessel_i0(cfg->kaiser_beta * sqrt(fmax(0, 1 - r * r))) / i0b;
        win[j] = kaiser * sinc((-W / 2.0 + j) / hop) / hop;
    }
    return win;
}

/* -------------------------------------------------- double-precision rfft
 *
 * cochleagram.c computes the input spectrum in double (its comment says
 * why); FFTW's double library is not linked, so this is a small mixed-radix
 * Stockham FFT: radix 4, 2 and 5 written out, other primes up to 64 by a
 * plain DFT. Real input of even length N goes through one N/2-point complex
 * FFT of (x[2j], x[2j+1]) and the usual even/odd split. */

#define RFFT_MAX_RADIX 64

struct RfftDouble {
    int N, n; /* real length; complex length (N/2 for even N, else N) */
    int nfac, fac[64];
    double *tw;  /* n complex: exp(-2 pi i j/n) */
    double *rtw; /* N/2+1 complex: exp(-2 pi i k/N) for the even/odd split */
};

static void unit_roots(double *w, int count, int n) {
    for (int j = 0; j < count; j++)
        w[2 * j] = cos(-2 * M_PI * j / n), w[2 * j + 1] = sin(-2 * M_PI * j / n);
}

RfftDouble *rfft_double_create(int N) {
    RfftDouble *f = xcalloc(1, sizeof *f);
    f->N = N;
    f->n = N % 2 == 0 ? N / 2 : N;
    int m = f->n;
    while (m % 4 == 0)
        f->fac[f->nfac++] = 4, m /= 4;
    while (m % 2 == 0)
        f->fac[f->nfac++] = 2, m /= 2;
    for (int p = 3; m > 1 && p <= RFFT_MAX_RADIX; p += 2)
        while (m % p == 0)
            f->fac[f->nfac++] = p, m /= p;
    if (m != 1) { /* a prime factor above the limit */
        free(f);
        return NULL;
    }
    f->tw = xmalloc(sizeof(double) * 2 * (size_t)f->n);
    f->rtw = xmalloc(sizeof(double) * 2 * ((size_t)N / 2 + 1));
    unit_roots(f->tw, f->n, f->n);
    unit_roots(f->rtw, N / 2 + 1, N);
    return f;
}

void rfft_double_free(RfftDouble *f) {
    if (!f) return;
    free(f->tw);
    free(f->rtw);
    free(f);
}

size_t rfft_double_scratch(int N) { return 4 * (size_t)N; }

/* 5-point DFT of (ar, ai) to y[2 L t], t < 5 (W_5 = e^{-2 pi i/5}). */
static void dfft_radix5(const double *ar, const double *ai, double *y, int L) {
    const double c1 = 0.30901699437494745, c2 = -0.80901699437494745; /* cos 2pi/5, 4pi/5 */
    const double s1 = 0.95105651629515353, s2 = 0.58778525229247314;  /* sin 2pi/5, 4pi/5 */
    double t1r = ar[1] + ar[4], t1i = ai[1] + ai[4], t2r = ar[2] + ar[3], t2i = ai[2] + ai[3];
    double t3r = ar[1] - ar[4], t3i = ai[1] - ai[4], t4r = ar[2] - ar[3], t4i = ai[2] - ai[3];
    double b1r = ar[0] + c1 * t1r + c2 * t2r, b1i = ai[0] + c1 * t1i + c2 * t2i;
    double b2r = ar[0] + c2 * t1r + c1 * t2r, b2i = ai[0] + c2 * t1i + c1 * t2i;
    double d1r = s1 * t3r + s2 * t4r, d1i = s1 * t3i + s2 * t4i;
    double d2r = s2 * t3r - s1 * t4r, d2i = s2 * t3i - s1 * t4i;
    y[0] = ar[0] + t1r + t2r, y[1] = ai[0] + t1i + t2i;
    y[2 * L] = b1r + d1i, y[2 * L + 1] = b1i - d1r; /* b1 - i d1 */
    y[4 * L] = b2r + d2i, y[4 * L + 1] = b2i - d2r;
    y[6 * L] = b2r - d2i, y[6 * L + 1] = b2i + d2r;
    y[8 * L] = b1r - d1i, y[8 * L + 1] = b1i + d1r;
}

/* One radix-p pass: L-point DFTs of the R residue classes become (L*p)-point
 * DFTs of R/p classes. In[(r + R' q) L + k], out[r L' + k + L t]. */
static inline __attribute__((always_inline)) void
dfft_pass_p(const RfftDouble *f, const int p, int L, int R, const double *in, double *out) {
    int Rq = R / p, Lp = L * p;
    double ar[RFFT_MAX_RADIX], ai[RFFT_MAX_RADIX];
    for (int r = 0; r < Rq; r++)
        for (int k = 0; k < L; k++) {
            for (int q = 0; q < p; q++) { /* inputs times W_{Lp}^{qk} */
                const double *x = in + 2 * ((size_t)(r + Rq * q) * L + k),
                             *w = f->tw + 2 * (q * k * Rq);
                ar[q] = x[0] * w[0] - x[1] * w[1];
                ai[q] = x[0] * w[1] + x[1] * w[0];
            }
            double *y = out + 2 * ((size_t)r * Lp + k);
            if (p == 4) { /* W_4 = -i */
                double s0r = ar[0] + ar[2], s0i = ai[0] + ai[2], d0r = ar[0] - ar[2],
                       d0i = ai[0] - ai[2];
                double s1r = ar[1] + ar[3], s1i = ai[1] + ai[3], d1r = ar[1] - ar[3],
                       d1i = ai[1] - ai[3];
                y[0] = s0r + s1r, y[1] = s0i + s1i;
                y[2 * L] = d0r + d1i, y[2 * L + 1] = d0i - d1r;
                y[4 * L] = s0r - s1r, y[4 * L + 1] = s0i - s1i;
                y[6 * L] = d0r - d1i, y[6 * L + 1] = d0i + d1r;
            } else if (p == 5) {
                dfft_radix5(ar, ai, y, L);
            } else if (p == 2) {
                y[0] = ar[0] + ar[1], y[1] = ai[0] + ai[1];
                y[2 * L] = ar[0] - ar[1], y[2 * L + 1] = ai[0] - ai[1];
            } else {
                for (int t = 0; t < p; t++) {
                    double sr = 0, si = 0;
                    for (int q = 0; q < p; q++) {
                        const double *w = f->tw + 2 * ((size_t)(q * t % p) * (f->n / p));
                        sr += ar[q] * w[0] - ai[q] * w[1];
                        si += ar[q] * w[1] + ai[q] * w[0];
                    }
                    y[2 * L * t] = sr, y[2 * L * t + 1] = si;
                }
            }
        }
}

/* Constant radices get their own copy of the pass (the loads over q unroll
 * into registers): 1.2x faster than one generic loop. The whole 40000-point
 * double rfft takes ~0.25 ms, once per forward. */
static void dfft_pass(const RfftDouble *f, int p, int L, int R, const double *in, double *out) {
    switch (p) {
    case 2: dfft_pass_p(f, 2, L, R, in, out); break;
    case 4: dfft_pass_p(f, 4, L, R, in, out); break;
    case 5: dfft_pass_p(f, 5, L, R, in, out); break;
    default: dfft_pass_p(f, p, L, R, in, out); break;
    }
}

/* FFT of a (n complex); b is scratch. Returns whichever holds the result. */
static double *dfft_run(const RfftDouble *f, double *a, double *b) {
    int L = 1, R = f->n;
    for (int s = 0; s < f->nfac; s++) {
        dfft_pass(f, f->fac[s], L, R, a, b);
        double *t = a;
        a = b, b = t;
        L *= f->fac[s], R /= f->fac[s];
    }
    return a;
}

/* X (N/2+1 complex, interleaved) = rfft(x); scratch: rfft_double_scratch(N). */
void rfft_double(const RfftDouble *f, const float *x, double *X, double *scratch) {
    int N = f->N, n = f->n;
    double *a = scratch, *b = scratch + 2 * (size_t)n;
    for (int j = 0; j < n; j++) {
        a[2 * j] = N % 2 ? x[j] : x[2 * j];
        a[2 * j + 1] = N % 2 ? 0 : x[2 * j + 1];
    }
    const double *Z = dfft_run(f, a, b);
    for (int k = 0; k <= N / 2; k++) {
        if (N % 2) {
            X[2 * k] = Z[2 * k], X[2 * k + 1] = Z[2 * k + 1];
            continue;
        }
        int i = k % n, j = (n - k) % n;
        double zr = Z[2 * i], zi = Z[2 * i + 1], cr = Z[2 * j], ci = -Z[2 * j + 1];
        double er = (zr + cr) / 2, ei = (zi + ci) / 2;   /* even samples' spectrum */
        double or_ = (zi - ci) / 2, oi = -(zr - cr) / 2; /* odd: (z - conj)/(2i) */
        const double *t = f->rtw + 2 * k;
        X[2 * k] = er + or_ * t[0] - oi * t[1];
        X[2 * k + 1] = ei + or_ * t[1] + oi * t[0];
    }
}
