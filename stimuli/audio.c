/* Audio file I/O: libsndfile for reading/writing, libsoxr for resampling.
 * See stimuli.h for the contract; the comments here say why it is done so. */
#include "stimuli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Frames per read/convert chunk: big enough to amortize library calls, small
 * enough that the scratch buffer stays in cache even for many channels. */
#define CHUNK_FRAMES 4096

/* Longest file we read: a corrupt header can claim any length, and
 * alloc_floats aborts rather than fails, so refuse absurd sizes up front.
 * 2^31 frames is over 13 hours at 44.1 kHz (8 GiB as float). */
#define MAX_READ_FRAMES ((int64_t)INT32_MAX)

/* WAV sizes are 32-bit; leave room for the header chunks. */
#define MAX_WAV_DATA_BYTES ((int64_t)UINT32_MAX - 4096)

/* Callers want exactly one line that names the file; lower layers (core's
 * AtomicFile) may or may not have named it already. */
static int name_file(Error *err, const char *path) {
    if (!strstr(err->msg, path)) error_prefix(err, "%s", path);
    return -1;
}

/* ------------------------------------------------------------- reading */

/* libsndfile says "System error : No such file or directory." for a missing
 * file and "Format not recognised." for a directory or a 0-byte file; say
 * what is wrong in plain words, and give libsndfile's reason only for a file
 * that exists and is not audio it can decode. */
static SNDFILE *open_for_read(const char *path, SF_INFO *info, Error *err) {
    memset(info, 0, sizeof *info);
    SNDFILE *sf = sf_open(path, SFM_READ, info);
    if (sf) return sf;
    const char *why = sf_strerror(NULL);
    struct stat st;
    FILE *probe = fopen(path, "rb");
    if (!probe || stat(path, &st) != 0)
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        error_set(err, "%s: is a directory, not an audio file", path);
    else if (S_ISREG(st.st_mode) && st.st_size == 0)
        error_set(err, "%s: empty file (0 bytes)", path);
    else
        error_set(err, "%s: not a readable audio file: %s", path, why);
    if (probe) fclose(probe);
    return NULL;
}

/* Reports the first non-finite sample in the file's own terms (frame index,
 * channel, time at the file's rate): that is what a user can look up. */
static int bad_sample_error(Error *err, const char *path, float v, int64_t frame, int channel,
                            int channels, int rate) {
    const char *what = isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
    double t = (double)frame / rate;
    if (channels > 1)
        return error_set(err, "%s: sample %lld (channel %d, %.6f s) is %s", path,
                         (long long)frame, channel + 1, t, what);
    return error_set(err, "%s: sample %lld (%.6f s) is %s", path, (long long)frame, t, what);
}

/* Mixes m interleaved frames of `channels` into out[0..m) (mean, in double
 * so many channels do not lose precision), checking every raw sample: a NaN
 * in one channel must be reported even though the mean hides nothing. */
static int mix_chunk(const float *in, int64_t m, int channels, float *out, int64_t first_frame,
                     int rate, const char *path, Error *err) {
    for (int64_t i = 0; i < m; i++) {
        const float *fr = in + i * channels;
        double acc = 0;
        for (int c = 0; c < channels; c++) {
            if (!isfinite(fr[c]))
                return bad_sample_error(err, path, fr[c], first_frame + i, c, channels, rate);
            acc += fr[c];
        }
        out[i] = channels == 1 ? fr[0] : (float)(acc / channels);
    }
    return 0;
}

/* Reads the whole file as mono. A file may hold fewer frames than its header
 * claims (some compressed formats only estimate); what was decoded counts. */
/* The buffer grows with what is decoded rather than trusting the header's
 * frame count: a 100-byte file may claim 2^31 frames. */
static float *grow_floats(float *x, int64_t used, int64_t *cap, int64_t need, int64_t max) {
    if (need <= *cap) return x;
    int64_t c = *cap;
    while (c < need) c = c > max / 2 ? max : 2 * c;
    float *grown = alloc_floats((size_t)c);
    if (used) memcpy(grown, x, (size_t)used * sizeof(float));
    free(x);
    *cap = c;
    return grown;
}

