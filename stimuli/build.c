/* `metamers stimuli build`: plan (recipes.c), render what the pending clips
 * need with the external programs (voices.c, music.c) into DIR/.cache,
 * assemble and write the clips in parallel (mix.c), and keep
 * DIR/manifest.csv current.
 *
 * Resuming: a clip is kept when the old manifest has exactly the row the
 * plan would write for it and its file is a valid 2 s, 20 kHz, RMS 0.1
 * clip; everything else is (re)made. The manifest is rewritten atomically
 * every few seconds with the clips finished so far, and the renders are
 * cached, so a killed build loses at most the clips in flight. The cache
 * is removed when the build completes (--keep-cache keeps it). */
#include <ftw.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stim_internal.h"

typedef struct {
    const char *recipe, *out;
    uint64_t seed;
    int have_seed, jobs, keep_components, keep_cache, quiet;
    int train_draws; /* 0: the recipe's */
} BuildOptions;

typedef struct {
    BuildOptions opt;
    int only_split; /* -1: every split; else the extra draws' SPLIT_TRAIN */
    Plan plan;
    char clips_dir[1024], cache_dir[1024], tmp_dir[1024], comp_dir[1024], manifest[1024];
    unsigned char *done, *style_needed, *song_needed;
    int *tasks, n_tasks; /* render tasks: >= 0 style, < 0 song -(i+1) */
    int *pending, n_pending;
    UttStore store;
    pthread_mutex_t mu;
    /* progress is weighted by rough CPU cost (a clip = 1), so the bar and
     * the time left do not stall on the render phase */
    double w_done, w_total;
    int renders_done, clips_done, n_kept, n_written, last_pct;
    Audio *song_cache; /* per worker: the last song read (clips come in song order) */
    int *song_cached;
    double t0, last_print, last_manifest;
    atomic_int failed; /* read by workers without the lock to skip work */
    Error err;
} Build;

/* ------------------------------------------------------------- progress */

static void progress(Build *b, int force) {
    if (b->opt.quiet) return;
    double now = now_seconds();
    int pct = b->w_total > 0 ? (int)(100 * b->w_done / b->w_total) : 100;
    int tty = isatty(2);
    if (!force && (tty ? now - b->last_print < 0.2 : pct / 10 == b->last_pct / 10)) return;
    b->last_print = now;
    b->last_pct = pct;
    double el = now - b->t0, eta = b->w_done > 0 ? el * (b->w_total - b->w_done) / b->w_done : 0;
    char bar[31];
    for (int i = 0; i < 30; i++) bar[i] = i < pct * 30 / 100 ? '#' : '-';
    bar[30] = 0;
    fprintf(stderr, "%sstimuli %s [%s] %3d%%  renders %d/%d  clips %d/%d  %.0f s, ~%.0f s left%s",
            tty ? "\r" : "", b->plan.recipe->name, bar, pct, b->renders_done, b->n_tasks,
            b->clips_done, b->n_pending, el, eta, tty ? "   " : "\n");
    fflush(stderr);
}

/* Cost of a render task in clips (~10 ms each): measured on 2 cores. */
static double task_weight(const Build *b, int task) {
    if (task < 0) return 60; /* mma + fluidsynth */
    int n = 0;
    for (int i = 0; i < b->plan.n_vocab; i++)
        n += b->plan.pool[(size_t)task * b->plan.n_all + b->plan.vocab[i]];
    switch (b->plan.voices.v[b->plan.styles[task].voice].engine) {
    case ENGINE_FLITE: return 5.0 * n;     /* a process per word */
    case ENGINE_FESTIVAL: return 150 + 2.0 * n;
    default: return 20 + 0.2 * n;
    }
}

/* ------------------------------------------------------------- manifest */

static int write_manifest(Build *b, Error *err) {
    Manifest m;
    manifest_init(&m);
    for (int i = 0; i < b->plan.n_clips; i++) {
        if (!b->done[i]) continue;
        ManifestRow row;
        char bufs[6][128];
        plan_row(&b->plan, &b->plan.clips[i], &row, bufs);
        manifest_add(&m, &row);
    }
    int rc = manifest_write(b->manifest, &m, err);
    manifest_free(&m);
    return rc;
}

/* Called with b->mu held after each clip. */
static void clip_finished(Build *b) {
    b->w_done += 1;
    b->clips_done++;
    progress(b, 0);
    double now = now_seconds();
    if (now - b->last_manifest > 2.0) {
        Error e;
        if (write_manifest(b, &e) != 0) fprintf(stderr, "\nmetamers: warning: %s\n", e.msg);
        b->last_manifest = now;
    }
}

