/* Voices for the word task: every espeak-ng variant with each English
 * accent, flite's and festival's English voices; how each engine is asked
 * to speak a list of words; and the utterance store the clips are cut from.
 *
 * Every rendered word is trimmed to its sound (-50 dB re. peak, 10 ms
 * margins, 5 ms fades), resampled to 20 kHz and kept per style (voice,
 * rate, pitch) in one safetensors file, a tensor per word: one atomic file
 * per synthesis batch, so a killed build resumes without re-synthesizing. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stim_internal.h"

static const char *const accents[] = {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan",
                                      "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"};
#define N_ACCENTS ((int)(sizeof accents / sizeof accents[0]))

/* flite's and festival's English voices and who recorded them: kal and
 * kal16 are one talker, as are flite's slt and festival's slt HTS voice, so
 * the speaker (the split unit) is the talker, not the engine's voice. */
static const struct {
    Engine engine;
    const char *name, *speaker, *package;
    Split split;
} fixed_voices[] = {
    {ENGINE_FLITE, "kal16", "kal", "flite", SPLIT_TRAIN},
    {ENGINE_FLITE, "awb", "awb", "flite", SPLIT_TRAIN},
    {ENGINE_FLITE, "slt", "slt", "flite", SPLIT_TRAIN},
    {ENGINE_FLITE, "kal", "kal", "flite", SPLIT_TRAIN},
    {ENGINE_FLITE, "rms", "rms", "flite", SPLIT_TEST},
    {ENGINE_FESTIVAL, "kal_diphone", "kal", "festvox-kallpc16k", SPLIT_TRAIN},
    {ENGINE_FESTIVAL, "cmu_us_slt_arctic_hts", "slt", "festvox-us-slt-hts", SPLIT_TRAIN},
    {ENGINE_FESTIVAL, "ked_diphone", "ked", "festvox-kdlpc16k", SPLIT_TEST},
};
#define N_FIXED ((int)(sizeof fixed_voices / sizeof fixed_voices[0]))

static const char *const engine_names[N_ENGINES] = {"espeak-ng", "flite", "festival"};

const char *split_name(Split s) { return s == SPLIT_TRAIN ? "train" : "test"; }

/* The espeak speaker is the variant without its trailing digits (Gene and
 * Gene2, iven..iven4, m1..m8 are versions of one voice design), so near
 * copies never straddle the split. About one speaker in six is held out,
 * by a fixed hash: the same voices are test voices for every seed and
 * recipe, so a model trained on `train` never heard `experiment`'s voices. */
static Split espeak_split(const char *variant, char *speaker, size_t size) {
    size_t n = strlen(variant);
    while (n > 1 && isdigit((unsigned char)variant[n - 1])) n--;
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)n, variant);
    for (char *c = group; *c; c++) *c = (char)tolower((unsigned char)*c);
    snprintf(speaker, size, "espeak-ng+%.40s", group);
    char salted[96];
    snprintf(salted, sizeof salted, "heldout:%s", group);
    return hash_str(salted) % 5 == 0 ? SPLIT_TEST : SPLIT_TRAIN;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Variant names from `espeak-ng --voices=variant` (5th column "!v/NAME"),
 * sorted so the voice list does not depend on espeak's listing order. */
static int espeak_variants(char ***names, int *count, Error *err) {
    char tmp[] = "/tmp/metamers-variants-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return error_set(err, "cannot create a temporary file in /tmp");
    close(fd);
    char *argv[] = {"espeak-ng", "--voices=variant", NULL};
    char *text = NULL;
    size_t size;
    int rc = prog_run(PROG_ESPEAK, argv, tmp, 30, err);
    if (rc == 0) rc = read_file(tmp, &text, &size, err);
    unlink(tmp);
    if (rc != 0) return -1;
    int n = 0, cap = 128;
    char **v = xmalloc((size_t)cap * sizeof *v);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char f[5][128];
        if (sscanf(line, "%127s %127s %127s %127s %127s", f[0], f[1], f[2], f[3], f[4]) != 5) continue;
        if (strncmp(f[4], "!v/", 3) != 0 || !f[4][3]) continue;
        if (n == cap) {
            char **g = xmalloc((size_t)(cap *= 2) * sizeof *g);
            memcpy(g, v, (size_t)n * sizeof *g);
            free(v);
            v = g;
        }
        v[n++] = xstrdup(f[4] + 3);
    }
    free(text);
    if (n == 0) {
        free(v);
        return error_set(err, "espeak-ng --voices=variant listed no variants "
                         "(is espeak-ng-data installed?)");
    }
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return 0;
}

