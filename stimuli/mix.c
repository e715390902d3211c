/* Assembling clips: speech tracks from the utterance store (Kell et al.
 * 2018: the target word centred at 1 s, other words before and after it),
 * babble, white and pink noise, and mixing at a given SNR.
 *
 * SNR is defined over the whole 2 s: 20 log10(rms(target) / rms(noise)),
 * where the target is everything the label belongs to (the word with its
 * context words, or the music excerpt). The mix is then scaled to RMS 0.1;
 * target and noise are scaled by the same gain, so mix = target + noise.
 *
 * Peaks: at RMS 0.1 a clip with pauses (a word list, a quiet passage with
 * a drum hit) can exceed 1, which metamer synthesis (waveform clamped to
 * [-1, 1]) and 16-bit playback cannot reproduce. Such clips (a few percent)
 * go through a 5 ms look-ahead peak limiter applied to target and noise
 * alike, so mix = target + noise still holds and every sample of every clip
 * lies within +-0.99; the noise is then rescaled so the SNR stays exact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stim_internal.h"

static const char *const noise_names[N_NOISE] = {"none", "babble", "pink", "white", "music",
                                                 "speech"};

const char *noise_name(NoiseKind k) { return noise_names[k]; }

/* Gaps between words: 40-160 ms, like fluent speech with short pauses. */
static int64_t gap_samples(Rng *r) { return (int64_t)rng_range(r, 40, 160) * STIM_RATE / 1000; }

static void add_at(float *buf, int64_t n, const float *x, int64_t len, int64_t at) {
    for (int64_t i = 0; i < len; i++) {
        int64_t j = at + i;
        if (j >= 0 && j < n) buf[j] += x[i];
    }
}

static int utterance(const UttStore *st, int style, int word, const float **x, int64_t *n,
                     Error *err) {
    size_t k = (size_t)style * (size_t)st->n_words + (size_t)word;
    if (!st->x[k])
        return error_set(err, "internal: word '%s' of style %d was not rendered",
                         stimuli_vocabulary_word(word), style);
    *x = st->x[k];
    *n = st->n[k];
    return 0;
}

/* words[0] centred at `centre`; odd-indexed words go leftwards, even ones
 * rightwards, until both edges of buf are reached. */
static int lay_centred(const Stream *s, const UttStore *st, float *buf, int64_t n,
                       int64_t centre, Rng *r, Error *err) {
    const float *x = NULL;
    int64_t len = 0;
    if (utterance(st, s->style, s->words[0], &x, &len, err) != 0) return -1;
    int64_t left = centre - len / 2, right = left + len;
    add_at(buf, n, x, len, left);
    for (int k = 1; k < s->n_words && (left > 0 || right < n); k++) {
        if (utterance(st, s->style, s->words[k], &x, &len, err) != 0) return -1;
        int64_t gap = gap_samples(r);
        if (k % 2 == 1 && left > 0) {
            left -= gap + len;
            add_at(buf, n, x, len, left);
        } else if (k % 2 == 0 && right < n) {
            add_at(buf, n, x, len, right + gap);
            right += gap + len;
        }
    }
    return 0;
}

/* Background talker: starts up to 0.6 s before the clip, runs to its end. */
static int lay_running(const Stream *s, const UttStore *st, float *buf, int64_t n, Rng *r,
                       Error *err) {
    int64_t pos = -(int64_t)rng_range(r, 0, 600) * STIM_RATE / 1000;
    for (int k = 0; k < s->n_words && pos < n; k++) {
        const float *x = NULL;
        int64_t len = 0;
        if (utterance(st, s->style, s->words[k], &x, &len, err) != 0) return -1;
        add_at(buf, n, x, len, pos);
        pos += len + gap_samples(r);
    }
    return 0;
}

/* A speed other than 1 is applied by laying the words out on a longer (or
 * shorter) buffer and resampling it once, so rate and pitch both change. */
int stream_render(const Stream *s, const UttStore *st, float *out, Error *err) {
    Rng r;
    rng_seed(&r, s->seed);
    memset(out, 0, STIM_SAMPLES * sizeof *out);
    if (s->speed_milli == 1000)
        return s->target ? lay_centred(s, st, out, STIM_SAMPLES, STIM_SAMPLES / 2, &r, err)
                         : lay_running(s, st, out, STIM_SAMPLES, &r, err);
    int64_t pad = STIM_RATE / 10;
    int64_t n = (int64_t)ceil(STIM_SAMPLES * s->speed_milli / 1000.0) + 2 * pad;
    float *buf = xcalloc((size_t)n, sizeof *buf);
    int rc = s->target ? lay_centred(s, st, buf, n, n / 2, &r, err)
                       : lay_running(s, st, buf, n, &r, err);
    float *res = NULL;
    int64_t m = 0;
    if (rc == 0) rc = audio_resample(buf, n, 20 * s->speed_milli, STIM_RATE, &res, &m, err);
    if (rc == 0 && m < STIM_SAMPLES) rc = error_set(err, "internal: resampled track too short");
    if (rc == 0) memcpy(out, res + (m - STIM_SAMPLES) / 2, STIM_SAMPLES * sizeof *out);
    free(res);
    free(buf);
    return rc;
}

int babble_render(const Stream *talkers, int n, const UttStore *st, float *out, Error *err) {
    float *one = xmalloc(STIM_SAMPLES * sizeof *one);
    memset(out, 0, STIM_SAMPLES * sizeof *out);
    int rc = 0;
    for (int t = 0; rc == 0 && t < n; t++) {
        rc = stream_render(&talkers[t], st, one, err);
        double rms = rc == 0 ? audio_rms(one, STIM_SAMPLES) : 0;
        for (int64_t i = 0; rc == 0 && rms > 0 && i < STIM_SAMPLES; i++)
            out[i] += (float)(one[i] / rms);
    }
    free(one);
    return rc;
}

