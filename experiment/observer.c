/* Simulated observers: answer trials through the same loop as a person.
 *
 * Spec: KIND[:ARG][,key=value...], e.g. "oracle,lapse=0.05,seed=3" or
 * "table:preds.csv,lapse=0.1". ARG may not contain a comma. Options every
 * kind has: lapse (probability of answering a uniformly random vocabulary
 * word instead), seed (for the lapses; default derived from the design seed
 * and the participant), delay_ms (wait before answering, to pace a dry run).
 * Lapse draws depend only on (seed, trial), so a resumed simulated session
 * answers exactly as an uninterrupted one.
 *
 * Built in: "oracle" (the true label) and "table" (per-clip predictions as
 * `metamers eval` writes them: clip_id,task,label,top1,p_top1,correct, and
 * optionally a path or stimulus_path column). A trial's prediction is looked
 * up by, in order: the stimulus path exactly as in the trial list; the same
 * file (after resolving both paths; table paths are relative to the table's
 * folder, and a clip_id that names an existing file counts as a path); and,
 * for natural clips only, the clip_id. Metamers must therefore be keyed by
 * path, since they share their source clip's clip_id. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_KINDS 16
static struct {
    char kind[32];
    ExpObserverFactory f;
} g_kinds[MAX_KINDS];
static int g_n_kinds;

static void register_builtins(void);

int experiment_register_observer(const char *kind, ExpObserverFactory factory) {
    register_builtins();
    for (int i = 0; i < g_n_kinds; i++)
        if (strcmp(g_kinds[i].kind, kind) == 0) return g_kinds[i].f = factory, 0;
    if (g_n_kinds == MAX_KINDS || strlen(kind) >= sizeof g_kinds[0].kind) return -1;
    snprintf(g_kinds[g_n_kinds].kind, sizeof g_kinds[0].kind, "%s", kind);
    g_kinds[g_n_kinds++].f = factory;
    return 0;
}

static int no_options(const ExpObserverEnv *env, const char *kind, Error *err) {
    if (env->n_options)
        return error_set(err, "observer %s: unknown option \"%s\" (lapse, seed, delay_ms)", kind,
                         env->keys[0]);
    return 0;
}

/* --------------------------------------------------------------- oracle */

static int oracle_answer(ExpObserver *self, const ExpTrial *t, char *response, size_t cap,
                         double *rt_ms, Error *err) {
    (void)self, (void)rt_ms, (void)err;
    snprintf(response, cap, "%s", t->true_label);
    return 0;
}

static int oracle_create(const ExpObserverEnv *env, ExpObserver *o, Error *err) {
    if (*env->arg)
        return error_set(err, "observer oracle takes no argument (got \"%s\")", env->arg);
    if (no_options(env, "oracle", err) != 0) return -1;
    o->answer = oracle_answer;
    return 0;
}

/* ---------------------------------------------------------------- table */

typedef struct {
    char *key, *value;
} Entry;

/* The "table" observer's predictions: "S:<stimulus>", "C:<clip_id>" and
 * "P:<resolved path>" keys, sorted for bsearch. */
typedef struct {
    Entry *e;
    int n, cap;
    char *design_dir, *path;
} PredictionTable;

static void table_put(PredictionTable *t, const char *prefix, const char *key,
                      const char *value) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->e = realloc(t->e, sizeof(Entry) * t->cap);
        if (!t->e) abort();
    }
    size_t n = strlen(prefix) + strlen(key) + 1;
    t->e[t->n].key = xmalloc(n);
    snprintf(t->e[t->n].key, n, "%s%s", prefix, key);
    t->e[t->n++].value = xstrdup(value);
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const Entry *)a)->key, ((const Entry *)b)->key);
}

static const char *table_get(const PredictionTable *t, const char *prefix, const char *key) {
    char buf[PATH_MAX + 8];
    snprintf(buf, sizeof buf, "%s%s", prefix, key);
    Entry want = {buf, NULL};
    const Entry *e = bsearch(&want, t->e, t->n, sizeof(Entry), cmp_entry);
    return e ? e->value : NULL;
}

/* Adds "P:<resolved path>" if rel (relative to dir) names an existing file. */
static void put_path(PredictionTable *t, const char *dir, const char *rel, const char *value) {
    char *p = exp_path_join(dir, rel), real[PATH_MAX];
    if (realpath(p, real)) table_put(t, "P:", real, value);
    free(p);
}

