/* Matching trials to model responses and to metamers.csv rows.
 *
 * Paths are the most specific key, but the experiment log and the eval CSV
 * may spell the same file differently (absolute vs relative to another
 * directory). So each path is indexed under all its suffixes at '/' bounds
 * ("/x/m/relu4/c_s0.wav", "m/relu4/c_s0.wav", "relu4/c_s0.wav", "c_s0.wav"),
 * a suffix shared by two different rows is marked ambiguous, and a trial's
 * path is looked up from its longest suffix down. Without paths, a trial is
 * matched on (task, clip, condition, model, stage), and a natural trial also
 * on (task, clip) alone. */
#include <stdlib.h>
#include <string.h>

#include "load_internal.h"

const char *normalize_path(const char *p) {
    static char *buf;
    static size_t cap;
    size_t n = strlen(p);
    if (n + 1 > cap) {
        free(buf);
        cap = 2 * n + 64;
        buf = xmalloc(cap);
    }
    while (p[0] == '.' && p[1] == '/') p += 2;
    size_t k = 0;
    for (; *p; p++) {
        if (*p == '/' && k > 0 && buf[k - 1] == '/') continue;
        if (*p == '/' && p[1] == '.' && p[2] == '/') { /* "/./" */
            p++;
            continue;
        }
        buf[k++] = *p;
    }
    buf[k] = 0;
    return is_na(buf) ? "" : buf;
}

/* Sets key -> row; a second row for the same key makes it AMBIGUOUS, or an
 * error when `unique` (returns the first row's id through *dup). */
static int put_key(StrPool *keys, int **rows, int *cap, const char *key, int row, bool unique,
                   int *dup) {
    int id = strpool_intern(keys, key);
    if (id >= *cap) {
        int ncap = *cap ? 2 * *cap : 1024;
        while (ncap <= id) ncap *= 2;
        int *r = xmalloc((size_t)ncap * sizeof *r);
        if (*cap) memcpy(r, *rows, (size_t)*cap * sizeof *r);
        for (int i = *cap; i < ncap; i++) r[i] = -1;
        free(*rows);
        *rows = r;
        *cap = ncap;
    }
    int old = (*rows)[id];
    if (old == -1 || old == row) {
        (*rows)[id] = row;
        return 0;
    }
    if (unique) {
        *dup = old;
        return -1;
    }
    (*rows)[id] = AMBIGUOUS;
    return 0;
}

static int get_key(const StrPool *keys, const int *rows, const char *key) {
    int id = strpool_find(keys, key);
    return id < 0 ? -1 : rows[id];
}

/* Key text: fields joined by the unit separator, which no CSV field here
 * contains. */
static const char *key_of(Buf *b, const char *kind, const char *const *parts, int n) {
    b->len = 0;
    buf_puts(b, kind);
    for (int i = 0; i < n; i++) {
        buf_put(b, "\x1f", 1);
        buf_puts(b, parts[i]);
    }
    return b->s;
}

/* Calls fn for path and each of its suffixes after a '/', longest first;
 * stops when fn returns non-zero and returns that value. */
static int for_suffixes(const char *path, int (*fn)(void *, const char *), void *ctx) {
    for (const char *p = path; p && *p;) {
        int rc = fn(ctx, p);
        if (rc) return rc;
        p = strchr(p, '/');
        if (p) p++;
    }
    return 0;
}

/* --------------------------------------------------------- model index */

int model_index_task(ModelIndex *ix, int task) {
    for (int i = 0; i < ix->n_tasks; i++)
        if (ix->tasks[i] == task) return i;
    if (ix->n_tasks == 64) return -1;
    ix->tasks[ix->n_tasks] = task;
    return ix->n_tasks++;
}

typedef struct {
    ModelIndex *ix;
    const char *task;
    int row;
    Buf key;
    int found; /* lookups: the row, AMBIGUOUS */
} SuffixCtx;

static int add_suffix(void *vctx, const char *suffix) {
    SuffixCtx *c = vctx;
    const char *parts[] = {c->task, suffix};
    put_key(&c->ix->keys, &c->ix->row, &c->ix->cap, key_of(&c->key, "P", parts, 2), c->row,
            false, NULL);
    return 0;
}

