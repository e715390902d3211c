/* Music for the genre task: songs written for MMA (Musical MIDI
 * Accompaniment, Debian package mma) from its standard groove library,
 * rendered by fluidsynth with the FluidR3 General MIDI soundfont.
 *
 * A song is a groove of its genre, a chord progression typical of the
 * genre, a tempo and a key (MMA Transpose), all drawn from the build's
 * random stream; MMA's own randomness (RTime, RVolume, RSkip in grooves) is
 * pinned with RndSeed. fluidsynth renders at 40 kHz (its sample
 * interpolation aliases less than at 20 kHz) to float WAV (no dither);
 * libsoxr then resamples to 20 kHz. Chorus and reverb stay on: they are
 * deterministic (checked: two renders give identical samples; only
 * libsndfile's PEAK timestamp differs, and we re-encode anyway). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stim_internal.h"

enum { PROG_POP, PROG_JAZZ, PROG_BLUES, PROG_LATIN, PROG_FUNK, N_PROG_SETS };

/* Chord progressions in C, one chord per bar, repeated to fill the song. */
static const char *const progressions[N_PROG_SETS][8] = {
    [PROG_POP] = {"C F G C", "C Am F G", "C G Am F", "Am F C G", "C F C G", "C Em F G",
                  "F G C Am", "C Dm G C"},
    [PROG_JAZZ] = {"Dm7 G7 Cmaj7 Cmaj7", "Cmaj7 Am7 Dm7 G7", "Em7 A7 Dm7 G7",
                   "Cmaj7 C7 Fmaj7 Fm6", "Am7 D7 Dm7 G7", "Cmaj7 Cdim7 Dm7 G7",
                   "Fmaj7 Bb7 Em7 A7", "Dm7 G7 Em7 A7"},
    [PROG_BLUES] = {"C7 F7 C7 C7 F7 F7 C7 C7 G7 F7 C7 G7",
                    "C7 F7 C7 C7 F7 F7 C7 A7 Dm7 G7 C7 G7",
                    "Cm7 Fm7 Cm7 Cm7 Fm7 Fm7 Cm7 Cm7 Ab7 G7 Cm7 G7",
                    "C7 C7 C7 C7 F7 F7 C7 C7 G7 F7 C7 C7", NULL},
    [PROG_LATIN] = {"Am Dm E7 Am", "Dm7 G7 Cmaj7 A7", "C F G7 C", "Am D7 G Cmaj7",
                    "Cmaj7 Dm7 Em7 Dm7", "Dm6 E7 Am Am", NULL},
    [PROG_FUNK] = {"C7 C7 F7 F7", "Cm7 F7 Cm7 F7", "C9 C9 Bb9 F9", "Cm7 Cm7 Fm7 G7",
                   "Em7 A7 Em7 A7", NULL},
};

/* Grooves from /usr/share/mma/lib/stdlib (intros, endings and fills left
 * out). Order = class order; `tiny` uses the first three. */
static const struct {
    const char *name;
    int tempo_lo, tempo_hi, prog_set;
    const char *grooves;
} genres[] = {
    {"rock", 100, 150, PROG_POP,
     "50sRock 50sRock1 60sRock 60sRock1 BasicRock BasicRock4 SoftRock SoftRock1 SoftRock2 "
     "BubbleRock FolkRock 8Beat 8Beat1 Rock128 Rock128Plain"},
    {"jazz", 110, 190, PROG_JAZZ,
     "Swing SwingWalk Swing1 Swing2 BigBand BigBand1 EasySwing EasySwing1 FastSwing "
     "JazzCombo JazzCombo1 Bebop Dixie Dixie1 ModernJazz ModernJazz1"},
    {"waltz", 90, 180, PROG_POP,
     "Waltz Waltz1 WaltzWalk VieneseWaltz VieneseWaltz1 FastWaltz FrenchWaltz FrenchWaltz1 "
     "CountryWaltz CountryWaltz1 JazzWaltz JazzWaltz1 RockWaltz RockWaltz1"},
    {"latin", 90, 140, PROG_LATIN,
     "BossaNova BossaNovaPlus Samba SambaPlus Rhumba Rhumba1 Mambo Mambo1 Salsa ChaCha "
     "ChaCha1 Son Merengue Merengue1 Beguine Beguine1"},
    {"blues", 70, 130, PROG_BLUES,
     "Blues BluesTriple Blues1 FastBlues FastBlues1 SlowBlues SlowBluesWalk4 CountryBlues "
     "CountryBlues1 BoggieWoggie BoggieWoggie1 ShuffleBoggie ShuffleBoggie1"},
    {"country", 100, 160, PROG_POP,
     "CountrySwing CountrySwing1 CountrySwing2 BlueGrass BlueGrassClap SlowCountry "
     "SlowCountryWalk WesternSwing HillCountry Folk FolkWalk"},
    {"march", 100, 130, PROG_POP,
     "March March1 March2 March3 March4 68March 68MarchPlus BWMarch BWMarchPlus DixieMarch "
     "DixieMarchPlus"},
    {"ballad", 60, 90, PROG_POP,
     "Ballad Ballad1 PopBallad PopBallad1 PopBallad2 PianoBallad PianoBallad1 RockBallad "
     "RockBallad1 GuitarBallad GuitarBallad1 StringBallad FolkBallad FolkBallad1"},
    {"funk", 90, 120, PROG_FUNK,
     "BVFunk BVFunkHorns R&B R&BPlus DSoul DSoulPlus JazzRock JazzRockWalk LFusion LFusion1 "
     "Strut Strut2"},
};
#define N_GENRES ((int)(sizeof genres / sizeof genres[0]))

