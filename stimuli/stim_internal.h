/* stimuli/stim_internal.h: what the stimulus-set builder's files share.
 * Not a public header: other modules use stimuli/dataset.h. */
#ifndef STIM_INTERNAL_H
#define STIM_INTERNAL_H

#include <stdint.h>

#include "stimuli.h"

/* --------------------------------------------------- external programs */

/* The external programs the builder runs, with the Debian package that
 * provides each one (named in the "not found" error). */
typedef enum { PROG_ESPEAK, PROG_FLITE, PROG_FESTIVAL, PROG_MMA, PROG_FLUIDSYNTH, N_PROGS } Prog;

const char *prog_name(Prog p);
const char *prog_package(Prog p);
/* Looks the program up on PATH (once; cached). Error names the package. */
int prog_require(Prog p, Error *err);
/* Runs argv (argv[0] = the program's name, looked up on PATH) with fork and
 * execve: no shell, so words and paths are never re-parsed. stdin is
 * /dev/null; stdout goes to stdout_path (or /dev/null); stderr is captured
 * and its first line quoted in the error. Kills the child after
 * timeout_s. The child's environment pins PYTHONHASHSEED and the locale so
 * tools behave the same on every run. */
int prog_run(Prog p, char *const argv[], const char *stdout_path, double timeout_s,
             Error *err);

/* ----------------------------------------------------------- randomness */

uint64_t hash_str(const char *s);            /* FNV-1a, 64 bit */
uint64_t hash_mix(uint64_t a, uint64_t b);   /* combines two hashes */
int rng_range(Rng *r, int lo, int hi);       /* uniform integer in [lo, hi] */
double rng_range_f(Rng *r, double lo, double hi);

/* The first n words in a fixed hash order, returned in vocabulary order. */
int vocabulary_select(int n, int *out);

/* ---------------------------------------------------------------- voices */

typedef enum { SPLIT_TRAIN, SPLIT_TEST, N_SPLITS } Split;
const char *split_name(Split s);

typedef enum { ENGINE_ESPEAK, ENGINE_FLITE, ENGINE_FESTIVAL, N_ENGINES } Engine;

typedef struct {
    Engine engine;
    char name[64];    /* the engine's voice: "en-us+Alex", "kal16", "kal_diphone" */
    char id[96];      /* speaker_or_style: "espeak-ng:en-us+Alex" */
    char speaker[64]; /* the split unit: espeak variant, or the recorded talker */
    Split split;
} Voice;

typedef struct {
    Voice *v;
    int n;
} VoiceList;

/* All voices: every espeak-ng variant (from `espeak-ng --voices=variant`)
 * with each English accent, flite's and festival's English voices. Splits
 * are a fixed function of the speaker, independent of the seed. */
int voices_list(VoiceList *out, Error *err);
void voices_free(VoiceList *vl);
/* The Debian package that holds a festival voice (for error messages). */
int festival_voice_check(const char *name, Error *err);

/* A voice speaking at one rate and pitch: one synthesis batch. */
typedef struct {
    int voice;     /* index into the VoiceList */
    int rate;      /* espeak: words/min; flite, festival: duration stretch in % */
    int pitch;     /* espeak: 0-99; others: 0 (engine default) */
    char key[160]; /* cache name, e.g. "espeak-ng_en-us+Alex_r170_p45" */
} Style;

void style_make_key(Style *s, const VoiceList *vl);

/* Renders `words` (vocabulary indices) in style s: the trimmed utterances at
 * 20 kHz, saved as one safetensors file (a tensor per word) at out_path.
 * tmp_dir holds the tools' scratch files. */
int style_render(const Style *s, const VoiceList *vl, const int *words, int n_words,
                 const char *tmp_dir, const char *out_path, Error *err);

/* Utterances kept in memory for assembly: per style, one buffer per
 * vocabulary word (NULL when that word was not needed). */
typedef struct {
    int n_styles, n_words;
    float **x;   /* x[style * n_words + word] */
    int64_t *n;  /* lengths */
} UttStore;

int utt_store_load(UttStore *st, int style, const char *path, const int *words, int n_words,
                   Error *err);
void utt_store_free(UttStore *st);

/* ----------------------------------------------------------------- music */

typedef struct {
    char id[48];      /* "rock-train-03" */
    int genre;
    Split split;
    char groove[40];
    int tempo, transpose, bars, progression;
    uint32_t mma_seed;
    int n_excerpts;   /* clips cut from it (genre task) */
    char key[96];     /* cache name: id plus a hash of the MMA source */
} Song;

/* Picks groove, tempo, key and chord progression for a song of genre g,
 * long enough for n_excerpts disjoint 2 s excerpts. */
void song_plan(Song *s, int genre, Split split, int index, int n_excerpts, Rng *rng);
/* MMA source text of the song (malloc'ed). */
char *song_mma_source(const Song *s);
/* Renders with mma + fluidsynth, resamples to 20 kHz mono, scales to RMS
 * 0.1 and writes out_path (float WAV). */
int song_render(const Song *s, const char *tmp_dir, const char *out_path, Error *err);
/* The soundfont fluidsynth uses (fluid-soundfont-gm). */
const char *soundfont_path(void);
int soundfont_check(Error *err);
const char *genre_groove_list(int genre); /* space-separated groove names */

/* ---------------------------------------------------------------- mixing */

typedef enum { NOISE_NONE, NOISE_BABBLE, NOISE_PINK, NOISE_WHITE, NOISE_MUSIC, NOISE_SPEECH,
               N_NOISE } NoiseKind;
