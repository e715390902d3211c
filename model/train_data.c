/* The manifest as a training set, the cochleagram cache and batch assembly.
 *
 * Caching: the stored clips' cochleagrams are computed once (over the pool)
 * and kept in memory in half precision (10k clips x 42 x 195 = 160 MB), and
 * optionally on disk (--cache DIR) so a second run skips the front end.
 * Augmentation:
 * - every example gets a random circular time shift (cheap, on the cached
 *   cochleagram; on the waveform for fresh mixes);
 * - a fraction of examples is remixed: the stored clip plus freshly generated
 *   pink or white noise at a random SNR. The cochleagram is nonlinear, so a
 *   fresh mix needs a fresh front-end pass: these run over the pool's workers
 *   (one CochleagramWork each) and bound the step time, which is why the
 *   fraction, not "every example", is the knob (model/README.md).
 * Every random choice of a step comes from an Rng seeded by (seed, epoch,
 * step, slot), so batches do not depend on thread scheduling or on resuming. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "train.h"

/* ----------------------------------------------------------- half floats */

static uint16_t to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7FFFFFu;
    int exp = (int)((x >> 23) & 0xFF) - 127 + 15;
    if (exp >= 31) return (uint16_t)(sign | 0x7C00u); /* overflow (cochleagrams never do) */
    if (exp <= 0) {                                   /* subnormal or zero */
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - exp;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* nearest even; carry is fine */
    return (uint16_t)(sign | h);
}

static float from_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FFu;
    uint32_t x;
    if (exp == 0) {
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31) x = sign | 0x7F800000u | (mant << 13);
    else x = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ------------------------------------------------------------ training set */

static int task_index(const Network *net, const char *task) {
    for (int t = 0; t < net->n_tasks; t++)
        if (strcmp(net->task_names[t], task) == 0) return t;
    return -1;
}

static int class_index(const Network *net, int t, const char *label) {
    for (int c = 0; c < net->n_classes[t]; c++)
        if (net->classes[t] && net->classes[t][c] && strcmp(net->classes[t][c], label) == 0)
            return c;
    return -1;
}

static int select_rows(TrainSet *ts, const Manifest *m, const char *split, const Network *net,
                       Error *err) {
    ts->rows = xmalloc(sizeof(int) * (size_t)(m->n ? m->n : 1));
    ts->task = xmalloc(sizeof(int) * (size_t)(m->n ? m->n : 1));
    ts->label = xmalloc(sizeof(int32_t) * (size_t)(m->n ? m->n : 1));
    for (int r = 0; r < m->n; r++) {
        const ManifestRow *row = &m->rows[r];
        if (strcmp(row->split, split) != 0) continue;
        int t = task_index(net, row->task);
        if (t < 0) return error_set(err, "clip %s: the network has no task '%s'", row->clip_id, row->task);
        int c = class_index(net, t, row->label);
        if (c < 0)
            return error_set(err, "clip %s: '%s' is not a class of the network's %s task",
                             row->clip_id, row->label, row->task);
        ts->rows[ts->n] = r, ts->task[ts->n] = t, ts->label[ts->n] = c;
        ts->n++;
    }
    if (!ts->n) return error_set(err, "the manifest has no '%s' clips", split);
    return 0;
}

int train_set_select(TrainSet *ts, const Manifest *m, const char *split, const Network *net,
                     Error *err) {
    memset(ts, 0, sizeof *ts);
    ts->m = m;
    return select_rows(ts, m, split, net, err);
}

typedef struct {
    TrainSet *ts;
    const Cochleagram *coch;
    CochleagramWork **work;
    float **out;
    Error *errs;
    int *failed; /* per worker: first failing example + 1 */
} CacheCtx;

static void cache_one(void *vctx, int i, int worker) {
    CacheCtx *c = vctx;
    if (c->failed[worker]) return;
    const ManifestRow *row = &c->ts->m->rows[c->ts->rows[i]];
    char *path = manifest_clip_path(c->ts->m, row);
    const FrontEndConfig *fe = cochleagram_config(c->coch);
    Audio a;
    int rc = audio_read(path, fe->sr, fe->signal_size, &a, &c->errs[worker]);
    free(path);
    if (rc != 0) {
        c->failed[worker] = i + 1;
        return;
    }
    cochleagram_forward(c->coch, c->work[worker], NULL, a.samples, c->out[worker]);
    audio_free(&a);
    size_t n = (size_t)c->ts->channels * c->ts->frames;
    uint16_t *dst = c->ts->cache + (size_t)i * n;
    for (size_t j = 0; j < n; j++) dst[j] = to_half(c->out[worker][j]);
}