int stimuli_genre_count(void) { return N_GENRES; }
const char *stimuli_genre_name(int i) { return i >= 0 && i < N_GENRES ? genres[i].name : NULL; }
const char *genre_groove_list(int g) { return genres[g].grooves; }

const char *soundfont_path(void) {
    const char *env = getenv("METAMERS_SOUNDFONT");
    return env && *env ? env : "/usr/share/sounds/sf2/FluidR3_GM.sf2";
}

int soundfont_check(Error *err) {
    struct stat sb;
    if (stat(soundfont_path(), &sb) == 0) return 0;
    return error_set(err, "%s not found: install the Debian package fluid-soundfont-gm",
                     soundfont_path());
}

/* The k-th space-separated word of list (or the count when k < 0). */
static int list_item(const char *list, int k, char *out, size_t size) {
    int i = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        size_t len = strcspn(p, " ");
        if (i == k) {
            snprintf(out, size, "%.*s", (int)len, p);
            return 0;
        }
        i++;
        p += len;
    }
    return k < 0 ? i : -1;
}

static int prog_count(int set) {
    int n = 0;
    while (n < 8 && progressions[set][n]) n++;
    return n;
}

void song_plan(Song *s, int genre, Split split, int index, int n_excerpts, Rng *rng) {
    memset(s, 0, sizeof *s);
    s->genre = genre;
    s->split = split;
    snprintf(s->id, sizeof s->id, "%s-%s-%02d", genres[genre].name, split_name(split), index);
    int n_grooves = list_item(genres[genre].grooves, -1, NULL, 0);
    list_item(genres[genre].grooves, rng_range(rng, 0, n_grooves - 1), s->groove, sizeof s->groove);
    s->tempo = rng_range(rng, genres[genre].tempo_lo, genres[genre].tempo_hi);
    s->transpose = rng_range(rng, -5, 6);
    s->progression = rng_range(rng, 0, prog_count(genres[genre].prog_set) - 1);
    /* long enough for n_excerpts disjoint 2 s windows plus head and tail:
     * beats per bar from the groove files' Time (3 for the waltzes, 2 for
     * 68March, 4 for every other groove used here) */
    int beats = !strcmp(genres[genre].name, "waltz") ? 3 : !strncmp(s->groove, "68", 2) ? 2 : 4;
    s->n_excerpts = n_excerpts;
    s->bars = (int)ceil((n_excerpts * 2.3 + 4.5) * s->tempo / (60.0 * beats));
    s->mma_seed = (uint32_t)rng_range(rng, 1, 1000000);
    char *src = song_mma_source(s);
    snprintf(s->key, sizeof s->key, "%s_%016llx", s->id, (unsigned long long)hash_str(src));
    free(src);
}

