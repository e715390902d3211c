/* The null distribution of Feather et al. 2023's success criterion: the same
 * statistics (Spearman, Pearson, SNR) between the activations of random
 * pairs of different natural clips, per stage. A metamer passes only if it
 * beats the maximum of each, i.e. it is closer to its clip than any two
 * natural clips are to each other.
 *
 * Pairs are distinct unordered pairs drawn with a seeded RNG, in a random
 * order, so any prefix is itself a random sample (cmd_null.c prints the
 * running maximum over prefixes to show it has settled). Each pair costs two
 * forwards; nothing is kept per clip, so memory does not grow with the
 * training set. Cached next to the model, keyed by the model's SHA-256.
 * A model with several tasks has one null per task (synth_null_key). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

#define NULL_FORMAT "metamers-null/1"

/* ------------------------------------------------------------ pairs */

/* n_pairs distinct pairs (a < b) of [0, n): by rejection when few of the
 * n(n-1)/2 are wanted, else a partial shuffle of all of them. */
void null_sample_pairs(int n, int n_pairs, uint64_t seed, int *pa, int *pb) {
    Rng r;
    rng_seed(&r, seed);
    uint64_t total = (uint64_t)n * (uint64_t)(n - 1) / 2;
    if ((uint64_t)n_pairs * 4 >= total) {
        int *ia = xmalloc(total * sizeof *ia), *ib = xmalloc(total * sizeof *ib), k = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) ia[k] = i, ib[k++] = j;
        for (int k2 = 0; k2 < n_pairs; k2++) {
            uint64_t s = k2 + rng_below(&r, total - (uint64_t)k2);
            int t = ia[k2]; ia[k2] = ia[s]; ia[s] = t;
            t = ib[k2]; ib[k2] = ib[s]; ib[s] = t;
            pa[k2] = ia[k2], pb[k2] = ib[k2];
        }
        free(ia), free(ib);
        return;
    }
    /* Open addressing on a < b keys; load factor <= 1/4 here. */
    size_t cap = 16;
    while (cap < (size_t)n_pairs * 4) cap *= 2;
    uint64_t *set = xcalloc(cap, sizeof *set); /* key + 1, 0 = empty */
    for (int k = 0; k < n_pairs;) {
        int a = (int)rng_below(&r, (uint64_t)n), b = (int)rng_below(&r, (uint64_t)n - 1);
        if (b >= a) b++;
        if (a > b) { int t = a; a = b; b = t; }
        uint64_t key = (uint64_t)a * (uint64_t)n + (uint64_t)b + 1;
        size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
        while (set[h] && set[h] != key) h = (h + 1) & (cap - 1);
        if (set[h]) continue; /* drawn before */
        set[h] = key;
        pa[k] = a, pb[k++] = b;
    }
    free(set);
}

/* --------------------------------------------------------- computation */

typedef struct {
    const Network *net;
    float *const *waves;
    const int *stages, *pa, *pb;
    int n_stages, n_pairs;
    ModelRun *runs;
    float **buf;      /* per worker: clip a's activations, stages concatenated */
    size_t *offset;   /* of each stage in buf */
    NullStage *out;
} NullCtx;

static void null_pair(void *vctx, int k, int worker) {
    NullCtx *c = vctx;
    ModelRun *m = &c->runs[worker];
    float *buf = c->buf[worker];
    model_forward(m, c->waves[c->pa[k]], c->stages, c->n_stages);
    for (int s = 0; s < c->n_stages; s++)
        memcpy(buf + c->offset[s], model_stage_output(m, c->stages[s]),
               (c->offset[s + 1] - c->offset[s]) * sizeof(float));
    model_forward(m, c->waves[c->pb[k]], c->stages, c->n_stages);
    for (int s = 0; s < c->n_stages; s++) {
        const float *a = buf + c->offset[s], *b = model_stage_output(m, c->stages[s]);
        size_t n = c->offset[s + 1] - c->offset[s];
        c->out[s].spearman[k] = (float)synth_spearman(a, b, n);
        c->out[s].pearson[k] = (float)synth_pearson(a, b, n);
        c->out[s].snr_db[k] = (float)synth_snr_db(a, b, n);
    }
}

/* Maximum over finite values; -inf if there is none (e.g. a stage whose
 * activations are constant, so every correlation is undefined). */
static double max_finite(const float *x, int n) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && x[i] > m) m = x[i];
    return m;
}