static int load_table(PredictionTable *t, const ExpObserverEnv *env, Error *err) {
    Table c;
    if (table_load(t->path, ',', TABLE_RAGGED, &c, err) != 0) return -1;
    char *dir = exp_path_dir(t->path);
    int c_id = table_column(&c, "clip_id"), c_top = table_column(&c, "top1"),
        c_task = table_column(&c, "task"), c_path = table_column(&c, "stimulus_path");
    if (c_path < 0) c_path = table_column(&c, "path");
    int rc = 0;
    if (c_top < 0 || (c_id < 0 && c_path < 0))
        rc = error_set(err, "%s: a prediction table needs a top1 column and clip_id or path",
                       t->path);
    for (int r = 0; rc == 0 && r < c.n_rows; r++) {
        const char *task = table_cell(&c, r, c_task);
        if (*task && strcmp(task, env->task)) continue;
        const char *top = table_cell(&c, r, c_top), *id = table_cell(&c, r, c_id);
        const char *path = table_cell(&c, r, c_path);
        if (!*top) {
            rc = error_set(err, "%s:%ld: empty top1", t->path, c.lines[r]);
            break;
        }
        if (*path) table_put(t, "S:", path, top), put_path(t, dir, path, top);
        if (*id) table_put(t, "C:", id, top), table_put(t, "S:", id, top);
        if (*id && strpbrk(id, "/.")) put_path(t, dir, id, top);
    }
    free(dir);
    table_free(&c);
    if (rc) return -1;
    if (t->n > 1) qsort(t->e, t->n, sizeof(Entry), cmp_entry); /* e is NULL when empty */
    for (int i = 1; i < t->n; i++)
        if (strcmp(t->e[i].key, t->e[i - 1].key) == 0 && strcmp(t->e[i].value, t->e[i - 1].value))
            return error_set(err, "%s: two different predictions for %s", t->path, t->e[i].key + 2);
    return 0;
}

static const char *table_lookup(const PredictionTable *t, const ExpTrial *tr) {
    const char *v = table_get(t, "S:", tr->stimulus_path);
    if (v) return v;
    char *p = exp_path_join(t->design_dir, tr->stimulus_path), real[PATH_MAX];
    if (realpath(p, real)) v = table_get(t, "P:", real);
    free(p);
    if (!v && strcmp(tr->stage, EXP_NA) == 0) v = table_get(t, "C:", tr->clip_id);
    return v;
}

static int table_prepare(ExpObserver *self, const ExpTrial *trials, int n, Error *err) {
    PredictionTable *t = self->state;
    int missing = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (!table_lookup(t, &trials[i])) missing++, first = first < 0 ? i : first;
    if (missing)
        return error_set(err,
                         "%s has no prediction for %d of %d trials, e.g. trial %d (%s, "
                         "clip %s); metamers need a path or stimulus_path column",
                         t->path, missing, n, trials[first].trial, trials[first].stimulus_path,
                         trials[first].clip_id);
    return 0;
}

static int table_answer(ExpObserver *self, const ExpTrial *tr, char *response, size_t cap,
                        double *rt_ms, Error *err) {
    (void)rt_ms;
    const char *v = table_lookup(self->state, tr);
    if (!v) return error_set(err, "no prediction for %s", tr->stimulus_path);
    snprintf(response, cap, "%s", v);
    return 0;
}

static void table_destroy(ExpObserver *self) {
    PredictionTable *t = self->state;
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->e[i].key), free(t->e[i].value);
    free(t->e);
    free(t->design_dir);
    free(t->path);
    free(t);
}

static int table_create(const ExpObserverEnv *env, ExpObserver *o, Error *err) {
    if (!*env->arg) return error_set(err, "observer table needs a file: table:PREDICTIONS.csv");
    if (no_options(env, "table", err) != 0) return -1;
    PredictionTable *t = xcalloc(1, sizeof *t);
    t->path = xstrdup(env->arg);
    t->design_dir = xstrdup(env->design_dir);
    o->state = t;
    o->prepare = table_prepare;
    o->answer = table_answer;
    o->destroy = table_destroy;
    return load_table(t, env, err);
}

