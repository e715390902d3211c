/* Internals of the experiment module, shared between its files and its tests.
 * Not part of the public interface (experiment.h). */
#ifndef EXPERIMENT_INTERNAL_H
#define EXPERIMENT_INTERNAL_H

#include <stdint.h>

#include "../stimuli/stimuli.h"
#include "../subjects/subjects.h"
#include "experiment.h"

#define EXP_NA "n/a"
#define EXP_MAX_BREAKS 16
#define EXP_MAX_CHOICES 9

/* ------------------------------------------------------------ small tools */

/* splitmix64: a whole generator in one word of state, so a trial's random
 * draws can be derived from (seed, participant, trial) alone and a resumed
 * session draws exactly what an uninterrupted one would have. */
typedef struct {
    uint64_t s;
} ExpRng;
void exprng_seed(ExpRng *r, uint64_t a, uint64_t b, uint64_t c);
uint64_t exprng_next(ExpRng *r);
uint64_t exprng_below(ExpRng *r, uint64_t n);
double exprng_uniform(ExpRng *r);
double exprng_normal(ExpRng *r);
void exprng_shuffle(ExpRng *r, int *a, int n);

/* SHA-256 of a buffer as 64 hex digits (design and trial-list fingerprints). */

char *exp_path_dir(const char *path);                  /* "." for a bare name */
char *exp_path_join(const char *dir, const char *rel); /* rel if absolute */
/* Local time with milliseconds and offset, e.g. 2024-05-01T10:22:33.123+02:00. */
void exp_iso8601_now(char out[40], double offset_s);

/* CSV inputs (manifests, metamers.csv, prediction tables) are read with
 * core's table_load(..., TABLE_RAGGED, ...): lists edited by hand may drop
 * trailing empty cells. */

/* --------------------------------------------------------------- design */

typedef enum { RESP_WORD, RESP_CHOICE } RespMode;
typedef enum { SCREEN_NONE, SCREEN_WOODS, SCREEN_HUGGINS } ScreenTest;

typedef struct {
    char *name;
    char *model, *stage; /* NULL for natural */
} Condition;

typedef struct {
    char *model;
    char *csv; /* relative to the design's folder */
    int passed_only;
} MetamerSource;

typedef struct {
    char *path, *dir;
    char sha256[65];
    char *task;
    char **manifests;
    int n_manifests;
    char *split;        /* NULL: every split */
    char *instructions; /* task text on the welcome screen; NULL: by mode */
    MetamerSource *metamers;
    int n_metamers;
    Condition *conds;
    int n_conds;
    int trials_per_condition;
    RespMode mode;
    int cant_tell;
    char **vocab; /* from the design (array or file); NULL: manifest labels */
    int n_vocab;
    char **choices; /* choice mode: the alternatives, in key order */
    int n_choices;
    int practice_feedback, practice_scored, practice_pass, practice_scored_feedback;
    int catch_trials;
    double breaks[EXP_MAX_BREAKS];
    int n_breaks;
    int replays;  /* extra plays allowed per trial */
    int feedback; /* feedback on main trials */
    ScreenTest screening;
    int screening_trials, screening_pass;
    int calibration;
    int pause_ms;
    uint64_t seed;
} Design;

int exp_design_load(const char *path, Design *d, Error *err);
/* The same from a buffer (path names the file in messages; fuzzing entry). */
int exp_design_parse(const char *json, size_t n, const char *path, Design *d, Error *err);
void exp_design_free(Design *d);

/* ------------------------------------------------------- stimulus pool */

typedef struct {
    char *clip_id, *path, *label; /* path relative to the design's folder */
} NaturalClip;

typedef struct {
    int clip, cond, seed;
    char *path;
} MetamerStim;

typedef struct {
    NaturalClip *clips;
    int n_clips;
    MetamerStim *mets; /* sorted by (clip, cond, seed) */
    int n_mets;
    int *first, *count; /* [clip * n_conds + cond] into mets */
    int n_conds;
    char **labels; /* distinct labels of the task, sorted */
    int n_labels;
} StimPool;