static Voice *add_voice(VoiceList *vl, int *cap) {
    if (vl->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        Voice *g = xmalloc((size_t)*cap * sizeof *g);
        if (vl->n) memcpy(g, vl->v, (size_t)vl->n * sizeof *g);
        free(vl->v);
        vl->v = g;
    }
    Voice *v = &vl->v[vl->n++];
    memset(v, 0, sizeof *v);
    return v;
}

int voices_list(VoiceList *out, Error *err) {
    memset(out, 0, sizeof *out);
    char **variants;
    int n_var, cap = 0;
    if (espeak_variants(&variants, &n_var, err) != 0) return -1;
    for (int i = 0; i < n_var; i++) {
        for (int a = 0; a < N_ACCENTS; a++) {
            Voice *v = add_voice(out, &cap);
            v->engine = ENGINE_ESPEAK;
            snprintf(v->name, sizeof v->name, "%s+%.40s", accents[a], variants[i]);
            snprintf(v->id, sizeof v->id, "espeak-ng:%s", v->name);
            v->split = espeak_split(variants[i], v->speaker, sizeof v->speaker);
        }
        free(variants[i]);
    }
    free(variants);
    for (int i = 0; i < N_FIXED; i++) {
        Voice *v = add_voice(out, &cap);
        v->engine = fixed_voices[i].engine;
        snprintf(v->name, sizeof v->name, "%s", fixed_voices[i].name);
        snprintf(v->id, sizeof v->id, "%s:%s", engine_names[v->engine], v->name);
        snprintf(v->speaker, sizeof v->speaker, "%s", fixed_voices[i].speaker);
        v->split = fixed_voices[i].split;
    }
    return 0;
}

void voices_free(VoiceList *vl) {
    free(vl->v);
    memset(vl, 0, sizeof *vl);
}

int festival_voice_check(const char *name, Error *err) {
    const char *dirs[] = {"english", "us"};
    for (int i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "/usr/share/festival/voices/%s/%s", dirs[i], name);
        struct stat sb;
        if (stat(path, &sb) == 0) return 0;
    }
    for (int i = 0; i < N_FIXED; i++)
        if (!strcmp(fixed_voices[i].name, name))
            return error_set(err, "festival voice %s is not installed: install the Debian "
                             "package %s", name, fixed_voices[i].package);
    return error_set(err, "festival voice %s is not installed", name);
}

