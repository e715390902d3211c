/* Recipes (how big a set is and how it is mixed) and the plan: every
 * random choice of a build, made up front from the seed in one fixed
 * order, so the external programs and the parallel workers only execute
 * decisions. Same recipe and seed therefore give the same clips whatever
 * --jobs is, and a resumed build makes the same choices as the first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stim_internal.h"

#define TR SPLIT_TRAIN
#define TE SPLIT_TEST

static const Recipe recipes[] = {
    {.name = "tiny",
     .summary = "for tests: 10 words, 3 genres, 48 clips, every engine and noise kind",
     .default_seed = 1, .n_vocab = 10, .n_genres = 3,
     .n_voices = {[TR] = {3, 1, 1}, [TE] = {2, 1, 1}},
     .styles_per_voice = {1, 1, 1},
     .word_clips = {[TR] = 20, [TE] = 10},
     .songs_per_genre = {[TR] = 1, [TE] = 1}, .excerpts_per_song = 3,
     .clean_pct = {[TR] = 20, [TE] = 20},
     .word_noise_pct = {[NOISE_BABBLE] = 30, [NOISE_PINK] = 20, [NOISE_WHITE] = 20, [NOISE_MUSIC] = 30},
     .genre_noise_pct = {[NOISE_BABBLE] = 30, [NOISE_PINK] = 20, [NOISE_WHITE] = 20, [NOISE_SPEECH] = 30},
     .snr_lo = {-10, -10}, .snr_hi = {10, 10}, .snr_step = 5,
     .babble_min = 2, .babble_max = 4, .speed_lo = 930, .speed_hi = 1070},
    {.name = "demo",
     .summary = "for `make demo`: 48 word + 36 genre clips, words and genres of `train`",
     .default_seed = 1, .n_vocab = 200, .n_genres = 9,
     .n_voices = {[TR] = {12, 2, 1}, [TE] = {6, 1, 1}},
     .styles_per_voice = {1, 1, 1},
     .word_clips = {[TR] = 24, [TE] = 24},
     .songs_per_genre = {[TR] = 1, [TE] = 1}, .excerpts_per_song = 2,
     .clean_pct = {[TR] = 25, [TE] = 25},
     .word_noise_pct = {[NOISE_BABBLE] = 35, [NOISE_PINK] = 15, [NOISE_WHITE] = 15, [NOISE_MUSIC] = 35},
     .genre_noise_pct = {[NOISE_BABBLE] = 30, [NOISE_PINK] = 20, [NOISE_WHITE] = 20, [NOISE_SPEECH] = 30},
     .snr_lo = {-5, 0}, .snr_hi = {15, 10}, .snr_step = 1,
     .babble_min = 2, .babble_max = 8, .speed_lo = 930, .speed_hi = 1070},
    {.name = "train",
     .summary = "for the default model: 200 words x 200 voices, 9 genres x 30 songs, training split drawn twice",
     .default_seed = 1, .n_vocab = 200, .n_genres = 9,
     .n_voices = {[TR] = {160, 4, 2}, [TE] = {32, 1, 1}},
     .styles_per_voice = {1, 4, 4},
     .word_clips = {[TR] = 32000, [TE] = 1250},
     .songs_per_genre = {[TR] = 24, [TE] = 6}, .excerpts_per_song = 10,
     .clean_pct = {[TR] = 20, [TE] = 20},
     .word_noise_pct = {[NOISE_BABBLE] = 35, [NOISE_PINK] = 15, [NOISE_WHITE] = 15, [NOISE_MUSIC] = 35},
     .genre_noise_pct = {[NOISE_BABBLE] = 30, [NOISE_PINK] = 20, [NOISE_WHITE] = 20, [NOISE_SPEECH] = 30},
     .snr_lo = {-5, 0}, .snr_hi = {15, 10}, .snr_step = 1,
     .babble_min = 2, .babble_max = 8, .speed_lo = 930, .speed_hi = 1070,
     .train_draws = 2},
    {.name = "experiment",
     .summary = "a listening study's natural clips: 120 words, 36 genre clips, clean, test voices",
     .default_seed = 2023, .n_vocab = 200, .n_genres = 9,
     .n_voices = {[TE] = {32, 1, 1}},
     .styles_per_voice = {1, 1, 1},
     .word_clips = {[TE] = 120},
     .songs_per_genre = {[TE] = 4}, .excerpts_per_song = 1,
     .clean_pct = {[TR] = 100, [TE] = 100},
     .word_noise_pct = {[NOISE_PINK] = 1}, .genre_noise_pct = {[NOISE_PINK] = 1},
     .snr_lo = {0, 0}, .snr_hi = {0, 0}, .snr_step = 1,
     .babble_min = 2, .babble_max = 2, .speed_lo = 970, .speed_hi = 1030},
};
#define N_RECIPES ((int)(sizeof recipes / sizeof recipes[0]))

int recipe_count(void) { return N_RECIPES; }
const Recipe *recipe_at(int i) { return &recipes[i]; }

const Recipe *recipe_find(const char *name) {
    for (int i = 0; i < N_RECIPES; i++)
        if (!strcmp(recipes[i].name, name)) return &recipes[i];
    return NULL;
}

static void shuffle(int *a, int n, Rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- voices */