int model_index_add(ModelIndex *ix, Study *st, int r, const char *stim, const char *cond,
                    const char *model, const char *stage, Error *err) {
    const ModelRow *m = &st->model[r];
    const char *task = study_str(st, m->task), *clip = study_str(st, m->clip);
    SuffixCtx c = {.ix = ix, .task = task, .row = r};
    int dup = -1, rc = 0;
    const char *path = normalize_path(stim);
    if (path[0]) {
        const char *full[] = {task, path};
        if (put_key(&ix->keys, &ix->row, &ix->cap, key_of(&c.key, "F", full, 2), r, true,
                    &dup) != 0) {
            rc = error_set(err, "second response of task '%s' to stimulus '%s' (first on line %d)",
                           task, path, st->model[dup].line);
            goto done;
        }
        char *copy = xstrdup(path);
        for_suffixes(copy, add_suffix, &c);
        free(copy);
    }
    cond = is_na(cond) ? "" : cond;
    model = is_na(model) ? "" : model;
    stage = is_na(stage) ? "" : stage;
    /* Several seeds of one metamer share the condition key: an error only
     * when nothing else (a path) tells the rows apart. */
    const char *ck[] = {task, clip, cond, model, stage};
    if (ix->has_conditions &&
        put_key(&ix->keys, &ix->row, &ix->cap, key_of(&c.key, "C", ck, 5), r, !path[0], &dup)) {
        rc = error_set(err, "second response of task '%s' to clip '%s' in condition '%s' "
                            "model '%s' stage '%s' (first on line %d)",
                       task, clip, cond, model, stage, st->model[dup].line);
        goto done;
    }
    if (!stage[0]) {
        const char *nk[] = {task, clip};
        bool unique = !path[0] && !ix->has_conditions;
        if (put_key(&ix->keys, &ix->row, &ix->cap, key_of(&c.key, "N", nk, 2), r, unique,
                    &dup)) {
            rc = error_set(err, "second response of task '%s' to clip '%s' (first on line %d)",
                           task, clip, st->model[dup].line);
            goto done;
        }
    }
done:
    buf_free(&c.key);
    return rc;
}

static int find_suffix(void *vctx, const char *suffix) {
    SuffixCtx *c = vctx;
    const char *parts[] = {c->task, suffix};
    int r = get_key(&c->ix->keys, c->ix->row, key_of(&c->key, "P", parts, 2));
    if (r == -1) return 0; /* try a shorter suffix */
    c->found = r;          /* a row, or AMBIGUOUS: shorter suffixes are no better */
    return 1;
}

int model_index_lookup(const ModelIndex *ix, const Study *st, const Trial *tr) {
    SuffixCtx c = {.ix = (ModelIndex *)ix, .task = study_str(st, tr->task), .found = -1};
    const char *stim = study_str(st, tr->stim);
    if (ix->has_paths && stim[0]) for_suffixes(stim, find_suffix, &c);
    int r = c.found;
    if (r < 0 && ix->has_conditions) {
        const char *ck[] = {c.task, study_str(st, tr->clip), study_str(st, tr->condition),
                            study_str(st, tr->model), study_str(st, tr->stage)};
        int k = get_key(&ix->keys, ix->row, key_of(&c.key, "C", ck, 5));
        if (k != -1) r = k;
    }
    if (r < 0 && !study_str(st, tr->stage)[0]) {
        const char *nk[] = {c.task, study_str(st, tr->clip)};
        int k = get_key(&ix->keys, ix->row, key_of(&c.key, "N", nk, 2));
        if (k != -1) r = k;
    }
    buf_free(&c.key);
    return r;
}

void model_index_free(ModelIndex *ix) {
    strpool_free(&ix->keys);
    free(ix->row);
    *ix = (ModelIndex){0};
}

/* ------------------------------------------------------- metamer index */

typedef struct {
    MetamerIndex *mx;
    int row;
    Buf key;
    int found;
} MSuffixCtx;

static int madd_suffix(void *vctx, const char *suffix) {
    MSuffixCtx *c = vctx;
    put_key(&c->mx->keys, &c->mx->row, &c->mx->cap, key_of(&c->key, "Q", &suffix, 1), c->row,
            false, NULL);
    return 0;
}