int exp_stimpool_load(const Design *d, StimPool *p, Error *err);
void exp_stimpool_free(StimPool *p);
/* Stimuli available for (clip, condition): natural conditions always 1. */
int exp_stimpool_available(const StimPool *p, const Design *d, int clip, int cond);

/* ----------------------------------------------------------- trial lists */

typedef struct {
    ExpTrial *rows; /* strings owned by the list */
    int n;
    char sha256[65];
} TrialList;

/* Whole list as TSV text (what build writes). */
char *exp_trials_to_tsv(const TrialList *l);
int exp_trials_parse(char *text, const char *path, TrialList *l, Error *err);
int exp_trials_read(const char *path, TrialList *l, Error *err);
void exp_trials_free(TrialList *l);
void exp_trials_add(TrialList *l, int block, const char *phase, const char *condition,
                    const char *clip_id, const char *path, const char *stage, const char *model,
                    const char *label, int seed);

/* build.json of a list folder: what run needs besides the list. */
typedef struct {
    char design_sha256[65];
    int participants;
    char **vocab;
    int n_vocab;
} BuildInfo;
int exp_buildinfo_read(const char *lists_dir, BuildInfo *b, Error *err);
void exp_buildinfo_free(BuildInfo *b);
/* "<lists>/sub-<id>_trials.tsv" */
void exp_trials_list_path(char *out, size_t cap, const char *lists_dir, const char *id);
/* Default list folder for a design: "<design without .json>_trials". */
char *exp_default_lists_dir(const char *design_path);
/* Builds participant p's list (1-based); deterministic in (design, p). */
int exp_build_participant(const Design *d, const StimPool *pool, const int *main_clips,
                          const int *catch_clips, const int *practice_clips, int p, TrialList *out,
                          Error *err);
/* Chooses the clips every participant shares (see build.c). */
int exp_build_select_clips(const Design *d, const StimPool *pool, int **main_clips,
                           int **catch_clips, int **practice_clips, Error *err);

/* ------------------------------------------------------------ trial log */

typedef struct {
    int fd;
    char *path;
    int n_done;             /* complete rows = next trial index (0-based) */
    int last_session;       /* highest session number in the rows */
    unsigned char *correct; /* per complete row */
    long repaired_bytes;    /* bytes of a half-written row cut off at open */
} TrialLog;

typedef struct {
    const ExpTrial *trial;
    const char *response;
    int correct;
    double rt_ms; /* NAN: n/a */
    const char *onset_iso8601;
    int replays;
    int session;
} LogRow;

/* Creates the log, or locks, repairs and checks an existing one against the
 * list (every row must be the list's next trial). */
int exp_triallog_open(const char *path, const TrialList *list, TrialLog *log, Error *err);
/* Pure scan of a log's bytes (no repair): complete rows checked against
 * the list. *complete_bytes is where the last complete line ends. */
int exp_triallog_scan(const char *buf, size_t n, const TrialList *list, TrialLog *log,
                      size_t *complete_bytes, Error *err);
int exp_triallog_append(TrialLog *log, const LogRow *row, Error *err);
void exp_triallog_close(TrialLog *log);
const char *exp_triallog_header(void);

typedef struct {
    int session, first_trial;
    const char *start_iso8601, *observer, *audio_device;
    int sample_rate;
    double output_latency_s;
    const char *design_path, *design_sha256, *list_path, *list_sha256;
    const char *task;
    long repaired_bytes;
} SessionInfo;
/* Writes (atomically, 0600) the BIDS sidecar: column descriptions and
 * provenance, keeping earlier sessions' entries. */
int exp_sidecar_write(const char *json_path, const SessionInfo *s, Error *err);

/* ---------------------------------------------------------------- audio */