void style_make_key(Style *s, const VoiceList *vl) {
    const Voice *v = &vl->v[s->voice];
    char slug[80];
    snprintf(slug, sizeof slug, "%s", v->name);
    for (char *c = slug; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-') *c = '-';
    snprintf(s->key, sizeof s->key, "%s_%s_r%d_p%d", engine_names[v->engine], slug, s->rate,
             s->pitch);
}

/* ----------------------------------------------------------- trimming */

/* Sound extent of x[lo, hi): first and last sample above thr. */
static int sound_extent(const float *x, int64_t lo, int64_t hi, float thr, int64_t *a,
                        int64_t *b) {
    int64_t i = lo, j = hi - 1;
    while (i < hi && fabsf(x[i]) <= thr) i++;
    while (j > i && fabsf(x[j]) <= thr) j--;
    if (i >= hi) return -1;
    *a = i;
    *b = j + 1;
    return 0;
}

static float peak_of(const float *x, int64_t n) {
    float p = 0;
    for (int64_t i = 0; i < n; i++) p = fmaxf(p, fabsf(x[i]));
    return p;
}

#define TRIM_DB -50.0
#define MAX_UTT_SECONDS 1.6

/* Cuts x[lo, hi) (at `rate`) to its sound plus 10 ms margins, resamples to
 * 20 kHz and fades 5 ms in and out so no clip starts with a click. */
static int cut_utterance(const float *x, int64_t lo, int64_t hi, int rate, float thr,
                         float **out, int64_t *out_n, Error *err) {
    int64_t a, b;
    if (sound_extent(x, lo, hi, thr, &a, &b) != 0) return error_set(err, "silent utterance");
    int64_t margin = rate / 100;
    a = a - margin < lo ? lo : a - margin;
    b = b + margin > hi ? hi : b + margin;
    if (b - a > (int64_t)(MAX_UTT_SECONDS * rate)) b = a + (int64_t)(MAX_UTT_SECONDS * rate);
    if (audio_resample(x + a, b - a, rate, STIM_RATE, out, out_n, err) != 0) return -1;
    int64_t fade = STIM_RATE / 200;
    for (int64_t i = 0; i < fade && i < *out_n; i++) {
        float g = 0.5f - 0.5f * cosf((float)M_PI * (float)i / (float)fade);
        (*out)[i] *= g;
        (*out)[*out_n - 1 - i] *= g;
    }
    return 0;
}

/* Splits a batch recording (words separated by 1 s breaks) at silences of
 * at least 300 ms. Returns the number of segments found (up to max). */
static int split_batch(const Audio *a, float thr, int64_t *seg_lo, int64_t *seg_hi, int max) {
    int64_t frame = a->rate / 100, nf = a->n / frame;
    int n = 0, silent_run = 0, in_seg = 0;
    for (int64_t f = 0; f < nf; f++) {
        int silent = peak_of(a->samples + f * frame, frame) <= thr;
        if (!silent) {
            if (!in_seg) {
                if (n == max) return max + 1;
                seg_lo[n++] = f * frame;
                in_seg = 1;
            }
            seg_hi[n - 1] = (f + 1) * frame;
            silent_run = 0;
        } else if (in_seg && ++silent_run >= 30) {
            in_seg = 0;
        }
    }
    return n;
}

/* ------------------------------------------------------------ engines */

typedef struct {
    const Style *style;
    const Voice *voice;
    const int *words;
    int n;
    const char *tmp_dir;
    float **utt;
    int64_t *len;
} Batch;

static int word_ok(const char *w) {
    for (; *w; w++)
        if (!islower((unsigned char)*w) && *w != '\'') return 0;
    return 1;
}

static void tmp_name(char *buf, size_t size, const Batch *b, const char *what) {
    snprintf(buf, size, "%s/%s%s", b->tmp_dir, b->style->key, what);
}

/* One recorded word from a file: trims relative to its own peak. */
static int take_file(const char *path, float **out, int64_t *n, Error *err) {
    Audio a;
    if (audio_read(path, 0, 0, &a, err) != 0) return -1;
    float thr = fmaxf(peak_of(a.samples, a.n) * (float)pow(10, TRIM_DB / 20), 1e-4f);
    int rc = cut_utterance(a.samples, 0, a.n, a.rate, thr, out, n, err);
    if (rc != 0) error_prefix(err, "%s", path);
    audio_free(&a);
    remove(path);
    return rc;
}

static int espeak_one(const Batch *b, int i, Error *err) {
    char wav[1024], rate[16], pitch[16], voice[80];
    tmp_name(wav, sizeof wav, b, ".word.wav");
    snprintf(rate, sizeof rate, "%d", b->style->rate);
    snprintf(pitch, sizeof pitch, "%d", b->style->pitch);
    snprintf(voice, sizeof voice, "%s", b->voice->name);
    char *word = (char *)stimuli_vocabulary_word(b->words[i]);
    char *argv[] = {"espeak-ng", "-v", voice, "-s", rate, "-p", pitch, "-w", wav, word, NULL};
    if (prog_run(PROG_ESPEAK, argv, NULL, 60, err) != 0) return -1;
    return take_file(wav, &b->utt[i], &b->len[i], err);
}

/* espeak-ng is fast but starts slowly relative to one word, so all words go
 * in one SSML document with 1 s breaks and the recording is split at the
 * silences. Variants with echo or breath noise can blur the breaks; then the
 * segment count is wrong and the words are spoken one call each. */
static int render_espeak(const Batch *b, Error *err) {
    char ssml[1024], wav[1024], rate[16], pitch[16], voice[80];
    tmp_name(ssml, sizeof ssml, b, ".ssml");
    tmp_name(wav, sizeof wav, b, ".wav");
    size_t cap = 64 + (size_t)b->n * 64, len = 0;
    char *doc = xmalloc(cap);
    len += (size_t)snprintf(doc + len, cap - len, "<speak>");
    for (int i = 0; i < b->n; i++)
        len += (size_t)snprintf(doc + len, cap - len, "%s <break time=\"1000ms\"/>\n",
                                stimuli_vocabulary_word(b->words[i]));
    snprintf(doc + len, cap - len, "</speak>\n");
    int rc = atomic_write_file(ssml, doc, strlen(doc), 0644, err);
    free(doc);
    if (rc != 0) return -1;
    snprintf(rate, sizeof rate, "%d", b->style->rate);
    snprintf(pitch, sizeof pitch, "%d", b->style->pitch);
    snprintf(voice, sizeof voice, "%s", b->voice->name);
    char *argv[] = {"espeak-ng", "-m", "-v", voice, "-s", rate, "-p", pitch,
                    "-f", ssml,  "-w", wav,   NULL};
    rc = prog_run(PROG_ESPEAK, argv, NULL, 120, err);
    remove(ssml);
    Audio a = {0};
    if (rc == 0) rc = audio_read(wav, 0, 0, &a, err);
    remove(wav);
    if (rc != 0) return -1;
    int64_t *lo = xmalloc((size_t)(b->n + 1) * sizeof *lo), *hi = xmalloc((size_t)(b->n + 1) * sizeof *hi);
    float thr = fmaxf(peak_of(a.samples, a.n) * (float)pow(10, TRIM_DB / 20), 1e-4f);
    int found = split_batch(&a, thr, lo, hi, b->n);
    for (int i = 0; rc == 0 && i < b->n; i++) {
        if (found == b->n)
            rc = cut_utterance(a.samples, lo[i], hi[i], a.rate, thr, &b->utt[i], &b->len[i], err);
        else
            rc = espeak_one(b, i, err);
    }
    free(lo);
    free(hi);
    audio_free(&a);
    return rc;
}

/* flite has no usable break markup (SSML breaks are ignored), but a call
 * costs only ~40 ms: one call per word. */
static int render_flite(const Batch *b, Error *err) {
    char wav[1024], stretch[64], voice[64];
    tmp_name(wav, sizeof wav, b, ".wav");
    snprintf(stretch, sizeof stretch, "duration_stretch=%.2f", b->style->rate / 100.0);
    snprintf(voice, sizeof voice, "%s", b->voice->name);
    for (int i = 0; i < b->n; i++) {
        char *word = (char *)stimuli_vocabulary_word(b->words[i]);
        char *argv[] = {"flite", "-voice", voice, "--setf", stretch, "-t", word, "-o", wav, NULL};
        if (prog_run(PROG_FLITE, argv, NULL, 60, err) != 0) return -1;
        if (take_file(wav, &b->utt[i], &b->len[i], err) != 0) return -1;
    }
    return 0;
}

/* festival takes ~1.5 s to start (text2wave would pay it per word), so one
 * festival process reads a Scheme script that saves each word to its own
 * file. Words are a-z only and paths are ours, so nothing in the script
 * can be misread as Scheme. */
static int render_festival(const Batch *b, Error *err) {
    char script[1024];
    if (strpbrk(b->tmp_dir, "\"\\"))
        return error_set(err, "%s: festival scripts cannot name a folder with '\"' or '\\'",
                         b->tmp_dir);
    tmp_name(script, sizeof script, b, ".scm");
    size_t cap = 256 + (size_t)b->n * (2 * strlen(b->tmp_dir) + 400), len = 0;
    char *doc = xmalloc(cap);
    len += (size_t)snprintf(doc + len, cap - len, "(voice_%s)\n(Parameter.set 'Duration_Stretch %.2f)\n",
                            b->voice->name, b->style->rate / 100.0);
    for (int i = 0; i < b->n; i++)
        len += (size_t)snprintf(doc + len, cap - len,
                                "(utt.save.wave (utt.synth (Utterance Text \"%s\")) "
                                "\"%s/%s.%d.wav\" 'riff)\n",
                                stimuli_vocabulary_word(b->words[i]), b->tmp_dir, b->style->key, i);
    int rc = atomic_write_file(script, doc, len, 0644, err);
    free(doc);
    if (rc != 0) return -1;
    char *argv[] = {"festival", "-b", script, NULL};
    rc = prog_run(PROG_FESTIVAL, argv, NULL, 600, err);
    remove(script);
    for (int i = 0; rc == 0 && i < b->n; i++) {
        char wav[1200];
        snprintf(wav, sizeof wav, "%s/%s.%d.wav", b->tmp_dir, b->style->key, i);
        rc = take_file(wav, &b->utt[i], &b->len[i], err);
    }
    return rc;
}

static int save_batch(const Batch *b, const char *out_path, Error *err) {
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->n; i++) {
        int64_t shape[1] = {b->len[i]};
        rc = safetensors_writer_add(&w, stimuli_vocabulary_word(b->words[i]), 1, shape, b->utt[i], err);
    }
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "style", b->style->key, err);
    if (rc == 0) rc = safetensors_writer_save(&w, out_path, err);
    safetensors_writer_free(&w);
    return rc;
}