const char *noise_name(NoiseKind k);

#define STREAM_MAX_WORDS 16
#define MAX_TALKERS 8

/* A 2 s speech track: words of one style laid end to end with short gaps,
 * either around a target word centred at 1 s (target >= 0: words[0] is the
 * target, then context words alternate before/after) or from a random start
 * (target < 0, background talkers). */
typedef struct {
    int style;
    int speed_milli; /* playback speed x1000 (resampling shifts rate and pitch) */
    int target;      /* 1 if words[0] is centred at 1 s */
    int n_words;
    int words[STREAM_MAX_WORDS];
    uint64_t seed;   /* gaps and start offset */
} Stream;

/* Renders a stream into out[STIM_SAMPLES] (zeroed first). */
int stream_render(const Stream *s, const UttStore *st, float *out, Error *err);
/* Sum of talkers, each scaled to unit RMS. */
int babble_render(const Stream *talkers, int n, const UttStore *st, float *out, Error *err);
void white_noise(uint64_t seed, float *out, int64_t n);
void pink_noise(uint64_t seed, float *out, int64_t n);
/* 2 s of a song (20 kHz): window `slot` of `n_slots` equal, disjoint slots
 * of the song without its first 1 s and last 1.5 s, at `jitter` (0..1)
 * inside the slot; n_slots = 1 picks anywhere (background music). */
int song_excerpt(const Audio *song, const char *name, int slot, int n_slots, double jitter,
                 float *out, Error *err);
/* Scales target to unit RMS and noise to 10^(-snr/20), sums, and scales all
 * three so the mix has RMS 0.1, then limits peaks to +-0.99 (limit_peaks).
 * noise may be NULL (clean). */
int mix_at_snr(float *target, float *noise, double snr_db, float *mix, Error *err);

/* If |mix| exceeds 0.99 anywhere: a 5 ms look-ahead limiter gain applied to
 * target and noise, the noise rescaled to keep snr_db, the mix re-summed
 * and its RMS restored to 0.1, repeated until the peak is below 0.99.
 * noise may be NULL (snr_db unused). */
void limit_peaks(float *target, float *noise, double snr_db, float *mix);

/* -------------------------------------------------------------- the plan */

typedef enum { TASK_WORD, TASK_GENRE } Task;

typedef struct {
    char id[24];
    Task task;
    Split split;
    int label; /* vocabulary or genre index */
    Stream speech;          /* word task */
    int song, slot;         /* genre task: song and excerpt slot */
    double jitter;          /* excerpt position inside its slot, 0..1 */
    NoiseKind noise;
    double snr_db;          /* INFINITY when clean */
    int n_talkers;
    Stream talkers[MAX_TALKERS]; /* babble / speech */
    int noise_song;         /* music background */
    double noise_pos;
    uint64_t noise_seed;    /* white / pink */
} ClipPlan;

typedef struct {
    const struct Recipe *recipe;
    uint64_t seed;
    VoiceList voices;
    int *vocab;   /* vocabulary indices used by the recipe */
    int n_vocab;
    int *genres;
    int n_genres;
    Style *styles;
    int n_styles;
    /* pool[style * n_all + word]: the words each style speaks (targets of
     * its clips plus filler for context and babble); n_all is the whole
     * vocabulary's size */
    unsigned char *pool;
    int n_all;
    Song *songs;
    int n_songs;
    ClipPlan *clips;
    int n_clips;
} Plan;

typedef struct Recipe {
    const char *name;
    const char *summary;
    uint64_t default_seed;
    int n_vocab, n_genres;
    /* voices per split and engine */
    int n_voices[N_SPLITS][N_ENGINES];
    int styles_per_voice[N_ENGINES];
    int word_clips[N_SPLITS];
    int songs_per_genre[N_SPLITS];
    int excerpts_per_song;
    /* backgrounds: percent of clips per noise kind (word task, genre task)
     * and the SNR grid per split (lo..hi step) */
    int clean_pct[N_SPLITS];
    int word_noise_pct[N_NOISE]; /* weights among the noisy kinds */
    int genre_noise_pct[N_NOISE];
    int snr_lo[N_SPLITS], snr_hi[N_SPLITS], snr_step;
    int babble_min, babble_max;
    int speed_lo, speed_hi; /* per clip playback speed, x1000 */
    /* The training split is drawn this many times (0 means 1): draw d is
     * the training part of seed S+d's plan (its own voices' styles, songs,
     * contexts and backgrounds), so the training set grows in distinct
     * material while the test split stays seed S's. */
    int train_draws;
} Recipe;

const Recipe *recipe_find(const char *name);
int recipe_count(void);
const Recipe *recipe_at(int i);
/* Builds the whole plan from recipe and seed: no external program runs
 * except `espeak-ng --voices=variant` (through voices_list). */
int plan_make(Plan *p, const Recipe *r, uint64_t seed, Error *err);
void plan_free(Plan *p);
/* The manifest row of a clip (strings owned by the caller's buffers). */
void plan_row(const Plan *p, const ClipPlan *c, ManifestRow *row, char bufs[6][128]);

/* draws.c: the folder of the training draw of `seed` inside out ("out/s2"),
 * and DIR/manifest.csv rewritten as the seed's own rows followed by each
 * extra draw's, ids prefixed "s<seed>-" and paths "s<seed>/". */
void draw_dir(const char *out, uint64_t seed, char *buf, size_t n);
int draws_join(const char *out, uint64_t seed, int draws, int quiet, Error *err);

#endif