typedef struct {
    float *x; /* frames * channels, interleaved */
    int64_t frames;
    int channels; /* 1 (played on both ears) or 2 */
} Sound;
void exp_sound_free(Sound *s);

typedef struct AudioOut AudioOut;
/* spec NULL: PortAudio (device: NULL default, index or name part; rate 0:
 * the device's default). spec "file:PATH[,rate=R]": collect what would be
 * played and write it as a float32 stereo WAV on close (rate default
 * default_rate). Errors (no device, busy, format refused) come here. */
int exp_audio_out_open(const char *spec, const char *device, int rate, int default_rate,
                       AudioOut **out, Error *err);
int exp_audio_out_rate(const AudioOut *a);
double exp_audio_out_latency(const AudioOut *a);
const char *exp_audio_out_name(const AudioOut *a);
/* Starts playing (replacing what plays). *onset_mono gets the monotonic
 * time the first sample reaches the output (request time + latency until
 * the device says). */
int exp_audio_out_play(AudioOut *a, const Sound *s, Error *err);
int exp_audio_out_busy(AudioOut *a);
/* Onset of the current sound in CLOCK_MONOTONIC seconds (0 if unknown yet). */
double exp_audio_out_onset(AudioOut *a);
void exp_audio_out_stop(AudioOut *a);
int exp_audio_out_close(AudioOut *a, Error *err);
/* For tests: the device path with a callback pumped by hand. */
AudioOut *exp_audio_out_fake(int rate, double latency);
void exp_audio_out_pump(AudioOut *a, float *out, unsigned long frames, double dac_delay);
/* Reads a stimulus and converts it to the output rate (mono). */
int exp_sound_load(const char *path, int rate, Sound *s, Error *err);

/* Screening and calibration sounds, generated at the output rate. */
void exp_sound_noise(Sound *s, int rate, double seconds, double rms, uint64_t seed);
/* Woods et al. 2017: three 200 Hz tones; intervals are 0-based. */
void exp_sound_woods(Sound *s, int rate, double rms, int softer, int antiphase);
/* Milne et al. 2021: three noises; target carries the Huggins pitch. */
int exp_sound_huggins(Sound *s, int rate, double rms, int target, uint64_t seed, Error *err);

/* ---------------------------------------------------------- terminal */

enum {
    KEY_TIMEOUT = -1,
    KEY_SIGNAL = -2, /* SIGINT/SIGTERM/SIGHUP arrived: leave now */
    KEY_EOF = -3,
    KEY_RESIZE = -4,
    KEY_ENTER = 1000,
    KEY_BACKSPACE,
    KEY_TAB,
    KEY_UP,
    KEY_DOWN,
    KEY_CTRL_R,
};
int exp_term_open(Error *err);
void exp_term_close(void);
int exp_term_key(int timeout_ms);
/* Drops keys typed ahead, so an answer always belongs to the sound just played. */
void exp_term_flush_input(void);
int exp_term_signal(void); /* the signal that ended the session, or 0 */
/* Draws up to 24 lines (clipped to the terminal's width); the cursor is
 * shown at (row, col) if row >= 0. */
void exp_term_draw(char lines[][128], int n, int cursor_row, int cursor_col);
/* Installs the signal handlers without a terminal (simulated runs), so
 * SIGINT/SIGTERM end the session between trials. */
void exp_term_catch_signals(void);
void exp_term_release_signals(void);

/* ----------------------------------------------------------- observers */

typedef struct {
    ExpObserver obs;
    char *spec, *kind;
    double lapse;
    uint64_t seed;
    int delay_ms;
} Observer;

int exp_observer_create(const char *spec, const ExpObserverEnv *base, uint64_t default_seed,
                        Observer *o, Error *err);
/* Answer with the lapse applied (random vocabulary word with prob. lapse,
 * drawn from (seed, trial) alone). */
int exp_observer_answer(Observer *o, const ExpTrial *t, const char *const *vocab, int n_vocab,
                        char *response, size_t cap, double *rt_ms, Error *err);
