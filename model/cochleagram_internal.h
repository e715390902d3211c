/* The cochleagram's internals, shared by its two files (model/ only):
 * cochleagram_setup.c builds filters, windows and FFTW plans and owns the
 * memory; cochleagram.c has the hot kernels and the passes. */
#ifndef MODEL_COCHLEAGRAM_INTERNAL_H
#define MODEL_COCHLEAGRAM_INTERNAL_H

#include <fftw3.h>

#include "model.h"

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
    char plans_id[17]; /* first 16 hex of sha256 of the wisdom planned from */
    /* Envelope sampling. Exact (cochleagram_create): every channel uses
     * rates[0], every sample. Reduced (cochleagram_create_reduced): channel
     * ch uses rates[env_rate[ch]], whose analytic signal is computed only at
     * every step-th sample, exactly, by an (N/step)-point inverse FFT of the
     * band folded modulo N/step, and downsampled by the window sampled at
     * that step. */
    struct EnvRate {
        int step, taps;  /* taps = (W - 1)/step + 1 */
        fftwf_plan plan; /* N/step points; rates[0] borrows ifft */
        float *win;      /* rates[0] borrows win */
    } rates[16];
    int n_rates;
    int *env_rate; /* per channel: index into rates */
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

void cochleagram_pick_kernels(Cochleagram *c);

#endif