static int read_mono(SNDFILE *sf, const SF_INFO *info, const char *path, float **out,
                     int64_t *n_out, Error *err) {
    int64_t frames = info->frames, got = 0;
    int64_t cap = frames < (1 << 20) ? frames : (1 << 20);
    int ch = info->channels;
    float *mono = alloc_floats((size_t)cap);
    float *tmp = xmalloc((size_t)CHUNK_FRAMES * (size_t)ch * sizeof(float));
    int rc = 0;
    while (got < frames && rc == 0) {
        sf_count_t want = frames - got < CHUNK_FRAMES ? frames - got : CHUNK_FRAMES;
        mono = grow_floats(mono, got, &cap, got + want, frames);
        sf_count_t r = sf_readf_float(sf, tmp, want);
        if (r <= 0) break;
        rc = mix_chunk(tmp, r, ch, mono + got, got, info->samplerate, path, err);
        got += r;
    }
    free(tmp);
    if (rc == 0 && sf_error(sf) != SF_ERR_NO_ERROR)
        rc = error_set(err, "%s: read error after %lld samples: %s", path, (long long)got,
                       sf_strerror(sf));
    if (rc == 0 && got == 0) rc = error_set(err, "%s: no audio samples (empty file)", path);
    if (rc != 0) {
        free(mono);
        return -1;
    }
    *out = mono;
    *n_out = got;
    return 0;
}

static int check_info(const SF_INFO *info, const char *path, Error *err) {
    if (info->frames <= 0) return error_set(err, "%s: no audio samples (empty file)", path);
    if (info->samplerate <= 0)
        return error_set(err, "%s: invalid sample rate %d", path, info->samplerate);
    if (info->channels <= 0)
        return error_set(err, "%s: invalid channel count %d", path, info->channels);
    if (info->frames > MAX_READ_FRAMES)
        return error_set(err, "%s: too long (%lld samples, at most %lld)", path,
                         (long long)info->frames, (long long)MAX_READ_FRAMES);
    return 0;
}

static int check_length(const Audio *a, int64_t expect, const char *path, Error *err) {
    if (expect <= 0 || a->n == expect) return 0;
    return error_set(err, "%s: %lld samples at %d Hz, expected %lld (%.3f s)", path,
                     (long long)a->n, a->rate, (long long)expect, (double)expect / a->rate);
}

int audio_read(const char *path, int target_rate, int64_t expect_samples, Audio *out,
               Error *err) {
    memset(out, 0, sizeof *out);
    SF_INFO info;
    SNDFILE *sf = open_for_read(path, &info, err);
    if (!sf) return -1;
    Audio a = {NULL, 0, info.samplerate};
    int rc = check_info(&info, path, err);
    if (rc == 0) rc = read_mono(sf, &info, path, &a.samples, &a.n, err);
    sf_close(sf);
    if (rc != 0) return -1;

    /* NaN/Inf were rejected above, in the file's own time base; only now
     * resample, since a NaN would smear over the whole filter length. */
    if (target_rate > 0 && target_rate != a.rate) {
        int64_t n_file = a.n;
        float *res;
        int64_t res_n;
        if (audio_resample(a.samples, a.n, a.rate, target_rate, &res, &res_n, err) != 0) {
            free(a.samples);
            return error_prefix(err, "%s", path);
        }
        free(a.samples);
        a = (Audio){res, res_n, target_rate};
        if (res_n == 0) {
            free(res);
            return error_set(err, "%s: too short: %lld samples at %d Hz give none at %d Hz",
                             path, (long long)n_file, info.samplerate, target_rate);
        }
    }
    if (check_length(&a, expect_samples, path, err) != 0) {
        free(a.samples);
        return -1;
    }
    *out = a;
    return 0;
}

void audio_free(Audio *a) {
    if (!a) return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}

/* ----------------------------------------------------------- resampling */

