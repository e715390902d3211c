/* stimuli: everything about the sound files the suite reads and writes.
 *
 * The audio I/O layer (audio.c):
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

/* ------------------------------------------------------- stimulus sets
 *
 * A stimulus set is a folder with manifest.csv and clips/<clip_id>.wav (20 kHz mono
 * float32 WAV, 2 s = 40000 samples, RMS 0.1). `metamers stimuli build`
 * synthesizes one from Debian packages (espeak-ng, flite, festival for the
 * word task; MMA grooves rendered by fluidsynth for the genre task);
 * `metamers stimuli import` turns a lab's own recordings into one.
 *
 * manifest.csv columns (header row required, any order, no others):
 *   clip_id           unique, [A-Za-z0-9._-]
 *   path              clip file, relative to the manifest's folder
 *   task              "word" or "genre" (imports may use any task name)
 *   label             the word or the genre
 *   source            what made the target: "espeak-ng", "flite", "festival",
 *                     "mma:<groove>", "import"
 *   speaker_or_style  the split unit: a voice ("espeak-ng:en-us+Alex") or a
 *                     song ("song:rock-test-02"); never shared by two splits
 *   snr_db            target-to-background level in dB over the whole clip,
 *                     or "inf" for a clean clip (the writer always writes
 *                     "inf"; the reader also accepts an empty field)
 *   noise             background: none, babble, pink, white, music, speech
 *   split             "train" or "test" (imports may use any name)
 *   seed              the build seed (empty for imports)
 */
#define STIM_RATE 20000
#define STIM_SAMPLES 40000 /* 2 s */
#define STIM_RMS 0.1

/* ------------------------------------------------------------- manifest */

#define MANIFEST_N_COLUMNS 10
extern const char *const manifest_columns[MANIFEST_N_COLUMNS];

typedef struct {
    char *clip_id, *path, *task, *label, *source, *speaker_or_style, *noise, *split;
    double snr_db; /* INFINITY for clean */
    int64_t seed;  /* -1 when empty (imports) */
} ManifestRow;

typedef struct {
    ManifestRow *rows;
    int n, cap;
    char *dir; /* folder of the manifest file (NULL: "."); paths are relative to it */
} Manifest;

/* Reads and validates a manifest: header has exactly the ten columns (any
 * order), every row has ten fields, clip_ids are unique and well-formed,
 * path/task/label/split are non-empty, snr_db is a number or "inf"/empty,
 * seed an integer or empty. Errors are one line, "file:line: problem". */
int manifest_read(const char *path, Manifest *m, Error *err);
/* Every row's path stays in the manifest's folder (core's
 * path_check_inside): manifest_read calls it; path names the file in the
 * message. */
int manifest_check_paths(const Manifest *m, const char *path, Error *err);
/* Writes the columns in the order above, quoting fields where CSV needs it,
 * atomically (temp file, fsync, rename). */
int manifest_write(const char *path, const Manifest *m, Error *err);
void manifest_init(Manifest *m);
void manifest_free(Manifest *m);
/* Appends a deep copy of row. */
void manifest_add(Manifest *m, const ManifestRow *row);
/* Index of clip_id, or -1. Linear scan. */
int manifest_find(const Manifest *m, const char *clip_id);
/* The clip's file path: row->path joined to m->dir unless absolute.
 * Returns a malloc'ed string. */
char *manifest_clip_path(const Manifest *m, const ManifestRow *row);
/* Exactly equal rows (all strings, snr_db, seed). */
int manifest_row_equal(const ManifestRow *a, const ManifestRow *b);
void manifest_row_free(ManifestRow *r);
/* "inf" or the shortest "%g" form that reads back exactly. */
void manifest_format_snr(double snr_db, char *buf, size_t size);

/* ----------------------------------------------------------- vocabulary */

/* The word task's vocabulary (sorted, lower case, no homophone pairs). The
 * experiment's answer dictionary can use it as is. */
int stimuli_vocabulary_size(void);
const char *stimuli_vocabulary_word(int i);
int stimuli_vocabulary_index(const char *word); /* -1 if absent */

/* The genre task's labels, in class order. */
int stimuli_genre_count(void);
const char *stimuli_genre_name(int i);

/* ------------------------------------------------------------- commands */

/* `metamers stimuli build|import ...` (argv[0] = "stimuli"): dispatches to
 * the two below. */
int stimuli_cmd(int argc, char **argv);

/* `metamers stimuli build --recipe R --out DIR [--seed N] [--jobs N] ...`
 * argv[0] is the subcommand name ("build"); --help prints usage. Errors
 * print one line "metamers: ..." and return non-zero. */
int stimuli_cmd_build(int argc, char **argv);
/* `metamers stimuli import --dir D --labels labels.csv --out DIR` */
int stimuli_cmd_import(int argc, char **argv);

#endif
