/* `metamers experiment build`: counterbalanced per-participant trial lists.
 *
 * Counterbalancing (K conditions, T trials per condition):
 * - One set of K*T source clips that have a stimulus in every condition is
 *   drawn once (seeded) and cut into K groups of T clips. Participant p
 *   (1-based) hears group g in condition (g + p - 1) mod K: a cyclic Latin
 *   square, so within a participant every condition has exactly T trials,
 *   and over any K consecutive participants every clip is heard once in
 *   every condition.
 * - Catch and practice clips are further natural clips, shared by all
 *   participants, so nobody hears a source clip twice in any phase.
 * - When a metamer exists for several seeds, successive Latin-square
 *   replicates (participants 1..K, K+1..2K, ...) take successive seeds.
 * - Presentation order is shuffled per participant (practice separately from
 *   the main trials, catch trials shuffled in). Every draw is seeded from
 *   (design seed, participant), so building more participants later leaves
 *   the existing lists byte-identical.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int need_error(Error *err, const char *what, int have, int need) {
    return error_set(err,
                     "not enough source clips for %s: %d available, %d needed (every "
                     "participant hears each source clip at most once)",
                     what, have, need);
}

int exp_build_select_clips(const Design *d, const StimPool *pool, int **main_clips,
                           int **catch_clips, int **practice_clips, Error *err) {
    int n = pool->n_clips, K = d->n_conds, T = d->trials_per_condition;
    int *order = xcalloc(n, sizeof(int)), *complete = xcalloc(n, sizeof(int));
    int *rest = xcalloc(n, sizeof(int)), n_complete = 0, n_rest = 0;
    for (int i = 0; i < n; i++) order[i] = i;
    ExpRng r;
    exprng_seed(&r, d->seed, 0, 0);
    exprng_shuffle(&r, order, n);
    for (int i = 0; i < n; i++) {
        int ok = 1;
        for (int k = 0; k < K && ok; k++) ok = exp_stimpool_available(pool, d, order[i], k) > 0;
        if (ok)
            complete[n_complete++] = order[i];
        else
            rest[n_rest++] = order[i]; /* clips without every metamer: catch/practice first */
    }
    int rc = 0, need = K * T, P = d->practice_feedback + d->practice_scored;
    if (n_complete < need) {
        rc = need_error(err, "the main trials (clips with a stimulus in every condition)",
                        n_complete, need);
    } else {
        for (int i = need; i < n_complete; i++) rest[n_rest++] = complete[i];
        if (n_rest < d->catch_trials + P)
            rc = need_error(err, "catch and practice trials after the main ones", n_rest,
                            d->catch_trials + P);
    }
    if (rc == 0) {
        *main_clips = xcalloc(need + 1, sizeof(int));
        memcpy(*main_clips, complete, sizeof(int) * need);
        *catch_clips = xcalloc(d->catch_trials + 1, sizeof(int));
        memcpy(*catch_clips, rest, sizeof(int) * d->catch_trials);
        *practice_clips = xcalloc(P + 1, sizeof(int));
        memcpy(*practice_clips, rest + d->catch_trials, sizeof(int) * P);
    }
    free(order);
    free(complete);
    free(rest);
    return rc;
}

/* Main trial m (0-based of M) is in block 1 + number of breaks before it. */
static int block_of(const Design *d, int m, int M) {
    int block = 1, last = 0;
    for (int i = 0; i < d->n_breaks; i++) {
        int at = (int)lround(d->breaks[i] * M);
        if (at <= last || at >= M) continue; /* breaks that collapse on short lists */
        last = at;
        if (m >= at) block++;
    }
    return block;
}

int exp_build_participant(const Design *d, const StimPool *pool, const int *main_clips,
                          const int *catch_clips, const int *practice_clips, int p, TrialList *out,
                          Error *err) {
    (void)err;
    memset(out, 0, sizeof *out);
    int K = d->n_conds, T = d->trials_per_condition, C = d->catch_trials;
    int M = K * T + C, P = d->practice_feedback + d->practice_scored;
    int row = (p - 1) % K, replicate = (p - 1) / K;
    ExpRng r;
    exprng_seed(&r, d->seed, (uint64_t)p, 1);
    int *po = xcalloc(P + 1, sizeof(int)), *mo = xcalloc(M + 1, sizeof(int));
    for (int i = 0; i < P; i++) po[i] = practice_clips[i];
    exprng_shuffle(&r, po, P);
    for (int i = 0; i < P; i++) {
        const NaturalClip *c = &pool->clips[po[i]];
        exp_trials_add(out, 0, i < d->practice_feedback ? "practice" : "practice_scored", "natural",
                       c->clip_id, c->path, NULL, NULL, c->label, -1);
    }
    for (int i = 0; i < M; i++) mo[i] = i; /* i < K*T: main_clips[i]; else catch */
    exprng_shuffle(&r, mo, M);
    for (int i = 0; i < M; i++) {
        int block = block_of(d, i, M), j = mo[i];
        if (j >= K * T) {
            const NaturalClip *c = &pool->clips[catch_clips[j - K * T]];
            exp_trials_add(out, block, "main", "catch", c->clip_id, c->path, NULL, NULL, c->label,
                           -1);
            continue;
        }
        const NaturalClip *c = &pool->clips[main_clips[j]];
        const Condition *k = &d->conds[(j / T + row) % K];
        if (!k->stage) {
            exp_trials_add(out, block, "main", k->name, c->clip_id, c->path, NULL, NULL, c->label,
                           -1);
            continue;
        }
        size_t at = (size_t)main_clips[j] * pool->n_conds + (size_t)(k - d->conds);
        const MetamerStim *m = &pool->mets[pool->first[at] + replicate % pool->count[at]];
        exp_trials_add(out, block, "main", k->name, c->clip_id, m->path, k->stage, k->model,
                       c->label, m->seed);
    }
    free(po);
    free(mo);
    return 0;
}