/* The voice's design: an espeak variant (after '+'), else the voice. */
static const char *design_of(const Voice *v) {
    const char *plus = strchr(v->name, '+');
    return plus ? plus + 1 : v->name;
}

/* Picks `want` voices of (split, engine), spreading over designs first:
 * round-robin over the shuffled designs, a random unused accent of each
 * per round, so 160 espeak voices cover every training variant. */
static int pick_voices(const VoiceList *vl, Split sp, Engine e, int want, Rng *r, int *out) {
    int *cand = xmalloc((size_t)vl->n * sizeof *cand), *group = xmalloc((size_t)vl->n * sizeof *group);
    int n = 0, n_groups = 0;
    for (int i = 0; i < vl->n; i++) {
        if (vl->v[i].split != sp || vl->v[i].engine != e) continue;
        if (n == 0 || strcmp(design_of(&vl->v[i]), design_of(&vl->v[cand[n - 1]]))) n_groups++;
        group[n] = n_groups - 1; /* designs are listed contiguously */
        cand[n++] = i;
    }
    int *order = xmalloc((size_t)(n + 1) * sizeof *order), *start = xcalloc((size_t)n_groups + 1, sizeof *start);
    for (int i = 0; i < n; i++) start[group[i] + 1]++;
    for (int g = 0; g < n_groups; g++) start[g + 1] += start[g];
    for (int g = 0; g < n_groups; g++) shuffle(cand + start[g], start[g + 1] - start[g], r);
    for (int g = 0; g < n_groups; g++) order[g] = g;
    shuffle(order, n_groups, r);
    int got = 0;
    for (int round = 0; got < want && got < n; round++)
        for (int k = 0; k < n_groups && got < want; k++) {
            int g = order[k];
            if (start[g] + round < start[g + 1]) out[got++] = cand[start[g] + round];
        }
    free(cand), free(group), free(order), free(start);
    return got;
}

static void add_styles(Plan *p, int voice, int count, Rng *r) {
    Engine e = p->voices.v[voice].engine;
    for (int k = 0; k < count; k++) {
        Style *s = &p->styles[p->n_styles];
        s->voice = voice;
        /* espeak: 130-200 words/min, pitch 25-75 (default 175, 50);
         * flite/festival: duration stretch 85-120 % (pitch varies with the
         * per-clip speed) */
        s->rate = e == ENGINE_ESPEAK ? rng_range(r, 130, 200) : rng_range(r, 85, 120);
        s->pitch = e == ENGINE_ESPEAK ? rng_range(r, 25, 75) : 0;
        for (;;) { /* two styles must never share a cache file */
            style_make_key(s, &p->voices);
            int dup = 0;
            for (int j = 0; j < p->n_styles; j++) dup |= !strcmp(p->styles[j].key, s->key);
            if (!dup) break;
            s->rate++;
        }
        p->n_styles++;
    }
}