int style_render(const Style *s, const VoiceList *vl, const int *words, int n_words,
                 const char *tmp_dir, const char *out_path, Error *err) {
    Batch b = {s, &vl->v[s->voice], words, n_words, tmp_dir, NULL, NULL};
    for (int i = 0; i < n_words; i++)
        if (!word_ok(stimuli_vocabulary_word(words[i])))
            return error_set(err, "word '%s' has characters other than a-z",
                             stimuli_vocabulary_word(words[i]));
    b.utt = xcalloc((size_t)n_words, sizeof *b.utt);
    b.len = xcalloc((size_t)n_words, sizeof *b.len);
    int rc = b.voice->engine == ENGINE_ESPEAK  ? render_espeak(&b, err)
             : b.voice->engine == ENGINE_FLITE ? render_flite(&b, err)
                                               : render_festival(&b, err);
    if (rc == 0) rc = save_batch(&b, out_path, err);
    if (rc != 0) error_prefix(err, "voice %s", b.voice->id);
    for (int i = 0; i < n_words; i++) free(b.utt[i]);
    free(b.utt);
    free(b.len);
    return rc;
}

/* ------------------------------------------------------ utterance store */

int utt_store_load(UttStore *st, int style, const char *path, const int *words, int n_words,
                   Error *err) {
    Safetensors t;
    if (safetensors_open(&t, path, err) != 0) return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n_words; i++) {
        const SafetensorsEntry *e;
        size_t k = (size_t)style * (size_t)st->n_words + (size_t)words[i];
        if (st->x[k]) continue;
        rc = safetensors_load_f32(&t, stimuli_vocabulary_word(words[i]), &st->x[k], &e, err);
        if (rc == 0) st->n[k] = e->numel;
    }
    safetensors_close(&t);
    return rc;
}

void utt_store_free(UttStore *st) {
    for (int i = 0; st->x && i < st->n_styles * st->n_words; i++) free(st->x[i]);
    free(st->x);
    free(st->n);
    memset(st, 0, sizeof *st);
}