/* round(n * to / from), half up, in integers so long inputs are exact. */
static int resampled_length(int64_t n, int from, int to, int64_t *len, Error *err) {
    if (n > INT64_MAX / to)
        return error_set(err, "resampling %lld samples: too long", (long long)n);
    int64_t q = n * to;
    *len = q / from + (2 * (q % from) >= from ? 1 : 0);
    return 0;
}

int audio_resample(const float *in, int64_t n, int from_rate, int to_rate, float **out,
                   int64_t *out_n, Error *err) {
    *out = NULL;
    *out_n = 0;
    if (from_rate <= 0 || to_rate <= 0)
        return error_set(err, "resampling %d -> %d Hz: sample rates must be positive",
                         from_rate, to_rate);
    if (n < 0 || (n > 0 && !in))
        return error_set(err, "resampling: invalid input (%lld samples)", (long long)n);
    int64_t len = 0;
    if (resampled_length(n, from_rate, to_rate, &len, err) != 0) return -1;
    /* Allocate at least one float so *out is always free()-able and non-NULL. */
    float *buf = alloc_floats((size_t)(len > 0 ? len : 1));
    if (from_rate == to_rate) {
        if (n > 0) memcpy(buf, in, (size_t)n * sizeof(float));
    } else if (len > 0) {
        /* VHQ: 28-bit precision, flat passband to ~91% of the lower Nyquist;
         * one thread: identical output everywhere, and callers parallelize
         * over clips anyway. soxr_oneshot flushes and removes the filter
         * delay, so output sample k is at time k / to_rate. */
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
        soxr_runtime_spec_t rt = soxr_runtime_spec(1);
        size_t idone = 0, odone = 0;
        soxr_error_t e = soxr_oneshot(from_rate, to_rate, 1, in, (size_t)n, &idone, buf,
                                      (size_t)len, &odone, &io, &q, &rt);
        if (e) {
            free(buf);
            return error_set(err, "resampling %d -> %d Hz: %s", from_rate, to_rate, e);
        }
        /* soxr produces round(n * ratio) itself; pad defensively so the
         * promised length always holds. */
        if ((int64_t)odone < len)
            memset(buf + odone, 0, (size_t)(len - (int64_t)odone) * sizeof(float));
    }
    *out = buf;
    *out_n = len;
    return 0;
}

/* -------------------------------------------------------------- writing */

static int check_write_args(const char *path, const float *samples, int64_t frames,
                            int channels, int rate, AudioFormat fmt, Error *err) {
    if (channels < 1 || channels > 1024)
        return error_set(err, "%s: cannot write %d channels", path, channels);
    if (rate <= 0) return error_set(err, "%s: invalid sample rate %d", path, rate);
    if (fmt != AUDIO_FLOAT32 && fmt != AUDIO_PCM16)
        return error_set(err, "%s: unknown audio format %d", path, (int)fmt);
    if (frames < 0 || (frames > 0 && !samples))
        return error_set(err, "%s: invalid buffer (%lld frames)", path, (long long)frames);
    int64_t bytes_per = fmt == AUDIO_FLOAT32 ? 4 : 2;
    if (frames > MAX_WAV_DATA_BYTES / bytes_per / channels)
        return error_set(err, "%s: %lld frames x %d channels is too large for a WAV file",
                         path, (long long)frames, channels);
    return 0;
}

/* The reader rejects NaN/Inf, so writing them would only defer the error to
 * a later step far from its cause. Checked before any file is created. */
static int check_finite(const char *path, const float *x, int64_t frames, int channels,
                        int rate, Error *err) {
    for (int64_t i = 0; i < frames * channels; i++)
        if (!isfinite(x[i]))
            return bad_sample_error(err, path, x[i], i / channels, (int)(i % channels),
                                    channels, rate);
    return 0;
}

/* x -> round(x * 32768) clamped to int16. Scale 32768 (not 32767) because
 * libsndfile reads PCM16 as v / 32768, so PCM16 clips survive read -> write
 * bit-exactly. +1.0 lands on 32767 (1/32768 below): saturation, not clipping,
 * since synthesis clamps waveforms to [-1, 1] and that is not an error. */