static int plan_voices(Plan *p, Rng *r, Error *err) {
    const Recipe *rc = p->recipe;
    int max = 0;
    for (int sp = 0; sp < N_SPLITS; sp++)
        for (int e = 0; e < N_ENGINES; e++) max += rc->n_voices[sp][e] * rc->styles_per_voice[e];
    p->styles = xcalloc((size_t)max + 1, sizeof *p->styles);
    int *picked = xmalloc((size_t)p->voices.n * sizeof *picked);
    for (int sp = 0; sp < N_SPLITS; sp++)
        for (int e = 0; e < N_ENGINES; e++) {
            int got = pick_voices(&p->voices, (Split)sp, (Engine)e, rc->n_voices[sp][e], r, picked);
            for (int i = 0; i < got; i++) add_styles(p, picked[i], rc->styles_per_voice[e], r);
        }
    free(picked);
    for (int sp = 0; sp < N_SPLITS; sp++) {
        int n = 0;
        for (int s = 0; s < p->n_styles; s++) n += p->voices.v[p->styles[s].voice].split == (Split)sp;
        if (n == 0 && rc->word_clips[sp] > 0)
            return error_set(err, "recipe %s: no %s voices available", rc->name, split_name((Split)sp));
    }
    return 0;
}

/* ----------------------------------------------------------------- clips */

static int styles_of(const Plan *p, Split sp, int *out) {
    int n = 0;
    for (int s = 0; s < p->n_styles; s++)
        if (p->voices.v[p->styles[s].voice].split == sp) out[n++] = s;
    return n;
}

static int pick_from_pool(const Plan *p, int style, int avoid1, int avoid2, Rng *r) {
    const unsigned char *pool = p->pool + (size_t)style * p->n_all;
    for (int tries = 0; tries < 1000; tries++) {
        int w = p->vocab[rng_below(r, (uint64_t)p->n_vocab)];
        if (pool[w] && w != avoid1 && w != avoid2) return w;
    }
    for (int i = 0; i < p->n_vocab; i++) /* tiny pools: first usable word */
        if (pool[p->vocab[i]] && p->vocab[i] != avoid1) return p->vocab[i];
    return avoid1;
}

static void fill_stream(const Plan *p, Stream *s, int style, int target_word, Rng *r) {
    s->style = style;
    s->target = target_word >= 0;
    s->n_words = STREAM_MAX_WORDS;
    int k = 0;
    if (target_word >= 0) s->words[k++] = target_word;
    for (; k < STREAM_MAX_WORDS; k++)
        s->words[k] = pick_from_pool(p, style, target_word, k > 0 ? s->words[k - 1] : -1, r);
    s->seed = rng_next(r);
    s->speed_milli = 1000;
}

static NoiseKind pick_noise(const int pct[N_NOISE], int clean_pct, Rng *r) {
    if ((int)rng_below(r, 100) < clean_pct) return NOISE_NONE;
    int total = 0;
    for (int k = 1; k < N_NOISE; k++) total += pct[k];
    if (total <= 0) return NOISE_NONE;
    int x = (int)rng_below(r, (uint64_t)total);
    for (int k = 1; k < N_NOISE; k++)
        if ((x -= pct[k]) < 0) return (NoiseKind)k;
    return NOISE_NONE;
}

/* Background of clip c: kind, SNR and its sources, all from its split, so
 * no test voice or song is heard in a training clip, even as noise. */