void exp_observer_free(Observer *o);

/* ------------------------------------------------------------- the UI */

typedef struct {
    const Design *d;
    const char *const *vocab;
    int n_vocab;
    int vocab_has_space;
    double level_rms; /* calibration and screening level (the stimuli's) */
    AudioOut *audio;
} Ui;

typedef struct {
    char response[128];
    double rt_ms;
    double onset_mono;
    char onset_iso8601[40];
    int replays;
} UiAnswer;

/* A screen being composed: at most 24 lines of at most 79 columns. */
typedef struct {
    char lines[24][128];
    int n, crow, ccol; /* cursor shown at (crow, ccol) if crow >= 0 */
} Screen;
void exp_scr_init(Screen *s);
void exp_scr_add(Screen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void exp_scr_wrap(Screen *s, const char *text); /* word-wrapped, indented */
/* Title line (left), a note on the right, and a progress bar if 0 <= p <= 1. */
void exp_scr_header(Screen *s, const char *title, const char *right, double progress);
void exp_scr_show(Screen *s);
/* Waits for Enter (other keys ignored): 0, or KEY_SIGNAL/KEY_EOF. */
int exp_ui_wait_enter(void);
/* Waits ms milliseconds, still noticing signals: 0 or KEY_SIGNAL/KEY_EOF. */
int exp_ui_pause(int ms);

/* Each returns 0, or KEY_SIGNAL/KEY_EOF when the session must end
 * (exp_ui_screening and exp_ui_trial also -1 with err). */
int exp_ui_message(Ui *ui, const char *title, const char *const *lines, int n, const char *prompt);
int exp_ui_calibration(Ui *ui, const Sound *noise);
int exp_ui_screening(Ui *ui, uint64_t seed, int *n_correct, const char *log_path, Error *err);
int exp_ui_break(Ui *ui, int done, int total);
int exp_ui_trial(Ui *ui, const ExpTrial *t, const Sound *s, const char *header, double progress,
                 UiAnswer *ans, Error *err);
int exp_ui_feedback(Ui *ui, const ExpTrial *t, const char *response, int correct);
/* Screening plan: the target interval of each trial (0..2), and for Woods
 * the anti-phase interval; deterministic in seed. */
void exp_screening_plan(uint64_t seed, int trial, int *target, int *antiphase);

/* ---------------------------------------------------------- response */

/* Vocabulary words matching typed text: prefix matches first, then words
 * containing it (case-insensitive); returns the count written (<= max). */
int exp_vocab_matches(const char *const *vocab, int n, const char *typed, int *out, int max);
/* Index of the word equal to typed (case-insensitive), or -1. */
int exp_vocab_find(const char *const *vocab, int n, const char *typed);

/* ------------------------------------------------------------ a session */

typedef struct {
    const char *design, *subject, *lists, *data_dir, *device, *audio, *observer;
    int run, rate;
} RunArgs;

typedef struct {
    RunArgs a;
    Design d;
    BuildInfo b;
    TrialList list;
    char id[SUBJECT_ID_MAX];
    char log_path[4096], json_path[4096], list_path[4096], screen_path[4096];
    TrialLog log;
    Participant p;
    int session, human;
    Observer obs;
    int has_obs;
    AudioOut *audio;
    Sound *sounds; /* per trial (from log.n_done on) */
    Sound noise;   /* calibration */
    Ui ui;
} Session;

/* session.c: everything that can fail is checked here, before any screen. */
int exp_session_open(Session *s, Error *err);
void exp_session_close(Session *s);
int exp_session_count_start(Session *s, Error *err);
int exp_session_record_gate(Session *s, const char *which, int passed, int score, int total,
                            Error *err);
/* run.c */
int exp_session_trials(Session *s, Error *err);

/* observer_model.c: `--observer model:M`. */
int exp_model_observer_create(const ExpObserverEnv *env, ExpObserver *o, Error *err);

#endif