static short to_pcm16(float x, int64_t *clipped) {
    if (x > 1.0f || x < -1.0f) (*clipped)++;
    double v = nearbyint((double)x * 32768.0);
    if (v > 32767.0) v = 32767.0;
    if (v < -32768.0) v = -32768.0;
    return (short)v;
}

static sf_count_t write_pcm16(SNDFILE *sf, const float *x, int64_t frames, int channels,
                              int64_t *clipped) {
    short *buf = xmalloc((size_t)CHUNK_FRAMES * (size_t)channels * sizeof(short));
    sf_count_t done = 0;
    while (done < frames) {
        sf_count_t m = frames - done < CHUNK_FRAMES ? frames - done : CHUNK_FRAMES;
        const float *src = x + done * channels;
        for (sf_count_t i = 0; i < m * channels; i++) buf[i] = to_pcm16(src[i], clipped);
        sf_count_t w = sf_writef_short(sf, buf, m);
        done += w > 0 ? w : 0;
        if (w != m) break; /* short write: disk full or file size limit */
    }
    free(buf);
    return done;
}

/* Streams the samples into an already opened temp file descriptor. */
static int write_wav_fd(int fd, const char *path, const float *samples, int64_t frames,
                        int channels, int rate, AudioFormat fmt, int64_t *clipped, Error *err) {
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = channels;
    info.format = SF_FORMAT_WAV | (fmt == AUDIO_FLOAT32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
    /* close_desc = 0: the AtomicFile owns the descriptor (fsync + rename). */
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, 0);
    if (!sf) return error_set(err, "%s: cannot write WAV: %s", path, sf_strerror(NULL));
    /* The PEAK chunk carries a timestamp; without it, the same samples give
     * the same bytes, so outputs can be compared by hash. */
    sf_command(sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    sf_count_t done = fmt == AUDIO_FLOAT32 ? sf_writef_float(sf, samples, frames)
                                           : write_pcm16(sf, samples, frames, channels, clipped);
    int rc = 0;
    if (done != frames)
        rc = error_set(err, "%s: write failed after %lld of %lld frames: %s", path,
                       (long long)done, (long long)frames, sf_strerror(sf));
    /* sf_close rewrites the header with the final sizes; its failure means
     * a corrupt file even if every sample was written. */
    int close_rc = sf_close(sf);
    if (rc == 0 && close_rc != 0)
        rc = error_set(err, "%s: finishing WAV header: %s", path, sf_error_number(close_rc));
    return rc;
}

int audio_write_wav(const char *path, const float *samples, int64_t frames, int channels,
                    int rate, AudioFormat fmt, int64_t *n_clipped, Error *err) {
    int64_t clipped = 0;
    if (n_clipped) *n_clipped = 0;
    if (check_write_args(path, samples, frames, channels, rate, fmt, err) != 0) return -1;
    if (check_finite(path, samples, frames, channels, rate, err) != 0) return -1;
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return name_file(err, path);
    if (write_wav_fd(fileno(af.f), path, samples, frames, channels, rate, fmt, &clipped,
                     err) != 0) {
        atomic_abort(&af);
        return -1;
    }
    if (atomic_commit(&af, err) != 0) return name_file(err, path);
    if (n_clipped) *n_clipped = clipped;
    return 0;
}

/* --------------------------------------------------------------- levels */

double audio_rms(const float *x, int64_t n) {
    if (n <= 0) return 0;
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    return sqrt(acc / (double)n);
}

void audio_scale_to_rms(float *x, int64_t n, double target_rms) {
    double rms = audio_rms(x, n);
    /* Silence has no level to scale; a non-finite RMS would poison every
     * sample. Both are left alone rather than turned into NaN. */
    if (rms == 0 || !isfinite(rms)) return;
    double gain = target_rms / rms;
    for (int64_t i = 0; i < n; i++) x[i] = (float)(x[i] * gain);
}