static void plan_noise(Plan *p, ClipPlan *c, const int *split_styles, int n_ss,
                       const int *split_songs, int n_sg, Rng *r) {
    const Recipe *rc = p->recipe;
    c->noise = pick_noise(c->task == TASK_WORD ? rc->word_noise_pct : rc->genre_noise_pct,
                          rc->clean_pct[c->split], r);
    if (c->noise == NOISE_MUSIC && n_sg == 0) c->noise = NOISE_BABBLE;
    if ((c->noise == NOISE_BABBLE || c->noise == NOISE_SPEECH) && n_ss == 0) c->noise = NOISE_PINK;
    c->snr_db = INFINITY;
    if (c->noise == NOISE_NONE) return;
    int steps = (rc->snr_hi[c->split] - rc->snr_lo[c->split]) / rc->snr_step;
    c->snr_db = rc->snr_lo[c->split] + rc->snr_step * rng_range(r, 0, steps);
    c->noise_seed = rng_next(r);
    if (c->noise == NOISE_MUSIC) {
        c->noise_song = split_songs[rng_below(r, (uint64_t)n_sg)];
        c->noise_pos = rng_uniform(r);
    }
    if (c->noise == NOISE_BABBLE || c->noise == NOISE_SPEECH) {
        c->n_talkers = c->noise == NOISE_SPEECH ? 1 : rng_range(r, rc->babble_min, rc->babble_max);
        const char *own = c->task == TASK_WORD ? p->voices.v[p->styles[c->speech.style].voice].speaker : "";
        for (int t = 0; t < c->n_talkers; t++) {
            int s = split_styles[rng_below(r, (uint64_t)n_ss)];
            for (int tries = 0; tries < 20 && !strcmp(p->voices.v[p->styles[s].voice].speaker, own); tries++)
                s = split_styles[rng_below(r, (uint64_t)n_ss)];
            fill_stream(p, &c->talkers[t], s, -1, r);
        }
    }
}

/* Targets first (they decide each style's word pool), then the pools are
 * padded so context and babble words vary, then contexts and noise. */
static void plan_word_targets(Plan *p, Split sp, const int *ss, int n_ss, Rng *r) {
    int n = p->recipe->word_clips[sp];
    int *words = xmalloc((size_t)p->n_vocab * sizeof *words), *styles = xmalloc((size_t)n_ss * sizeof *styles);
    for (int k = 0; k < n; k++) {
        if (k % p->n_vocab == 0) {
            memcpy(words, p->vocab, (size_t)p->n_vocab * sizeof *words);
            shuffle(words, p->n_vocab, r);
        }
        if (k % n_ss == 0) {
            memcpy(styles, ss, (size_t)n_ss * sizeof *styles);
            shuffle(styles, n_ss, r);
        }
        ClipPlan *c = &p->clips[p->n_clips++];
        snprintf(c->id, sizeof c->id, "word-%s-%05d", split_name(sp), k);
        c->task = TASK_WORD;
        c->split = sp;
        c->label = words[k % p->n_vocab];
        c->speech.style = styles[k % n_ss];
        p->pool[(size_t)c->speech.style * p->n_all + c->label] = 1;
    }
    free(words);
    free(styles);
}

static void pad_pools(Plan *p, Rng *r) {
    int want = p->n_vocab < 12 ? p->n_vocab : 12;
    for (int s = 0; s < p->n_styles; s++) {
        unsigned char *pool = p->pool + (size_t)s * p->n_all;
        int have = 0;
        for (int i = 0; i < p->n_vocab; i++) have += pool[p->vocab[i]];
        while (have < want) {
            int w = p->vocab[rng_below(r, (uint64_t)p->n_vocab)];
            if (!pool[w]) pool[w] = 1, have++;
        }
    }
}

static void plan_songs(Plan *p, Rng *r) {
    const Recipe *rc = p->recipe;
    int max = 0;
    for (int sp = 0; sp < N_SPLITS; sp++) max += rc->songs_per_genre[sp] * p->n_genres;
    p->songs = xcalloc((size_t)max + 1, sizeof *p->songs);
    for (int sp = 0; sp < N_SPLITS; sp++)
        for (int g = 0; g < p->n_genres; g++)
            for (int k = 0; k < rc->songs_per_genre[sp]; k++)
                song_plan(&p->songs[p->n_songs++], p->genres[g], (Split)sp, k,
                          rc->excerpts_per_song, r);
}

static void plan_genre_clips(Plan *p, Split sp, Rng *r) {
    int counter = 0;
    for (int s = 0; s < p->n_songs; s++) {
        if (p->songs[s].split != sp) continue;
        for (int e = 0; e < p->songs[s].n_excerpts; e++) {
            ClipPlan *c = &p->clips[p->n_clips++];
            snprintf(c->id, sizeof c->id, "genre-%s-%05d", split_name(sp), counter++);
            c->task = TASK_GENRE;
            c->split = sp;
            c->label = p->songs[s].genre;
            c->song = s;
            c->slot = e;
            c->jitter = rng_uniform(r);
        }
    }
}