/* ------------------------------------------------------------ generic */

/* Built-ins first, whenever the registry is first touched, so a kind the
 * program registers at start-up never hides them. */
static void register_builtins(void) {
    static int done;
    if (done) return;
    done = 1;
    experiment_register_observer("oracle", oracle_create);
    experiment_register_observer("table", table_create);
    experiment_register_observer("model", exp_model_observer_create);
}

static ExpObserverFactory factory_for(const char *kind) {
    register_builtins();
    for (int i = 0; i < g_n_kinds; i++)
        if (strcmp(g_kinds[i].kind, kind) == 0) return g_kinds[i].f;
    return NULL;
}

static int common_option(Observer *o, const char *k, const char *v, Error *err) {
    char *end;
    if (strcmp(k, "lapse") == 0) {
        o->lapse = strtod(v, &end);
        if (*end || !(o->lapse >= 0 && o->lapse <= 1))
            return error_set(err, "observer: lapse must be a probability, got \"%s\"", v);
    } else if (strcmp(k, "seed") == 0) {
        o->seed = strtoull(v, &end, 10);
        if (*end || !*v) return error_set(err, "observer: seed must be an integer, got \"%s\"", v);
    } else if (strcmp(k, "delay_ms") == 0) {
        o->delay_ms = (int)strtol(v, &end, 10);
        if (*end || o->delay_ms < 0 || o->delay_ms > 60000)
            return error_set(err, "observer: delay_ms must be 0..60000, got \"%s\"", v);
    } else {
        return 1;
    }
    return 0;
}

int exp_observer_create(const char *spec, const ExpObserverEnv *base, uint64_t default_seed,
                        Observer *o, Error *err) {
    memset(o, 0, sizeof *o);
    o->spec = xstrdup(spec);
    o->seed = default_seed;
    char *copy = xstrdup(spec), *opts = strchr(copy, ','), *arg = "";
    if (opts) *opts++ = 0;
    char *colon = strchr(copy, ':');
    if (colon) *colon = 0, arg = colon + 1;
    o->kind = xstrdup(copy);
    const char *keys[32], *values[32];
    int n = 0, rc = 0;
    for (char *save = NULL, *kv = opts ? strtok_r(opts, ",", &save) : NULL; kv && rc == 0;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = error_set(err, "observer %s: option \"%s\" is not key=value", o->kind, kv);
            break;
        }
        *eq = 0;
        int c = common_option(o, kv, eq + 1, err);
        if (c < 0)
            rc = -1;
        else if (c > 0 && n < 32)
            keys[n] = kv, values[n++] = eq + 1;
    }
    ExpObserverFactory f = rc == 0 ? factory_for(o->kind) : NULL;
    if (rc == 0 && !f)
        rc = error_set(err,
                       "unknown observer \"%s\" (oracle, table:FILE, model:M)",
                       o->kind);
    if (rc == 0) {
        ExpObserverEnv env = *base;
        env.arg = arg, env.keys = keys, env.values = values, env.n_options = n;
        rc = f(&env, &o->obs, err);
        if (rc != 0) error_prefix(err, "--observer %s", spec);
    }
    free(copy);
    if (rc != 0) exp_observer_free(o);
    return rc;
}

int exp_observer_answer(Observer *o, const ExpTrial *t, const char *const *vocab, int n_vocab,
                        char *response, size_t cap, double *rt_ms, Error *err) {
    if (o->delay_ms) {
        struct timespec ts = {o->delay_ms / 1000, (long)(o->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    *rt_ms = NAN;
    if (o->obs.answer(&o->obs, t, response, cap, rt_ms, err) != 0) return -1;
    ExpRng r;
    exprng_seed(&r, o->seed, (uint64_t)t->trial, 0x6c61707365ull);
    if (n_vocab > 0 && exprng_uniform(&r) < o->lapse)
        snprintf(response, cap, "%s", vocab[exprng_below(&r, (uint64_t)n_vocab)]);
    if (!*response) snprintf(response, cap, "%s", EXP_CANT_TELL);
    return 0;
}

void exp_observer_free(Observer *o) {
    if (o->obs.destroy) o->obs.destroy(&o->obs);
    free(o->spec);
    free(o->kind);
    memset(o, 0, sizeof *o);
}