void white_noise(uint64_t seed, float *out, int64_t n) {
    Rng r;
    rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) out[i] = (float)rng_normal(&r);
}

/* Paul Kellet's refined pink filter (sum of six first-order sections) on
 * Gaussian white noise: -3 dB/octave within 0.05 dB across the band. The
 * first 0.5 s is discarded so the slowest section has settled. */
void pink_noise(uint64_t seed, float *out, int64_t n) {
    Rng r;
    rng_seed(&r, seed);
    double b[7] = {0};
    int64_t warm = STIM_RATE / 2;
    for (int64_t i = -warm; i < n; i++) {
        double w = rng_normal(&r);
        b[0] = 0.99886 * b[0] + w * 0.0555179;
        b[1] = 0.99332 * b[1] + w * 0.0750759;
        b[2] = 0.96900 * b[2] + w * 0.1538520;
        b[3] = 0.86650 * b[3] + w * 0.3104856;
        b[4] = 0.55000 * b[4] + w * 0.5329522;
        b[5] = -0.7616 * b[5] - w * 0.0168980;
        double p = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
        b[6] = w * 0.115926;
        if (i >= 0) out[i] = (float)p;
    }
}

static void scale(float *x, int64_t n, double g) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(x[i] * g);
}

#define PEAK_MAX 0.99 /* every clip sample stays inside [-1, 1] with margin */
#define LIMIT_HALF 100 /* 5 ms look-ahead and release, at 20 kHz */

/* Gain that brings |x| down to `level` around each peak: the minimum of
 * the needed gain over +-5 ms, then a +-5 ms moving average. The average
 * at i includes only minima over windows containing i, so it never
 * exceeds the gain sample i needs, and it has no steps (no clicks). */
static void limiter_gain(const float *x, double level, float *g) {
    int64_t n = STIM_SAMPLES, h = LIMIT_HALF;
    float *need = xmalloc((size_t)n * sizeof *need), *mins = xmalloc((size_t)n * sizeof *mins);
    for (int64_t i = 0; i < n; i++) need[i] = fabsf(x[i]) > level ? (float)(level / fabsf(x[i])) : 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float m = 1.0f;
        for (int64_t j = i - h; j <= i + h; j++)
            if (j >= 0 && j < n && need[j] < m) m = need[j];
        mins[i] = m;
    }
    double sum = 0;
    for (int64_t j = -h; j <= h; j++) sum += j >= 0 && j < n ? mins[j] : 1.0;
    for (int64_t i = 0; i < n; i++) {
        g[i] = (float)(sum / (2 * h + 1));
        int64_t out = i - h, in = i + h + 1;
        sum += (in < n ? mins[in] : 1.0) - (out >= 0 ? mins[out] : 1.0);
    }
    free(need);
    free(mins);
}

static double peak(const float *x) {
    double p = 0;
    for (int64_t i = 0; i < STIM_SAMPLES; i++) p = fmax(p, fabs(x[i]));
    return p;
}

void limit_peaks(float *target, float *noise, double snr_db, float *mix) {
    float *g = NULL;
    for (int iter = 0; iter < 20 && peak(mix) > PEAK_MAX; iter++) {
        if (!g) g = xmalloc(STIM_SAMPLES * sizeof *g);
        limiter_gain(mix, 0.95 * PEAK_MAX, g);
        for (int64_t i = 0; i < STIM_SAMPLES; i++) {
            target[i] *= g[i];
            if (noise) noise[i] *= g[i];
        }
        if (noise) { /* the gain dips where the peaks were: restore the SNR exactly */
            double now = 20 * log10(audio_rms(target, STIM_SAMPLES) / audio_rms(noise, STIM_SAMPLES));
            scale(noise, STIM_SAMPLES, pow(10.0, (now - snr_db) / 20.0));
        }
        for (int64_t i = 0; i < STIM_SAMPLES; i++) mix[i] = target[i] + (noise ? noise[i] : 0.0f);
        double r = STIM_RMS / audio_rms(mix, STIM_SAMPLES);
        scale(target, STIM_SAMPLES, r);
        if (noise) scale(noise, STIM_SAMPLES, r);
        for (int64_t i = 0; i < STIM_SAMPLES; i++) mix[i] = target[i] + (noise ? noise[i] : 0.0f);
    }
    free(g);
}

int mix_at_snr(float *target, float *noise, double snr_db, float *mix, Error *err) {
    double rt = audio_rms(target, STIM_SAMPLES);
    if (!(rt > 0)) return error_set(err, "silent target");
    scale(target, STIM_SAMPLES, 1.0 / rt);
    if (noise) {
        double rn = audio_rms(noise, STIM_SAMPLES);
        if (!(rn > 0)) return error_set(err, "silent background");
        scale(noise, STIM_SAMPLES, pow(10.0, -snr_db / 20.0) / rn);
    }
    for (int64_t i = 0; i < STIM_SAMPLES; i++) mix[i] = target[i] + (noise ? noise[i] : 0.0f);
    double g = STIM_RMS / audio_rms(mix, STIM_SAMPLES);
    scale(target, STIM_SAMPLES, g);
    if (noise) scale(noise, STIM_SAMPLES, g);
    /* re-summed after scaling so mix == target + noise exactly in float */
    for (int64_t i = 0; i < STIM_SAMPLES; i++) mix[i] = target[i] + (noise ? noise[i] : 0.0f);
    limit_peaks(target, noise, snr_db, mix);
    return 0;
}