int plan_make(Plan *p, const Recipe *rc, uint64_t seed, Error *err) {
    memset(p, 0, sizeof *p);
    p->recipe = rc;
    p->seed = seed;
    if (voices_list(&p->voices, err) != 0) return -1;
    Rng r;
    rng_seed(&r, seed);
    p->n_all = stimuli_vocabulary_size();
    p->vocab = xmalloc((size_t)p->n_all * sizeof *p->vocab);
    p->n_vocab = vocabulary_select(rc->n_vocab, p->vocab);
    p->n_genres = rc->n_genres < stimuli_genre_count() ? rc->n_genres : stimuli_genre_count();
    p->genres = xmalloc((size_t)p->n_genres * sizeof *p->genres);
    for (int g = 0; g < p->n_genres; g++) p->genres[g] = g;
    if (plan_voices(p, &r, err) != 0) return plan_free(p), -1;
    p->pool = xcalloc((size_t)p->n_styles * (size_t)p->n_all + 1, 1);
    plan_songs(p, &r);
    int total = p->n_songs * rc->excerpts_per_song;
    for (int sp = 0; sp < N_SPLITS; sp++) total += rc->word_clips[sp];
    p->clips = xcalloc((size_t)total + 1, sizeof *p->clips);
    int *ss = xmalloc((size_t)p->n_styles * sizeof *ss + 1);
    for (int sp = 0; sp < N_SPLITS; sp++) {
        int n_ss = styles_of(p, (Split)sp, ss);
        if (rc->word_clips[sp] > 0) plan_word_targets(p, (Split)sp, ss, n_ss, &r);
        plan_genre_clips(p, (Split)sp, &r);
    }
    pad_pools(p, &r);
    int *songs = xmalloc((size_t)p->n_songs * sizeof *songs + 1);
    for (int i = 0; i < p->n_clips; i++) {
        ClipPlan *c = &p->clips[i];
        int n_ss = styles_of(p, c->split, ss), n_sg = 0;
        for (int s = 0; s < p->n_songs; s++)
            if (p->songs[s].split == c->split) songs[n_sg++] = s;
        if (c->task == TASK_WORD) {
            fill_stream(p, &c->speech, c->speech.style, c->label, &r);
            c->speech.speed_milli = rng_range(&r, rc->speed_lo, rc->speed_hi);
        }
        plan_noise(p, c, ss, n_ss, songs, n_sg, &r);
    }
    free(songs);
    free(ss);
    return 0;
}

void plan_free(Plan *p) {
    voices_free(&p->voices);
    free(p->vocab), free(p->genres), free(p->styles), free(p->pool);
    free(p->songs), free(p->clips);
    memset(p, 0, sizeof *p);
}

void plan_row(const Plan *p, const ClipPlan *c, ManifestRow *row, char bufs[6][128]) {
    snprintf(bufs[0], 128, "clips/%s.wav", c->id);
    if (c->task == TASK_WORD) {
        const Voice *v = &p->voices.v[p->styles[c->speech.style].voice];
        snprintf(bufs[1], 128, "%s", stimuli_vocabulary_word(c->label));
        snprintf(bufs[2], 128, "%.*s", (int)strcspn(v->id, ":"), v->id);
        snprintf(bufs[3], 128, "%s", v->id);
    } else {
        const Song *s = &p->songs[c->song];
        snprintf(bufs[1], 128, "%s", stimuli_genre_name(c->label));
        snprintf(bufs[2], 128, "mma:%s", s->groove);
        snprintf(bufs[3], 128, "song:%s", s->id);
    }
    *row = (ManifestRow){
        .clip_id = (char *)c->id, .path = bufs[0], .task = c->task == TASK_WORD ? "word" : "genre",
        .label = bufs[1], .source = bufs[2], .speaker_or_style = bufs[3],
        .noise = (char *)noise_name(c->noise), .split = (char *)split_name(c->split),
        .snr_db = c->snr_db, .seed = (int64_t)p->seed};
}