int metamer_index_add(MetamerIndex *mx, Study *st, int line, const char *clip,
                      const char *stage, const char *seed, const char *path, int passed,
                      Error *err) {
    if (mx->n_rows == mx->cap_rows) {
        mx->cap_rows = mx->cap_rows ? 2 * mx->cap_rows : 256;
        mx->passed = realloc(mx->passed, (size_t)mx->cap_rows);
        mx->line = realloc(mx->line, (size_t)mx->cap_rows * sizeof *mx->line);
        mx->stage = realloc(mx->stage, (size_t)mx->cap_rows * sizeof *mx->stage);
        mx->stages = realloc(mx->stages, (size_t)mx->cap_rows * sizeof *mx->stages);
        if (!mx->passed || !mx->line || !mx->stage || !mx->stages) abort();
    }
    int r = mx->n_rows++, s = strpool_intern(&st->str, stage);
    mx->passed[r] = (unsigned char)passed;
    mx->line[r] = line;
    mx->stage[r] = s;
    bool seen = false;
    for (int i = 0; i < mx->n_stages && !seen; i++) seen = mx->stages[i] == s;
    if (!seen) mx->stages[mx->n_stages++] = s;
    MSuffixCtx c = {.mx = mx, .row = r};
    int dup = -1, rc = 0;
    const char *sk[] = {clip, stage, seed};
    if (put_key(&mx->keys, &mx->row, &mx->cap, key_of(&c.key, "S", sk, 3), r, true, &dup)) {
        rc = error_set(err, "clip '%s' stage '%s' seed '%s' listed twice (first on line %d)",
                       clip, stage, seed, mx->line[dup]);
    } else {
        put_key(&mx->keys, &mx->row, &mx->cap, key_of(&c.key, "U", sk, 2), r, false, NULL);
        const char *p = normalize_path(path);
        if (p[0]) {
            mx->has_paths = true;
            char *copy = xstrdup(p);
            for_suffixes(copy, madd_suffix, &c);
            free(copy);
        }
    }
    buf_free(&c.key);
    return rc;
}

static int mfind_suffix(void *vctx, const char *suffix) {
    MSuffixCtx *c = vctx;
    int r = get_key(&c->mx->keys, c->mx->row, key_of(&c->key, "Q", &suffix, 1));
    if (r == -1) return 0;
    c->found = r;
    return 1;
}

/* The seed from a synth output name "<clip>_s<seed>.wav" (DESIGN.md). */
static bool seed_from_path(const char *path, char *out, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.'), *s = NULL;
    if (!dot) return false;
    for (const char *p = base; p + 1 < dot; p++)
        if (p[0] == '_' && p[1] == 's') s = p + 2;
    if (!s || s == dot || (size_t)(dot - s) >= n) return false;
    for (const char *p = s; p < dot; p++)
        if (*p < '0' || *p > '9') return false;
    memcpy(out, s, (size_t)(dot - s));
    out[dot - s] = 0;
    return true;
}

int metamer_index_lookup(const MetamerIndex *mx, const Study *st, const Trial *tr) {
    MSuffixCtx c = {.mx = (MetamerIndex *)mx, .found = -1};
    const char *stim = study_str(st, tr->stim);
    if (mx->has_paths && stim[0]) for_suffixes(stim, mfind_suffix, &c);
    int r = c.found;
    char seed[32];
    if (r < 0 && seed_from_path(stim, seed, sizeof seed)) {
        const char *sk[] = {study_str(st, tr->clip), study_str(st, tr->stage), seed};
        int k = get_key(&mx->keys, mx->row, key_of(&c.key, "S", sk, 3));
        if (k != -1) r = k;
    }
    if (r < 0) {
        const char *uk[] = {study_str(st, tr->clip), study_str(st, tr->stage)};
        int k = get_key(&mx->keys, mx->row, key_of(&c.key, "U", uk, 2));
        if (k != -1) r = k;
    }
    buf_free(&c.key);
    return r;
}

void metamer_index_free(MetamerIndex *mx) {
    strpool_free(&mx->keys);
    free(mx->row);
    free(mx->passed);
    free(mx->line);
    free(mx->stage);
    free(mx->stages);
    *mx = (MetamerIndex){0};
}