char *song_mma_source(const Song *s) {
    const char *prog = progressions[genres[s->genre].prog_set][s->progression];
    int n_chords = list_item(prog, -1, NULL, 0);
    size_t cap = 512 + (size_t)s->bars * 16, len = 0;
    char *src = xmalloc(cap);
    len += (size_t)snprintf(src + len, cap - len,
                            "// metamers song %s (genre %s)\nRndSeed %u\nTempo %d\nGroove %s\n"
                            "Transpose %d\n",
                            s->id, genres[s->genre].name, s->mma_seed, s->tempo, s->groove,
                            s->transpose);
    for (int bar = 0; bar < s->bars; bar++) {
        char chord[16];
        list_item(prog, bar % n_chords, chord, sizeof chord);
        len += (size_t)snprintf(src + len, cap - len, "%s\n", chord);
    }
    return src;
}

static int render_midi(const Song *s, const char *mma_path, const char *mid_path, Error *err) {
    char *src = song_mma_source(s);
    int rc = atomic_write_file(mma_path, src, strlen(src), 0644, err);
    free(src);
    if (rc != 0) return -1;
    char *argv[] = {"mma", "-f", (char *)mid_path, (char *)mma_path, NULL};
    rc = prog_run(PROG_MMA, argv, NULL, 120, err);
    remove(mma_path);
    return rc;
}

static int render_audio(const char *mid_path, const char *wav_path, Error *err) {
    char *argv[] = {"fluidsynth", "-q", "-n", "-i", "-r", "40000", "-g", "0.5",
                    "-O", "float", "-T", "wav", "-o", "synth.lock-memory=0",
                    "-o", "synth.dynamic-sample-loading=1", "-o", "synth.cpu-cores=1",
                    "-F", (char *)wav_path, (char *)soundfont_path(), (char *)mid_path, NULL};
    return prog_run(PROG_FLUIDSYNTH, argv, NULL, 300, err);
}

int song_render(const Song *s, const char *tmp_dir, const char *out_path, Error *err) {
    char mma[1024], mid[1024], wav[1024];
    snprintf(mma, sizeof mma, "%s/%s.mma", tmp_dir, s->key);
    snprintf(mid, sizeof mid, "%s/%s.mid", tmp_dir, s->key);
    snprintf(wav, sizeof wav, "%s/%s.wav", tmp_dir, s->key);
    int rc = render_midi(s, mma, mid, err);
    if (rc == 0) rc = render_audio(mid, wav, err);
    remove(mid);
    Audio a = {0};
    if (rc == 0) rc = audio_read(wav, STIM_RATE, 0, &a, err);
    remove(wav);
    if (rc == 0 && audio_rms(a.samples, a.n) <= 0)
        rc = error_set(err, "fluidsynth rendered silence");
    if (rc == 0) {
        audio_scale_to_rms(a.samples, a.n, STIM_RMS);
        rc = audio_write_wav(out_path, a.samples, a.n, 1, STIM_RATE, AUDIO_FLOAT32, NULL, err);
    }
    audio_free(&a);
    if (rc != 0) error_prefix(err, "song %s (groove %s)", s->id, s->groove);
    return rc;
}

/* Skips the first second (the groove settling in) and the last 1.5 s (the
 * release tail), so windows hold steady playing. */
#define SONG_HEAD (STIM_RATE * 1)
#define SONG_TAIL (STIM_RATE * 3 / 2)

int song_excerpt(const Audio *song, const char *name, int slot, int n_slots, double jitter,
                 float *out, Error *err) {
    int64_t span = song->n - SONG_HEAD - SONG_TAIL - STIM_SAMPLES;
    if (span < 0)
        return error_set(err, "%s: song shorter than %.1f s", name,
                         (double)(SONG_HEAD + SONG_TAIL + STIM_SAMPLES) / STIM_RATE);
    double width = (double)span / n_slots;
    int64_t start = SONG_HEAD + (int64_t)((slot + jitter) * width);
    /* A groove can pause (a break bar): step on by 0.25 s, wrapping inside
     * the usable span, until the window has sound (RMS above -14 dB re. the
     * song's 0.1). */
    for (int tries = 0; tries <= span / (STIM_RATE / 4) + 1; tries++) {
        int64_t s = SONG_HEAD + (start - SONG_HEAD + tries * (int64_t)(STIM_RATE / 4)) % (span + 1);
        if (audio_rms(song->samples + s, STIM_SAMPLES) >= 0.02) {
            memcpy(out, song->samples + s, STIM_SAMPLES * sizeof *out);
            return 0;
        }
    }
    return error_set(err, "%s: no 2 s window with sound", name);
}
