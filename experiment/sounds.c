/* Sounds the runner makes itself, at the output rate: the calibration noise
 * and the two headphone screening tests of DESIGN.md.
 *
 * Woods et al. 2017: three 200 Hz tones of 1 s with 100 ms ramps, 0.5 s
 * apart; one is 6 dB softer (the target), one is at full level with the two
 * ears in opposite polarity. Over loudspeakers the anti-phase tone cancels
 * and sounds softest, so only a headphone listener finds the target reliably.
 *
 * Milne et al. 2021 (Huggins pitch): three 1 s white noises 1 s apart,
 * identical in both ears except that in the target the band 600 Hz +- 6% is
 * phase-inverted in one ear; over headphones a faint tone is heard in that
 * noise, over loudspeakers nothing. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const double TWO_PI = 6.283185307179586;

/* Raised-cosine on- and off-ramps (avoid clicks). */
static void ramp(float *x, int64_t n, int channels, int64_t ramp_n) {
    for (int64_t i = 0; i < ramp_n && i < n / 2; i++) {
        float g = (float)(0.5 - 0.5 * cos(3.14159265358979 * (double)i / (double)ramp_n));
        for (int c = 0; c < channels; c++) {
            x[i * channels + c] *= g;
            x[(n - 1 - i) * channels + c] *= g;
        }
    }
}

static void alloc_sound(Sound *s, int64_t frames, int channels) {
    s->frames = frames;
    s->channels = channels;
    s->x = alloc_floats((size_t)(frames * channels));
    memset(s->x, 0, sizeof(float) * (size_t)(frames * channels));
}

void exp_sound_noise(Sound *s, int rate, double seconds, double rms, uint64_t seed) {
    alloc_sound(s, (int64_t)(seconds * rate), 1);
    ExpRng r;
    exprng_seed(&r, seed, 0x6e6f697365ull, 0);
    for (int64_t i = 0; i < s->frames; i++) s->x[i] = (float)(rms * exprng_normal(&r));
    ramp(s->x, s->frames, 1, rate / 100);
}

void exp_sound_woods(Sound *s, int rate, double rms, int softer, int antiphase) {
    int64_t tone = rate, gap = rate / 2;
    alloc_sound(s, 3 * tone + 2 * gap, 2);
    for (int k = 0; k < 3; k++) {
        double amp = rms * sqrt(2.0) * (k == softer ? 0.5 : 1.0); /* -6 dB */
        float *x = s->x + 2 * k * (tone + gap);
        for (int64_t i = 0; i < tone; i++) {
            float v = (float)(amp * sin(TWO_PI * 200.0 * (double)i / rate));
            x[2 * i] = v;
            x[2 * i + 1] = k == antiphase ? -v : v;
        }
        ramp(x, tone, 2, rate / 10);
    }
}

int exp_sound_huggins(Sound *s, int rate, double rms, int target, uint64_t seed, Error *err) {
    int64_t n = rate, gap = rate;
    if (rate < 2000) return error_set(err, "Huggins pitch needs a rate of at least 2 kHz");
    alloc_sound(s, 3 * n + 2 * gap, 2);
    float *noise = fftwf_alloc_real((size_t)n);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)n / 2 + 1);
    fftwf_plan fwd = fftwf_plan_dft_r2c_1d((int)n, noise, spec, FFTW_ESTIMATE);
    fftwf_plan inv = fftwf_plan_dft_c2r_1d((int)n, spec, noise, FFTW_ESTIMATE);
    ExpRng r;
    exprng_seed(&r, seed, 0x68756767ull, 0);
    for (int k = 0; k < 3; k++) {
        float *x = s->x + 2 * k * (n + gap);
        for (int64_t i = 0; i < n; i++) noise[i] = (float)(rms * exprng_normal(&r));
        for (int64_t i = 0; i < n; i++) x[2 * i] = x[2 * i + 1] = noise[i];
        if (k == target) { /* right ear: invert the band 600 Hz +- 6% */
            fftwf_execute(fwd);
            for (int64_t b = 0; b <= n / 2; b++) {
                double f = (double)b * rate / n;
                float sign = (f >= 600 * 0.94 && f <= 600 * 1.06) ? -1.f : 1.f;
                spec[b][0] *= sign / (float)n;
                spec[b][1] *= sign / (float)n;
            }
            fftwf_execute(inv);
            for (int64_t i = 0; i < n; i++) x[2 * i + 1] = noise[i];
        }
        ramp(x, n, 2, rate / 100);
    }
    fftwf_destroy_plan(fwd);
    fftwf_destroy_plan(inv);
    fftwf_free(noise);
    fftwf_free(spec);
    return 0;
}

void exp_screening_plan(uint64_t seed, int trial, int *target, int *antiphase) {
    ExpRng r;
    exprng_seed(&r, seed, (uint64_t)trial, 0x73637265656eull);
    *target = (int)exprng_below(&r, 3);
    *antiphase = (*target + 1 + (int)exprng_below(&r, 2)) % 3;
}