/* ------------------------------------------------------------- command */

static const char build_usage[] =
    "usage: metamers experiment build --design D.json --participants N\n"
    "                                 [--lists DIR] [--force]\n"
    "\n"
    "Writes one counterbalanced trial list per participant (DIR/sub-01_trials.tsv, ...)\n"
    "and DIR/build.json (design hash, seed, clip sets, vocabulary). Conditions rotate\n"
    "over participants by a Latin square; each participant hears each source clip at\n"
    "most once; orders are shuffled from the design's seed. Building more participants\n"
    "later leaves the existing lists unchanged.\n"
    "\n"
    "  --design D        the design file (see README-experiment.md)\n"
    "  --participants N  number of lists (IDs 01..N, as `metamers subjects add` gives)\n"
    "  --lists DIR       where the lists go (default: D without .json + \"_trials\")\n"
    "  --force           overwrite lists that differ (only before anyone ran them)\n";

typedef struct {
    const char *design, *lists;
    int participants, force;
} BuildArgs;

static int parse_args(int argc, char **argv, BuildArgs *a) {
    static const struct option opts[] = {
        {"design", required_argument, 0, 'd'}, {"participants", required_argument, 0, 'p'},
        {"lists", required_argument, 0, 'l'},  {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    *a = (BuildArgs){0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->design = optarg; break;
        case 'p': a->participants = atoi(optarg); break;
        case 'l': a->lists = optarg; break;
        case 'f': a->force = 1; break;
        case 'h': fputs(build_usage, stdout); return 1;
        default:
            fprintf(stderr,
                    "metamers experiment build: unknown or incomplete option '%s' "
                    "(see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (!a->design || a->participants < 1 || a->participants > 100000 || optind != argc) {
        fprintf(stderr, "metamers experiment build: need --design D and --participants N "
                        "(1..100000)\n");
        return 2;
    }
    return 0;
}

/* The answers a listener can give, checked against every label heard. */
static int vocabulary(const Design *d, const StimPool *pool, char ***words, int *n, Error *err) {
    char **src = d->mode == RESP_CHOICE && d->n_choices ? d->choices
                 : d->n_vocab                           ? d->vocab
                                                        : pool->labels;
    *n = d->mode == RESP_CHOICE && d->n_choices ? d->n_choices
         : d->n_vocab                           ? d->n_vocab
                                                : pool->n_labels;
    if (d->mode == RESP_CHOICE && *n > EXP_MAX_CHOICES)
        return error_set(err,
                         "%s: choice mode needs at most 9 alternatives, the task has %d "
                         "labels (list \"choices\" or use word mode)",
                         d->path, *n);
    *words = src;
    for (int i = 0; i < pool->n_clips; i++)
        if (exp_vocab_find((const char *const *)src, *n, pool->clips[i].label) < 0)
            return error_set(err,
                             "clip %s has label \"%s\", which is not among the allowed "
                             "answers",
                             pool->clips[i].clip_id, pool->clips[i].label);
    return 0;
}

/* Every stimulus exists, and stays in the design's folder however the
 * manifests and metamer tables reached it ("stim/../../x.wav"). */
static int check_files(const Design *d, const TrialList *l, Error *err) {
    for (int i = 0; i < l->n; i++) {
        if (path_check_inside(l->rows[i].stimulus_path, "the design's folder", err) != 0)
            return error_prefix(err, "%s: stimulus of %s", d->path, l->rows[i].clip_id);
        char *path = exp_path_join(d->dir, l->rows[i].stimulus_path);
        int ok = access(path, R_OK) == 0;
        int e = errno;
        if (!ok) error_set(err, "%s: %s (stimulus of %s)", path, strerror(e), l->rows[i].clip_id);
        free(path);
        if (!ok) return -1;
    }
    return 0;
}

static int write_list(const char *path, const TrialList *l, int force, Error *err) {
    char *tsv = exp_trials_to_tsv(l), *old = NULL;
    size_t old_n = 0;
    Error ignore;
    int rc = 0;
    if (read_file(path, &old, &old_n, &ignore) == 0 &&
        (old_n != strlen(tsv) || memcmp(old, tsv, old_n))) {
        if (!force)
            rc = error_set(err,
                           "%s exists and differs (design or stimuli changed?); refusing "
                           "to overwrite a list someone may have run (--force if nobody "
                           "has)",
                           path);
    }
    if (rc == 0 && (!old || old_n != strlen(tsv) || memcmp(old, tsv, old_n)))
        rc = atomic_write_file(path, tsv, strlen(tsv), 0644, err);
    free(old);
    free(tsv);
    return rc;
}

static json_t *clip_ids(const StimPool *pool, const int *idx, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(pool->clips[idx[i]].clip_id));
    return a;
}

static int write_buildinfo(const BuildArgs *a, const char *dir, const Design *d,
                           const StimPool *pool, char **vocab, int n_vocab, const int *mc,
                           const int *cc, const int *pc, Error *err) {
    json_t *root = json_object(), *conds = json_array(), *voc = json_array();
    for (int k = 0; k < d->n_conds; k++)
        json_array_append_new(conds, json_pack("{s:s,s:s?,s:s?}", "name", d->conds[k].name, "model",
                                               d->conds[k].model, "stage", d->conds[k].stage));
    for (int i = 0; i < n_vocab; i++) json_array_append_new(voc, json_string(vocab[i]));
    json_object_set_new(root, "design", json_string(a->design));
    json_object_set_new(root, "design_sha256", json_string(d->sha256));
    json_object_set_new(root, "seed", json_integer((json_int_t)d->seed));
    json_object_set_new(root, "participants", json_integer(a->participants));
    json_object_set_new(root, "conditions", conds);
    json_object_set_new(root, "trials_per_condition", json_integer(d->trials_per_condition));
    json_object_set_new(root, "counterbalancing",
                        json_string("cyclic Latin square: participant p hears clip group g in "
                                    "condition (g + p - 1) mod K"));
    json_object_set_new(root, "main_clips",
                        clip_ids(pool, mc, d->n_conds * d->trials_per_condition));
    json_object_set_new(root, "catch_clips", clip_ids(pool, cc, d->catch_trials));
    json_object_set_new(root, "practice_clips",
                        clip_ids(pool, pc, d->practice_feedback + d->practice_scored));
    json_object_set_new(root, "vocabulary", voc);
    json_object_set_new(root, "software_version", json_string(METAMERS_VERSION));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/build.json", dir);
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    text[n] = '\n', text[n + 1] = 0;
    int rc = atomic_write_file(path, text, n + 1, 0644, err);
    free(text);
    return rc;
}

static int build(const BuildArgs *a, Error *err) {
    Design d;
    StimPool pool;
    if (exp_design_load(a->design, &d, err) != 0) return -1;
    if (exp_stimpool_load(&d, &pool, err) != 0) return exp_design_free(&d), -1;
    char **vocab = NULL, *dir = a->lists ? xstrdup(a->lists) : exp_default_lists_dir(a->design);
    int n_vocab = 0, *mc = NULL, *cc = NULL, *pc = NULL, main_n = 0, prac_n = 0;
    int rc = vocabulary(&d, &pool, &vocab, &n_vocab, err);
    if (rc == 0) rc = exp_build_select_clips(&d, &pool, &mc, &cc, &pc, err);
    if (rc == 0) rc = make_dirs(dir, 0755, err);
    for (int p = 1; rc == 0 && p <= a->participants; p++) {
        TrialList l;
        char id[16], path[4096];
        snprintf(id, sizeof id, "%02d", p);
        exp_trials_list_path(path, sizeof path, dir, id);
        rc = exp_build_participant(&d, &pool, mc, cc, pc, p, &l, err);
        if (rc == 0) rc = check_files(&d, &l, err);
        if (rc == 0) rc = write_list(path, &l, a->force, err);
        for (int i = 0; i < l.n; i++) strcmp(l.rows[i].phase, "main") == 0 ? main_n++ : prac_n++;
        exp_trials_free(&l);
    }
    if (rc == 0) rc = write_buildinfo(a, dir, &d, &pool, vocab, n_vocab, mc, cc, pc, err);
    if (rc == 0)
        printf("%d trial lists in %s: %d conditions x %d trials + %d catch = %d main trials, "
               "%d practice; seed %llu\n",
               a->participants, dir, d.n_conds, d.trials_per_condition, d.catch_trials,
               main_n / a->participants, prac_n / a->participants, (unsigned long long)d.seed);
    free(mc), free(cc), free(pc), free(dir);
    exp_stimpool_free(&pool);
    exp_design_free(&d);
    return rc;
}

int experiment_cmd_build(int argc, char **argv) {
    BuildArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    if (build(&a, &err) != 0) {
        fprintf(stderr, "metamers experiment build: %s\n", err.msg);
        return 1;
    }
    return 0;
}
