/* model: the auditory front end (cochleagram) and the network engine.
 *
 * Front end: ERB-spaced half-cosine filterbank applied in the frequency domain,
 * Hilbert envelopes, sinc-Kaiser downsampling, power compression, with an
 * exact vector-Jacobian product (cochleagram_backward). The reference is
 * chcochleagram's `cochleagram_1` (Feather et al. 2023), see DESIGN.md.
 */
#ifndef MODEL_H
#define MODEL_H

#include "../core/core.h"

/* ------------------------------------------------------------- front end */

typedef struct {
    int sr;            /* input sample rate, Hz */
    int signal_size;   /* samples per clip */
    int n;             /* ERB-spaced band-pass filters before oversampling */
    double low_lim;    /* Hz */
    double high_lim;   /* Hz */
    int sample_factor; /* filter oversampling: 1, 2 or 4 */
    bool full_filter;  /* true: filters cover the two-sided spectrum */
    int env_sr;        /* envelope rate after downsampling, Hz */
    int window_size;   /* sinc-Kaiser downsampling taps */
    double kaiser_beta;
    double comp_scale;  /* compression: y = (scale*relu(x) + offset)^power */
    double comp_offset;
    double comp_power;
    double comp_clip;   /* |dy/dx| is clipped to this in backward */
} FrontEndConfig;

/* Named presets: "cochleagram_1" (DESIGN.md) and smaller ones for tests. */
int front_end_config_preset(const char *name, FrontEndConfig *cfg, Error *err);
/* Parses the `front_end` JSON schema of the golden files / model metadata. */
int front_end_config_from_json(const char *json, FrontEndConfig *cfg, Error *err);
/* Same schema back; malloc'd string. */
char *front_end_config_to_json(const FrontEndConfig *cfg);

typedef struct Cochleagram Cochleagram;         /* filters, window, FFT plans */
typedef struct CochleagramWork CochleagramWork; /* per-clip buffers, saved state */

/* Builds filters and FFTW plans once. Errors name the bad parameter. */
Cochleagram *cochleagram_create(const FrontEndConfig *cfg, Error *err);
void cochleagram_free(Cochleagram *c);
int cochleagram_channels(const Cochleagram *c); /* e.g. 211 */
int cochleagram_frames(const Cochleagram *c);   /* e.g. 390 */
int cochleagram_samples(const Cochleagram *c);  /* e.g. 40000 */
const FrontEndConfig *cochleagram_config(const Cochleagram *c);

/* Buffers for one clip at a time, for up to n_workers pool workers. Several
 * works on one Cochleagram may run concurrently (plans are shared read-only). */
CochleagramWork *cochleagram_work_create(const Cochleagram *c, int n_workers);
void cochleagram_work_free(CochleagramWork *w);

/* out: channels x frames, row-major. Keeps in w what backward needs.
 * pool may be NULL (single thread). No allocation. */
void cochleagram_forward(const Cochleagram *c, CochleagramWork *w, Pool *pool,
                         const float *wave, float *out);
/* d_wave = (d out / d wave)^T d_out at the wave of the last forward on w. */
void cochleagram_backward(const Cochleagram *c, CochleagramWork *w, Pool *pool,
                          const float *d_out, float *d_wave);

#endif