static void null_stage_maxima(NullStage *s) {
    s->max_spearman = max_finite(s->spearman, s->n_pairs);
    s->max_pearson = max_finite(s->pearson, s->n_pairs);
    s->max_snr_db = max_finite(s->snr_db, s->n_pairs);
}

int synth_null_compute(const Network *net, int task, float *const *waves, int n_clips,
                       const int *stages, int n_stages, int n_pairs, uint64_t seed, int threads,
                       NullDist *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (n_clips < 2) return error_set(err, "the null distribution needs at least 2 clips (got %d)", n_clips);
    uint64_t total = (uint64_t)n_clips * (uint64_t)(n_clips - 1) / 2;
    if (n_pairs < 1) return error_set(err, "--pairs must be at least 1");
    if ((uint64_t)n_pairs > total) n_pairs = (int)total;
    int workers = threads < 1 ? 1 : threads > n_pairs ? n_pairs : threads;
    NullCtx c = {.net = net, .waves = waves, .stages = stages, .n_stages = n_stages,
                 .n_pairs = n_pairs};
    int *pa = xmalloc((size_t)n_pairs * sizeof *pa), *pb = xmalloc((size_t)n_pairs * sizeof *pb);
    null_sample_pairs(n_clips, n_pairs, seed, pa, pb);
    c.pa = pa, c.pb = pb;
    c.offset = xmalloc(((size_t)n_stages + 1) * sizeof *c.offset);
    c.offset[0] = 0;
    for (int s = 0; s < n_stages; s++)
        c.offset[s + 1] = c.offset[s] + (size_t)architecture_stage_numel(&net->arch, stages[s]);
    /* One worker gets a pool for the cochleagram; several share the cores. */
    Pool *inner = workers == 1 ? pool_create(threads) : NULL;
    c.runs = xcalloc((size_t)workers, sizeof *c.runs);
    c.buf = xcalloc((size_t)workers, sizeof *c.buf);
    int rc = 0;
    for (int w = 0; w < workers && rc == 0; w++) {
        rc = model_run_init(&c.runs[w], net, inner, err);
        c.buf[w] = alloc_floats(c.offset[n_stages] ? c.offset[n_stages] : 1);
    }
    out->stages = xcalloc((size_t)n_stages, sizeof *out->stages);
    out->n_stages = n_stages;
    for (int s = 0; s < n_stages; s++) {
        NullStage *ns = &out->stages[s];
        char key[300];
        synth_null_key(net, task, stages[s], key, sizeof key);
        ns->stage = xstrdup(key);
        ns->n_pairs = n_pairs;
        ns->spearman = alloc_floats((size_t)n_pairs);
        ns->pearson = alloc_floats((size_t)n_pairs);
        ns->snr_db = alloc_floats((size_t)n_pairs);
    }
    c.out = out->stages;
    if (rc == 0) {
        Pool *outer = pool_create(workers);
        int old = blas_set_threads(1); /* as in synthesis: thread-count independent */
        pool_run(outer, null_pair, &c, n_pairs);
        blas_set_threads(old);
        pool_free(outer);
        for (int s = 0; s < n_stages; s++) null_stage_maxima(&out->stages[s]);
    }
    for (int w = 0; w < workers; w++) {
        model_run_free(&c.runs[w]);
        free(c.buf[w]);
    }
    if (inner) pool_free(inner);
    free(c.runs), free(c.buf), free(c.offset), free(pa), free(pb);
    if (rc != 0) synth_null_free(out);
    return rc;
}

void synth_null_key(const Network *net, int task, int stage, char *buf, size_t size) {
    if (net->n_tasks > 1 && task >= 0 && task < net->n_tasks)
        snprintf(buf, size, "%s:%s", net->task_names[task], synth_stage_name(net, stage));
    else
        snprintf(buf, size, "%s", synth_stage_name(net, stage));
}

bool synth_null_per_task(const Network *net, bool pooled) { return !pooled && net->n_tasks > 1; }

int synth_null_task(const Network *net, int task, bool pooled) {
    return synth_null_per_task(net, pooled) ? task : -1;
}

const NullStage *synth_null_of(const NullDist *d, const Network *net, int task, int stage) {
    char key[300];
    synth_null_key(net, task, stage, key, sizeof key);
    return synth_null_find(d, key);
}

const NullStage *synth_null_find(const NullDist *d, const char *key) {
    for (int s = 0; s < d->n_stages; s++)
        if (strcmp(d->stages[s].stage, key) == 0) return &d->stages[s];
    return NULL;
}