static void fail(Build *b, const Error *e) {
    pthread_mutex_lock(&b->mu);
    if (!b->failed) b->err = *e, b->failed = 1;
    pthread_mutex_unlock(&b->mu);
}

/* ---------------------------------------------------------------- paths */

/* snprintf behind a function, so long --out folders are a runtime length
 * question rather than a compile-time truncation warning. */
static void fmt_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_path(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static void clip_path(const Build *b, const ClipPlan *c, char *buf, size_t n) {
    fmt_path(buf, n, "%s/%s.wav", b->clips_dir, c->id);
}

static void style_path(const Build *b, int s, char *buf, size_t n) {
    fmt_path(buf, n, "%s/voices/%s.safetensors", b->cache_dir, b->plan.styles[s].key);
}

static void song_path(const Build *b, int s, char *buf, size_t n) {
    fmt_path(buf, n, "%s/songs/%s.wav", b->cache_dir, b->plan.songs[s].key);
}

static int pool_words(const Plan *p, int style, int *out) {
    int n = 0;
    for (int i = 0; i < p->n_vocab; i++)
            if (p->pool[(size_t)style * p->n_all + p->vocab[i]]) out[n++] = p->vocab[i];
    return n;
}

/* --------------------------------------------------------------- resume */

static int clip_valid(const char *path) {
    Audio a;
    Error e;
    if (access(path, R_OK) != 0 || audio_read(path, 0, STIM_SAMPLES, &a, &e) != 0) return 0;
    int ok = a.rate == STIM_RATE && fabs(audio_rms(a.samples, a.n) - STIM_RMS) < 1e-3;
    audio_free(&a);
    return ok;
}

typedef struct {
    Build *b;
    const Manifest *old;
} ResumeCtx;

static void resume_task(void *ctx, int i, int worker) {
    (void)worker;
    ResumeCtx *rc = ctx;
    Build *b = rc->b;
    ManifestRow row;
    char bufs[6][128], path[1200];
    plan_row(&b->plan, &b->plan.clips[i], &row, bufs);
    int k = manifest_find(rc->old, row.clip_id);
    if (k < 0 || !manifest_row_equal(&rc->old->rows[k], &row)) return;
    clip_path(b, &b->plan.clips[i], path, sizeof path);
    b->done[i] = (unsigned char)clip_valid(path);
}

static void find_kept(Build *b, Pool *pool) {
    Manifest old;
    Error e;
    if (access(b->manifest, F_OK) != 0) return;
    if (manifest_read(b->manifest, &old, &e) != 0) {
        fprintf(stderr, "metamers: warning: %s (rebuilding every clip)\n", e.msg);
        return;
    }
    ResumeCtx ctx = {b, &old};
    pool_run(pool, resume_task, &ctx, b->plan.n_clips);
    manifest_free(&old);
    for (int i = 0; i < b->plan.n_clips; i++) b->n_kept += b->done[i];
}

/* ---------------------------------------------------------------- needs */

static void mark_stream(Build *b, const Stream *s) { b->style_needed[s->style] = 1; }

static void find_needs(Build *b) {
    const Plan *p = &b->plan;
    b->style_needed = xcalloc((size_t)p->n_styles + 1, 1);
    b->song_needed = xcalloc((size_t)p->n_songs + 1, 1);
    b->pending = xmalloc(((size_t)p->n_clips + 1) * sizeof *b->pending);
    for (int i = 0; i < p->n_clips; i++) {
        const ClipPlan *c = &p->clips[i];
        if (b->done[i] || (b->only_split >= 0 && c->split != (Split)b->only_split)) continue;
        b->pending[b->n_pending++] = i;
        if (c->task == TASK_WORD) mark_stream(b, &c->speech);
        if (c->task == TASK_GENRE) b->song_needed[c->song] = 1;
        if (c->noise == NOISE_MUSIC) b->song_needed[c->noise_song] = 1;
        for (int t = 0; t < c->n_talkers; t++) mark_stream(b, &c->talkers[t]);
    }
}

/* A cached style file is reused when it holds every word of the pool. */
static int style_cached(const Build *b, int s) {
    char path[1200];
    style_path(b, s, path, sizeof path);
    if (access(path, R_OK) != 0) return 0;
    Safetensors t;
    Error e;
    if (safetensors_open(&t, path, &e) != 0) return 0;
    int *words = xmalloc((size_t)b->plan.n_all * sizeof *words);
    int n = pool_words(&b->plan, s, words), ok = 1;
    for (int i = 0; i < n && ok; i++) ok = safetensors_find(&t, stimuli_vocabulary_word(words[i])) != NULL;
    free(words);
    safetensors_close(&t);
    return ok;
}

/* Render tasks, slowest first so the two workers finish together:
 * festival (1.5 s start-up), flite (a call per word), songs, espeak. */
static void plan_tasks(Build *b) {
    const Plan *p = &b->plan;
    b->tasks = xmalloc(((size_t)p->n_styles + (size_t)p->n_songs + 1) * sizeof *b->tasks);
    const Engine order[] = {ENGINE_FESTIVAL, ENGINE_FLITE};
    for (int o = 0; o < 2; o++)
        for (int s = 0; s < p->n_styles; s++)
            if (b->style_needed[s] && p->voices.v[p->styles[s].voice].engine == order[o] &&
                !style_cached(b, s))
                b->tasks[b->n_tasks++] = s;
    char path[1200];
    for (int s = 0; s < p->n_songs; s++) {
        song_path(b, s, path, sizeof path);
        if (b->song_needed[s] && access(path, R_OK) != 0) b->tasks[b->n_tasks++] = -(s + 1);
    }
    for (int s = 0; s < p->n_styles; s++)
        if (b->style_needed[s] && p->voices.v[p->styles[s].voice].engine == ENGINE_ESPEAK &&
            !style_cached(b, s))
            b->tasks[b->n_tasks++] = s;
}

static void render_task(void *ctx, int i, int worker) {
    (void)worker;
    Build *b = ctx;
    if (b->failed) return;
    int t = b->tasks[i], rc;
    char path[1200];
    Error e;
    if (t >= 0) {
        int *words = xmalloc((size_t)b->plan.n_all * sizeof *words);
        int n = pool_words(&b->plan, t, words);
        style_path(b, t, path, sizeof path);
        rc = style_render(&b->plan.styles[t], &b->plan.voices, words, n, b->tmp_dir, path, &e);
        free(words);
    } else {
        song_path(b, -t - 1, path, sizeof path);
        rc = song_render(&b->plan.songs[-t - 1], b->tmp_dir, path, &e);
    }
    if (rc != 0) return fail(b, &e);
    pthread_mutex_lock(&b->mu);
    b->w_done += task_weight(b, t);
    b->renders_done++;
    progress(b, 0);
    pthread_mutex_unlock(&b->mu);
}

static void load_task(void *ctx, int s, int worker) {
    (void)worker;
    Build *b = ctx;
    if (!b->style_needed[s] || b->failed) return;
    int *words = xmalloc((size_t)b->plan.n_all * sizeof *words);
    int n = pool_words(&b->plan, s, words);
    char path[1200];
    Error e;
    style_path(b, s, path, sizeof path);
    if (utt_store_load(&b->store, s, path, words, n, &e) != 0) fail(b, &e);
    free(words);
}

/* ----------------------------------------------------------------- clips */

/* Songs are read whole (a few MB); each worker keeps the last one, and
 * genre clips come in song order, so most clips reuse it. */
static const Audio *get_song(Build *b, int song, int worker, char *path, size_t n, Error *err) {
    song_path(b, song, path, n);
    Audio *a = &b->song_cache[worker];
    if (b->song_cached[worker] == song) return a;
    audio_free(a);
    b->song_cached[worker] = -1;
    if (audio_read(path, STIM_RATE, 0, a, err) != 0) return NULL;
    b->song_cached[worker] = song;
    return a;
}

static int background(Build *b, const ClipPlan *c, int worker, float *noise, Error *err) {
    char path[1200];
    const Audio *song;
    switch (c->noise) {
    case NOISE_BABBLE:
    case NOISE_SPEECH:
        return babble_render(c->talkers, c->n_talkers, &b->store, noise, err);
    case NOISE_PINK:
        pink_noise(c->noise_seed, noise, STIM_SAMPLES);
        return 0;
    case NOISE_WHITE:
        white_noise(c->noise_seed, noise, STIM_SAMPLES);
        return 0;
    case NOISE_MUSIC:
        if (!(song = get_song(b, c->noise_song, worker, path, sizeof path, err))) return -1;
        return song_excerpt(song, path, 0, 1, c->noise_pos, noise, err);
    default:
        return 0;
    }
}

static int write_components(Build *b, const ClipPlan *c, const float *target,
                            const float *noise, Error *err) {
    char path[1200];
    fmt_path(path, sizeof path, "%s/%s.target.wav", b->comp_dir, c->id);
    if (audio_write_wav(path, target, STIM_SAMPLES, 1, STIM_RATE, AUDIO_FLOAT32, NULL, err) != 0)
        return -1;
    if (!noise) return 0;
    fmt_path(path, sizeof path, "%s/%s.noise.wav", b->comp_dir, c->id);
    return audio_write_wav(path, noise, STIM_SAMPLES, 1, STIM_RATE, AUDIO_FLOAT32, NULL, err);
}

static int make_clip(Build *b, const ClipPlan *c, int worker, float *target, float *noise,
                     float *mix, Error *err) {
    char path[1200];
    int rc;
    if (c->task == TASK_WORD) {
        rc = stream_render(&c->speech, &b->store, target, err);
    } else {
        const Audio *song = get_song(b, c->song, worker, path, sizeof path, err);
        rc = song ? song_excerpt(song, path, c->slot, b->plan.songs[c->song].n_excerpts,
                                 c->jitter, target, err)
                  : -1;
    }
    int noisy = c->noise != NOISE_NONE;
    if (rc == 0 && noisy) rc = background(b, c, worker, noise, err);
    if (rc == 0) rc = mix_at_snr(target, noisy ? noise : NULL, c->snr_db, mix, err);
    if (rc == 0 && b->opt.keep_components) rc = write_components(b, c, target, noisy ? noise : NULL, err);
    clip_path(b, c, path, sizeof path);
    if (rc == 0)
        rc = audio_write_wav(path, mix, STIM_SAMPLES, 1, STIM_RATE, AUDIO_FLOAT32, NULL, err);
    if (rc != 0) error_prefix(err, "clip %s", c->id);
    return rc;
}

static void clip_task(void *ctx, int k, int worker) {
    Build *b = ctx;
    if (b->failed) return;
    int i = b->pending[k];
    float *buf = xmalloc(3 * STIM_SAMPLES * sizeof *buf);
    Error e;
    int rc = make_clip(b, &b->plan.clips[i], worker, buf, buf + STIM_SAMPLES, buf + 2 * STIM_SAMPLES, &e);
    free(buf);
    if (rc != 0) return fail(b, &e);
    pthread_mutex_lock(&b->mu);
    b->done[i] = 1;
    b->n_written++;
    clip_finished(b);
    pthread_mutex_unlock(&b->mu);
}

/* ----------------------------------------------------------------- setup */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int check_programs(const Recipe *r, Error *err) {
    int flite = 0, festival = 0, songs = 0;
    for (int sp = 0; sp < N_SPLITS; sp++) {
        flite += r->n_voices[sp][ENGINE_FLITE];
        festival += r->n_voices[sp][ENGINE_FESTIVAL];
        songs += r->songs_per_genre[sp];
    }
    if (prog_require(PROG_ESPEAK, err) != 0) return -1;
    if (flite && prog_require(PROG_FLITE, err) != 0) return -1;
    if (festival && prog_require(PROG_FESTIVAL, err) != 0) return -1;
    if (songs && (prog_require(PROG_MMA, err) != 0 || prog_require(PROG_FLUIDSYNTH, err) != 0 ||
                  soundfont_check(err) != 0))
        return -1;
    return 0;
}

static int check_festival_voices(const Plan *p, Error *err) {
    for (int s = 0; s < p->n_styles; s++) {
        const Voice *v = &p->voices.v[p->styles[s].voice];
        if (v->engine == ENGINE_FESTIVAL && festival_voice_check(v->name, err) != 0) return -1;
    }
    return 0;
}

static int setup_dirs(Build *b, Error *err) {
    const char *out = b->opt.out;
    fmt_path(b->clips_dir, sizeof b->clips_dir, "%s/clips", out);
    fmt_path(b->cache_dir, sizeof b->cache_dir, "%s/.cache", out);
    fmt_path(b->tmp_dir, sizeof b->tmp_dir, "%s/.cache/tmp", out);
    fmt_path(b->comp_dir, sizeof b->comp_dir, "%s/components", out);
    fmt_path(b->manifest, sizeof b->manifest, "%s/manifest.csv", out);
    char voices[1100], songs[1100];
    fmt_path(voices, sizeof voices, "%s/voices", b->cache_dir);
    fmt_path(songs, sizeof songs, "%s/songs", b->cache_dir);
    remove_tree(b->tmp_dir); /* scratch files of a killed build */
    if (make_dirs(b->clips_dir, 0755, err) || make_dirs(voices, 0755, err) ||
        make_dirs(songs, 0755, err) || make_dirs(b->tmp_dir, 0755, err))
        return -1;
    if (b->opt.keep_components && make_dirs(b->comp_dir, 0755, err)) return -1;
    return 0;
}

/* ------------------------------------------------------------------ run */

static int run_phases(Build *b, Pool *pool, Error *err) {
    Plan *p = &b->plan;
    b->done = xcalloc((size_t)p->n_clips + 1, 1);
    find_kept(b, pool);
    find_needs(b);
    plan_tasks(b);
    b->w_total = b->n_pending;
    for (int i = 0; i < b->n_tasks; i++) b->w_total += task_weight(b, b->tasks[i]);
    b->t0 = b->last_manifest = now_seconds();
    if (!b->opt.quiet && b->n_kept)
        fprintf(stderr, "stimuli %s: resuming, %d of %d clips already done\n", p->recipe->name,
                b->n_kept, p->n_clips);
    pool_run(pool, render_task, b, b->n_tasks);
    if (!b->failed) {
        b->store.n_styles = p->n_styles;
        b->store.n_words = p->n_all;
        b->store.x = xcalloc((size_t)p->n_styles * (size_t)p->n_all + 1, sizeof *b->store.x);
        b->store.n = xcalloc((size_t)p->n_styles * (size_t)p->n_all + 1, sizeof *b->store.n);
        pool_run(pool, load_task, b, p->n_styles);
    }
    b->song_cache = xcalloc((size_t)pool_size(pool), sizeof *b->song_cache);
    b->song_cached = xmalloc((size_t)pool_size(pool) * sizeof *b->song_cached);
    for (int w = 0; w < pool_size(pool); w++) b->song_cached[w] = -1;
    if (!b->failed) pool_run(pool, clip_task, b, b->n_pending);
    for (int w = 0; w < pool_size(pool); w++) audio_free(&b->song_cache[w]);
    free(b->song_cache), free(b->song_cached);
    if (!b->opt.quiet && isatty(2)) {
        progress(b, 1);
        fputc('\n', stderr);
    }
    Error e;
    int rc = write_manifest(b, &e);
    if (b->failed) return error_set(err, "%s", b->err.msg);
    if (rc != 0) return error_set(err, "%s", e.msg);
    return 0;
}

/* One draw: the plan of `seed` built into `out`, only clips of split
 * `only_split` when it is >= 0. */
static int build_draw(const BuildOptions *opt, const Recipe *r, uint64_t seed, const char *out,
                      int only_split, Error *err) {
    Build *b = xcalloc(1, sizeof *b);
    b->opt = *opt;
    b->opt.out = out;
    b->only_split = only_split;
    pthread_mutex_init(&b->mu, NULL);
    int rc = plan_make(&b->plan, r, seed, err);
    if (rc == 0) rc = check_festival_voices(&b->plan, err);
    if (rc == 0) rc = setup_dirs(b, err);
    if (rc == 0) {
        Pool *pool = pool_create(opt->jobs);
        double t0 = now_seconds();
        rc = run_phases(b, pool, err);
        pool_free(pool);
        if (rc == 0 && !opt->quiet)
            fprintf(stderr, "stimuli %s, seed %" PRIu64 "%s: %d clips (%d kept, %d written) in %.1f s: %s\n",
                    r->name, seed, only_split >= 0 ? ", training clips" : "", b->n_kept + b->n_written,
                    b->n_kept, b->n_written, now_seconds() - t0, b->manifest);
    }
    if (rc == 0) {
        remove_tree(b->tmp_dir);
        if (!opt->keep_cache) remove_tree(b->cache_dir);
    }
    utt_store_free(&b->store);
    free(b->done), free(b->style_needed), free(b->song_needed), free(b->tasks), free(b->pending);
    if (b->plan.clips) plan_free(&b->plan);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return rc;
}

/* The seed's whole set into DIR, then each extra draw of the training
 * split into its own folder (draws.c), then the joined manifest. */
static int build(const BuildOptions *opt, Error *err) {
    const Recipe *r = recipe_find(opt->recipe);
    if (!r) {
        char names[128] = "";
        for (int i = 0; i < recipe_count(); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", recipe_at(i)->name);
        return error_set(err, "unknown recipe '%s' (%s)", opt->recipe, names);
    }
    uint64_t seed = opt->have_seed ? opt->seed : r->default_seed;
    int draws = opt->train_draws > 0 ? opt->train_draws : r->train_draws > 0 ? r->train_draws : 1;
    int rc = check_programs(r, err);
    if (rc == 0) rc = build_draw(opt, r, seed, opt->out, -1, err);
    for (int d = 1; d < draws && rc == 0; d++) {
        char dir[1100];
        draw_dir(opt->out, seed + (uint64_t)d, dir, sizeof dir);
        rc = build_draw(opt, r, seed + (uint64_t)d, dir, SPLIT_TRAIN, err);
    }
    if (rc == 0 && draws > 1) rc = draws_join(opt->out, seed, draws, opt->quiet, err);
    return rc;
}

/* -------------------------------------------------------------- options */

static void usage(FILE *f) {
    fprintf(f,
            "usage: metamers stimuli build --recipe RECIPE --out DIR [--seed N] [--jobs N]\n"
            "                              [--train-draws N] [--keep-components] [--keep-cache] [--quiet]\n\n"
            "Synthesizes a labelled stimulus set: DIR/manifest.csv and DIR/clips/*.wav\n"
            "(20 kHz mono float WAV, 2 s, RMS 0.1). Words spoken by espeak-ng, flite and\n"
            "festival voices (target word centred at 1 s); genres from MMA grooves rendered\n"
            "by fluidsynth; backgrounds (babble, pink, white, music, speech) at the\n"
            "recipe's SNRs. Same recipe and seed give byte-identical files. Rerunning\n"
            "resumes: valid clips are kept.\n\n"
            "  --recipe R          one of:\n");
    for (int i = 0; i < recipe_count(); i++)
        fprintf(f, "                        %-11s %s\n", recipe_at(i)->name, recipe_at(i)->summary);
    fprintf(f,
            "  --out DIR           output folder (created)\n"
            "  --seed N            random seed (default: the recipe's)\n"
            "  --train-draws N     draw the training split N times, from seeds S..S+N-1\n"
            "                      (default: the recipe's; train: 2); the extra draws'\n"
            "                      training clips go to DIR/s<seed>/ and join the\n"
            "                      manifest; the test split is seed S's alone\n"
            "  --jobs N            parallel jobs (default: METAMERS_THREADS or all cores)\n"
            "  --keep-components   also write DIR/components/<clip>.target.wav and\n"
            "                      .noise.wav (scaled as in the mix: mix = target + noise)\n"
            "  --keep-cache        keep DIR/.cache (rendered voices and songs)\n"
            "  --quiet             no progress bar\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

/* Returns 1 when --help was given, -1 on error (message printed). */
static int parse_options(int argc, char **argv, BuildOptions *o) {
    memset(o, 0, sizeof *o);
    o->jobs = default_thread_count();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 1;
        if (!strcmp(a, "--keep-components")) o->keep_components = 1;
        else if (!strcmp(a, "--keep-cache")) o->keep_cache = 1;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--recipe") || !strcmp(a, "--out") || !strcmp(a, "--seed") ||
                 !strcmp(a, "--jobs") || !strcmp(a, "--train-draws")) {
            if (!val) return fprintf(stderr, "metamers: stimuli build: %s needs a value\n", a), -1;
            i++;
            if (!strcmp(a, "--recipe")) o->recipe = val;
            else if (!strcmp(a, "--out")) o->out = val;
            else if (parse_u64(val, &u) != 0 || (!strcmp(a, "--jobs") && (u < 1 || u > 256)) ||
                     (!strcmp(a, "--train-draws") && (u < 1 || u > 16)))
                return fprintf(stderr, "metamers: stimuli build: bad %s '%s'\n", a, val), -1;
            else if (!strcmp(a, "--seed")) o->seed = u, o->have_seed = 1;
            else if (!strcmp(a, "--train-draws")) o->train_draws = (int)u;
            else o->jobs = (int)u;
        } else {
            return fprintf(stderr, "metamers: stimuli build: unknown option '%s' (see --help)\n", a), -1;
        }
    }
    if (!o->recipe || !o->out)
        return fprintf(stderr, "metamers: stimuli build: --recipe and --out are required (see --help)\n"), -1;
    return 0;
}

int stimuli_cmd_build(int argc, char **argv) {
    BuildOptions o;
    int p = parse_options(argc, argv, &o);
    if (p != 0) return p > 0 ? 0 : 2;
    Error err;
    if (build(&o, &err) != 0) {
        fprintf(stderr, "metamers: %s\n", err.msg);
        return 1;
    }
    return 0;
}
