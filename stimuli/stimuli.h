/* stimuli: everything about the sound files the suite reads and writes.
 *
 * For now this is the audio I/O layer (audio.c):
 * - audio_read: any file libsndfile reads (WAV, FLAC, OGG, ...), mixed to mono
 *   float32 and optionally resampled with libsoxr at very high quality, with
 *   one-line errors that name the file (unreadable, empty, NaN/Inf, length).
 * - audio_resample: the same resampler on a buffer (e.g. to a device's rate).
 * - audio_write_wav: float32 or 16-bit PCM WAV, written atomically (temp file
 *   in the same directory, fsync, rename) so a crash or a full disk never
 *   leaves a half-written or truncated clip.
 * - level helpers (RMS) the synthesis and experiment modules share.
 *
 * Sample buffers are allocated with alloc_floats (64-byte aligned) and freed
 * with free() (or audio_free for an Audio). Error pointers must be non-NULL.
 */
#ifndef STIMULI_H
#define STIMULI_H

#include "../core/core.h"

/* ----------------------------------------------------------------- audio */

/* A mono float32 signal. samples is NULL only when n == 0. */
typedef struct {
    float *samples;
    int64_t n;
    int rate; /* Hz */
} Audio;

/* Reads any file libsndfile reads, mixes channels to mono (mean of the
 * channels) and, if target_rate > 0 and differs from the file's rate,
 * resamples with libsoxr (SOXR_VHQ) to round(n * target_rate / file_rate)
 * samples. NaN/Inf samples are rejected before resampling, so the message
 * names the index, channel and time in the original file. If
 * expect_samples > 0 the final length (after resampling) must equal it.
 * On error returns -1, *out is zeroed and err holds one line starting with
 * the path, e.g. "x.wav: 39000 samples at 20000 Hz, expected 40000 (2.000 s)". */
int audio_read(const char *path, int target_rate, int64_t expect_samples, Audio *out,
               Error *err);
/* Frees the samples and zeroes *a (safe on a zeroed or already freed Audio). */
void audio_free(Audio *a);

/* Resamples a mono buffer with libsoxr (SOXR_VHQ, delay compensated, one
 * thread so results do not depend on the machine). Output length is
 * round(n * to_rate / from_rate); equal rates copy. *out is allocated with
 * alloc_floats (free with free()) even when *out_n == 0. */
int audio_resample(const float *in, int64_t n, int from_rate, int to_rate, float **out,
                   int64_t *out_n, Error *err);

typedef enum {
    AUDIO_FLOAT32, /* IEEE float WAV: exact, the suite's working format */
    AUDIO_PCM16,   /* 16-bit PCM: for devices and sharing */
} AudioFormat;

/* Writes `frames` frames of `channels` interleaved samples as a WAV file,
 * atomically: the bytes go to a temp file in the same directory, which is
 * fsync'ed and renamed over path only when complete, so on any error (full
 * disk, missing directory) path is untouched and no temp file remains.
 * PCM16 maps x to round(x * 32768) clamped to [-32768, 32767] (no dither, so
 * output is deterministic; the scale matches libsndfile's reading, so PCM16
 * survives read -> write unchanged); samples outside [-1, 1] are clipped and
 * counted in *n_clipped when non-NULL (always 0 for float32). NaN/Inf
 * samples are an error (the reader would reject the file). The output bytes
 * depend only on the arguments (no timestamped PEAK chunk). */
int audio_write_wav(const char *path, const float *samples, int64_t frames, int channels,
                    int rate, AudioFormat fmt, int64_t *n_clipped, Error *err);

/* Root mean square (double accumulation); 0 for n == 0. */
double audio_rms(const float *x, int64_t n);
/* Scales x so its RMS equals target_rms; no-op on silence (RMS 0). */
void audio_scale_to_rms(float *x, int64_t n, double target_rms);

#endif