void synth_null_free(NullDist *d) {
    for (int s = 0; s < d->n_stages; s++) {
        free(d->stages[s].stage);
        free(d->stages[s].spearman), free(d->stages[s].pearson), free(d->stages[s].snr_db);
    }
    free(d->stages);
    free(d->source);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- cache */

char *synth_null_default_path(const char *model_spec) {
    if (strncmp(model_spec, "builtin:", 8) == 0) return NULL;
    size_t n = strlen(model_spec);
    char *p = xmalloc(n + 32);
    strcpy(p, model_spec);
    if (n > 12 && strcmp(p + n - 12, ".safetensors") == 0) p[n - 12] = 0;
    strcat(p, ".null.safetensors");
    return p;
}

static const char suffix[] = ".spearman";

int synth_null_load(const char *path, const char *model_sha256, NullDist *d, bool *stale,
                    Error *err) {
    memset(d, 0, sizeof *d);
    snprintf(d->model_sha256, sizeof d->model_sha256, "%s", model_sha256);
    if (stale) *stale = false;
    if (!synth_file_exists(path)) return 0;
    Safetensors f;
    if (safetensors_open(&f, path, err) != 0) return -1;
    const char *fmt = safetensors_metadata(&f, "format"), *sha = safetensors_metadata(&f, "model_sha256");
    int rc = 0;
    if (!fmt || strcmp(fmt, NULL_FORMAT) != 0) {
        rc = error_set(err, "%s: not a null-distribution cache (format %s)", path, fmt ? fmt : "missing");
    } else if (!sha || strcmp(sha, model_sha256) != 0) {
        if (stale) *stale = true; /* made for an earlier version of the model */
    } else {
        const char *src = safetensors_metadata(&f, "source");
        d->source = xstrdup(src ? src : "");
        d->stages = xcalloc((size_t)f.n_entries, sizeof *d->stages);
        for (int e = 0; e < f.n_entries && rc == 0; e++) {
            const char *name = f.entries[e].name;
            size_t len = strlen(name);
            if (len <= sizeof suffix - 1 || strcmp(name + len - (sizeof suffix - 1), suffix)) continue;
            NullStage *s = &d->stages[d->n_stages++];
            s->stage = strndup(name, len - (sizeof suffix - 1));
            char key[600];
            const SafetensorsEntry *en;
            snprintf(key, sizeof key, "%s.spearman", s->stage);
            rc = safetensors_load_f32(&f, key, &s->spearman, &en, err);
            s->n_pairs = rc == 0 ? (int)en->numel : 0;
            int64_t shape[1] = {s->n_pairs};
            s->pearson = alloc_floats((size_t)s->n_pairs + 1);
            s->snr_db = alloc_floats((size_t)s->n_pairs + 1);
            snprintf(key, sizeof key, "%s.pearson", s->stage);
            if (rc == 0) rc = safetensors_read_f32(&f, key, s->pearson, 1, shape, err);
            snprintf(key, sizeof key, "%s.snr_db", s->stage);
            if (rc == 0) rc = safetensors_read_f32(&f, key, s->snr_db, 1, shape, err);
            if (rc == 0) null_stage_maxima(s);
        }
    }
    safetensors_close(&f);
    if (rc != 0) synth_null_free(d);
    return rc;
}

int synth_null_store(const char *path, const NullDist *add, Error *err) {
    NullDist old;
    if (synth_null_load(path, add->model_sha256, &old, NULL, err) != 0) return -1;
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    int rc = 0;
    /* The new stages, then the cached ones they do not replace. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        const NullDist *d = pass == 0 ? add : &old;
        for (int s = 0; s < d->n_stages && rc == 0; s++) {
            const NullStage *ns = &d->stages[s];
            if (pass == 1 && synth_null_find(add, ns->stage)) continue;
            int64_t shape[1] = {ns->n_pairs};
            char key[600];
            snprintf(key, sizeof key, "%s.spearman", ns->stage);
            rc = safetensors_writer_add(&w, key, 1, shape, ns->spearman, err);
            snprintf(key, sizeof key, "%s.pearson", ns->stage);
            if (rc == 0) rc = safetensors_writer_add(&w, key, 1, shape, ns->pearson, err);
            snprintf(key, sizeof key, "%s.snr_db", ns->stage);
            if (rc == 0) rc = safetensors_writer_add(&w, key, 1, shape, ns->snr_db, err);
        }
    }
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "format", NULL_FORMAT, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "model_sha256", add->model_sha256, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "source", add->source ? add->source : "", err);
    if (rc == 0) rc = safetensors_writer_save(&w, path, err);
    safetensors_writer_free(&w);
    synth_null_free(&old);
    return rc;
}