/* A key for the on-disk cache: front end, clip ids and paths, in order. */
static uint64_t cache_key(const TrainSet *ts, const FrontEndConfig *fe) {
    char *js = front_end_config_to_json(fe);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = js; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    free(js);
    for (int i = 0; i < ts->n; i++) {
        const ManifestRow *r = &ts->m->rows[ts->rows[i]];
        for (const char *p = r->clip_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        for (const char *p = r->path; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0x2C) * 1099511628211ull;
    }
    return h;
}

typedef struct {
    char magic[8];
    uint64_t key;
    int32_t n, channels, frames, pad;
} CacheHeader;

static char *cache_file(const char *dir, uint64_t key) {
    size_t n = strlen(dir) + 64;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/coch-%016llx.f16", dir, (unsigned long long)key);
    return p;
}

static bool cache_load(TrainSet *ts, const char *path, uint64_t key) {
    char *data;
    size_t size;
    Error ignore;
    if (read_file(path, &data, &size, &ignore) != 0) return false;
    size_t n = (size_t)ts->n * ts->channels * ts->frames;
    CacheHeader h;
    bool ok = size == sizeof h + n * 2;
    if (ok) memcpy(&h, data, sizeof h);
    ok = ok && !memcmp(h.magic, "MMCOCH1", 8) && h.key == key && h.n == ts->n &&
         h.channels == ts->channels && h.frames == ts->frames;
    if (ok) memcpy(ts->cache, data + sizeof h, n * 2);
    free(data);
    return ok;
}

static int cache_save(const TrainSet *ts, const char *dir, const char *path, uint64_t key,
                      Error *err) {
    if (make_dirs(dir, 0755, err) != 0) return -1;
    size_t n = (size_t)ts->n * ts->channels * ts->frames;
    CacheHeader h = {"MMCOCH1", key, ts->n, ts->channels, ts->frames, 0};
    char *buf = xmalloc(sizeof h + n * 2);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, ts->cache, n * 2);
    int rc = atomic_write_file(path, buf, sizeof h + n * 2, 0644, err);
    free(buf);
    return rc;
}

static int compute_cache(TrainSet *ts, const Cochleagram *coch, Pool *pool, Error *err) {
    int nw = pool ? pool_size(pool) : 1;
    CacheCtx c = {ts, coch, xcalloc((size_t)nw, sizeof(void *)), xcalloc((size_t)nw, sizeof(void *)),
                  xcalloc((size_t)nw, sizeof(Error)), xcalloc((size_t)nw, sizeof(int))};
    for (int k = 0; k < nw; k++) {
        c.work[k] = cochleagram_work_create(coch, 1);
        c.out[k] = alloc_floats((size_t)ts->channels * ts->frames);
    }
    if (pool) pool_run(pool, cache_one, &c, ts->n);
    else for (int i = 0; i < ts->n; i++) cache_one(&c, i, 0);
    int rc = 0;
    for (int k = 0; k < nw; k++) {
        if (c.failed[k] && !rc) rc = -1, *err = c.errs[k];
        cochleagram_work_free(c.work[k]);
        free(c.out[k]);
    }
    free(c.work), free(c.out), free(c.errs), free(c.failed);
    return rc;
}

int train_set_load(TrainSet *ts, const Manifest *m, const char *split, const Network *net,
                   const char *cache_dir, Pool *pool, Error *err) {
    if (train_set_select(ts, m, split, net, err) != 0) return -1;
    Cochleagram *coch = cochleagram_create(&net->front_end, err);
    if (!coch) return -1;
    ts->channels = cochleagram_channels(coch), ts->frames = cochleagram_frames(coch);
    ts->samples = cochleagram_samples(coch);
    const int *in = net->arch.input_shape;
    if (in[1] != ts->channels || in[2] != ts->frames) {
        cochleagram_free(coch);
        return error_set(err, "the network reads %d x %d but its front end makes %d x %d", in[1],
                         in[2], ts->channels, ts->frames);
    }
    ts->cache = xmalloc((size_t)ts->n * ts->channels * ts->frames * sizeof(uint16_t));
    uint64_t key = cache_key(ts, &net->front_end);
    char *file = cache_dir ? cache_file(cache_dir, key) : NULL;
    int rc = 0;
    if (!file || !cache_load(ts, file, key)) {
        rc = compute_cache(ts, coch, pool, err);
        if (!rc && file) rc = cache_save(ts, cache_dir, file, key, err);
    }
    free(file);
    cochleagram_free(coch);
    return rc;
}

void train_set_free(TrainSet *ts) {
    free(ts->rows), free(ts->task), free(ts->label), free(ts->cache);
    memset(ts, 0, sizeof *ts);
}

void train_set_example(const TrainSet *ts, int i, float *out) {
    size_t n = (size_t)ts->channels * ts->frames;
    const uint16_t *src = ts->cache + (size_t)i * n;
    for (size_t j = 0; j < n; j++) out[j] = from_half(src[j]);
}
