/* `metamers null`: the null distribution of the success criterion, and the
 * helper synth uses to fill in stages missing from the cache. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

/* Reads the manifest's clips that the pairs use (others stay NULL). */
static int load_pair_clips(const Network *net, const Manifest *man, const int *rows, int n,
                           int pairs, uint64_t seed, float **waves, Error *err) {
    uint64_t total = (uint64_t)n * (uint64_t)(n - 1) / 2;
    if ((uint64_t)pairs > total) pairs = (int)total;
    int *pa = xmalloc((size_t)pairs * sizeof *pa), *pb = xmalloc((size_t)pairs * sizeof *pb), rc = 0;
    null_sample_pairs(n, pairs, seed, pa, pb);
    for (int k = 0; k < 2 * pairs && rc == 0; k++) {
        int i = k < pairs ? pa[k] : pb[k - pairs];
        if (waves[i]) continue;
        const ManifestRow *row = &man->rows[rows[i]];
        char *path = manifest_clip_path(man, row);
        rc = synth_load_clip(net, path, row->clip_id, SYNTH_CLIP_RMS, &waves[i], err);
        free(path);
    }
    free(pa), free(pb);
    return rc;
}

/* Is manifest row `row` a clip of task `task`? (Every clip is, for a model
 * with fewer than two tasks.) */
static bool row_of_task(const Network *net, const ManifestRow *row, int task) {
    if (net->n_tasks < 2 || task < 0) return true;
    Error ignored = {0};
    return synth_clip_task(net, row->clip_id, row->task, &ignored) == task;
}

static int compute_from_manifest(const Network *net, const char *manifest, const char *split, int task,
                                 const int *stages, int n_stages, int pairs, uint64_t seed,
                                 int threads, bool quiet, NullDist *out, Error *err) {
    Manifest man;
    if (manifest_read(manifest, &man, err) != 0) return -1;
    int *rows = xmalloc(((size_t)man.n + 1) * sizeof *rows), n = 0;
    for (int i = 0; i < man.n; i++)
        if ((!split || !strcmp(man.rows[i].split, split)) && row_of_task(net, &man.rows[i], task)) rows[n++] = i;
    const char *task_name = net->n_tasks > 1 && task >= 0 ? net->task_names[task] : NULL;
    int rc = 0;
    if (n < 2)
        rc = error_set(err, "%s: %d clips%s%s%s%s; the null distribution needs at least 2", manifest, n,
                       task_name ? " of task " : "", task_name ? task_name : "", split ? " in split " : "",
                       split ? split : "");
    float **waves = xcalloc((size_t)n + 1, sizeof *waves);
    if (rc == 0) rc = load_pair_clips(net, &man, rows, n, pairs, seed, waves, err);
    double t0 = now_seconds();
    if (rc == 0) rc = synth_null_compute(net, task, waves, n, stages, n_stages, pairs, seed, threads, out, err);
    if (rc == 0 && !quiet)
        fprintf(stderr, "null distribution%s%s: %d pairs of %d clips at %d stages in %.1f s\n",
                task_name ? ", task " : "", task_name ? task_name : "",
                out->n_stages ? out->stages[0].n_pairs : 0, n, n_stages, now_seconds() - t0);
    if (rc == 0) {
        char src[1200];
        snprintf(src, sizeof src, "%s%s%s (seed %llu)", manifest, split ? " split " : "",
                 split ? split : "", (unsigned long long)seed);
        out->source = xstrdup(src);
    }
    for (int i = 0; i < n; i++) free(waves[i]);
    free(waves), free(rows);
    manifest_free(&man);
    return rc;
}

int synth_null_ensure(const Network *net, const char *model_sha256, const char *cache,
                      const char *manifest, const char *split, int task, const int *stages,
                      int n_stages, int pairs, uint64_t seed, int threads, bool quiet, NullDist *d,
                      Error *err) {
    bool stale;
    if (synth_null_load(cache, model_sha256, d, &stale, err) != 0) return -1;
    int *missing = xmalloc(((size_t)n_stages + 1) * sizeof *missing), n = 0;
    char names[400] = "";
    for (int s = 0; s < n_stages; s++) {
        char key[300];
        synth_null_key(net, task, stages[s], key, sizeof key);
        if (!synth_null_find(d, key)) {
            missing[n++] = stages[s];
            size_t len = strlen(names);
            if (len + 40 < sizeof names) snprintf(names + len, sizeof names - len, "%s%s", n > 1 ? ", " : "", key);
        }
    }
    int rc = 0;
    if (n > 0) {
        if (!quiet)
            fprintf(stderr,
                    "note: %s has no null distribution for %s%s; computing it from %s (%d pairs). "
                    "`metamers null --manifest TRAIN.csv` computes it from training clips, as "
                    "published.\n",
                    cache, names, stale ? " (it was made for another version of the model)" : "",
                    manifest, pairs);
        NullDist add;
        rc = compute_from_manifest(net, manifest, split, task, missing, n, pairs, seed, threads, quiet, &add, err);
        if (rc == 0) {
            snprintf(add.model_sha256, sizeof add.model_sha256, "%s", model_sha256);
            rc = synth_null_store(cache, &add, err);
            synth_null_free(&add);
        }
        synth_null_free(d);
        if (rc == 0) rc = synth_null_load(cache, model_sha256, d, NULL, err);
    }
    free(missing);
    return rc;
}

/* ------------------------------------------------------------- command */

static void usage(FILE *f) {
    fprintf(f,
            "usage: metamers null --model M --manifest TRAIN.csv [options]\n"
            "  Spearman rho, Pearson r and SNR between the activations of random pairs of\n"
            "  different natural clips, per stage: metamers must beat each maximum.\n"
            "  A model with several tasks gets one null per task, from pairs of that\n"
            "  task's clips, at the stages on its path (\"word:relu2\", \"genre:relu2\").\n"
            "  Cached next to the model (M.null.safetensors, keyed by the model's SHA-256).\n"
            "  --stages LIST|all|paper  stages (default all)\n"
            "  --task NAME         only this task's null (default: every task)\n"
            "  --pooled            one null from pairs of all the clips, whatever their\n"
            "                      task, at every stage (entries named by stage alone);\n"
            "                      synth and synth judge use it with --null-pooled\n"
            "  --pairs N           random distinct pairs, per task (default %d)\n"
            "  --split NAME        only clips of this split (e.g. train)\n"
            "  --seed S            pair sampling seed (default 0)\n"
            "  --threads N         worker threads (default: cores)\n"
            "  --out PATH          cache file (default: next to the model)\n"
            "  --stability CSV     also write the running maximum over the first n pairs\n",
            SYNTH_NULL_DEFAULT_PAIRS);
}

/* Running maxima over prefixes n = 1, 2, 4, ..., N: the stability check. */
static void write_stage_stability(FILE *f, const NullStage *ns) {
    double m[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int k = 0, next = 1; k < ns->n_pairs; k++) {
        const float v[3] = {ns->spearman[k], ns->pearson[k], ns->snr_db[k]};
        for (int q = 0; q < 3; q++)
            if (isfinite(v[q]) && v[q] > m[q]) m[q] = v[q];
        if (k + 1 == next || k + 1 == ns->n_pairs) {
            fprintf(f, "%s,%d,%.6f,%.6f,%.4f\n", ns->stage, k + 1, m[0], m[1], m[2]);
            next *= 2;
        }
    }
}

static int write_stability(const char *path, const NullDist *dists, int n_dists, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    fprintf(af.f, "stage,pairs,max_spearman,max_pearson,max_snr_db\n");
    for (int t = 0; t < n_dists; t++)
        for (int s = 0; s < dists[t].n_stages; s++) write_stage_stability(af.f, &dists[t].stages[s]);
    return atomic_commit(&af, err);
}

/* The requested stages that lie on task's path (all of them for task -1). */
static int stages_of_task(const Network *net, int task, const int *req, int n_req, int *out) {
    int *path = xmalloc(((size_t)net->arch.n_layers + 1) * sizeof *path);
    int n_path = synth_task_stages(net, task, path), n = 0;
    for (int k = 0; k < n_req; k++)
        for (int j = 0; j < n_path; j++)
            if (path[j] == req[k]) {
                out[n++] = req[k];
                break;
            }
    free(path);
    return n;
}

/* Per task (or once, for a model with fewer than two tasks, or pooled over
 * every clip whatever its task): its null at its stages among st, stored in
 * cache; dists[] gets each. */
static int compute_tasks(const Network *net, const char *manifest, const char *split, const char *task_name,
                         bool pooled, const int *st, int n, int pairs, uint64_t seed, int threads,
                         const char *cache, const char *sha, NullDist *dists, int *n_dists, Error *err) {
    bool per_task = synth_null_per_task(net, pooled);
    int first = per_task ? 0 : -1, last = per_task ? net->n_tasks - 1 : -1, rc = 0;
    if (task_name) {
        int t = 0;
        while (t < net->n_tasks && strcmp(net->task_names[t], task_name)) t++;
        if (t == net->n_tasks) return error_set(err, "--task %s: the model has no such task", task_name);
        if (per_task) first = last = t;
    }
    int *mine = xmalloc(((size_t)n + 1) * sizeof *mine);
    for (int t = first; t <= last && rc == 0; t++) {
        int m = stages_of_task(net, t, st, n, mine);
        if (m == 0) continue;
        NullDist *d = &dists[(*n_dists)++];
        rc = compute_from_manifest(net, manifest, split, t, mine, m, pairs, seed, threads, false, d, err);
        if (rc == 0) {
            snprintf(d->model_sha256, sizeof d->model_sha256, "%s", sha);
            rc = synth_null_store(cache, d, err);
        }
    }
    free(mine);
    return rc;
}

int synth_cmd_null(int argc, char **argv) {
    const char *model = NULL, *manifest = NULL, *stages = "all", *split = NULL, *out = NULL,
               *stab = NULL, *task = NULL;
    bool pooled = false;
    int pairs = SYNTH_NULL_DEFAULT_PAIRS, threads = default_thread_count();
    unsigned long long seed = 0;
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"manifest", 1, 0, 'f'}, {"stages", 1, 0, 's'}, {"pairs", 1, 0, 'p'},
        {"split", 1, 0, 'S'}, {"seed", 1, 0, 'e'}, {"threads", 1, 0, 't'}, {"out", 1, 0, 'o'},
        {"stability", 1, 0, 'y'}, {"task", 1, 0, 'a'}, {"pooled", 0, 0, 'P'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 0, opterr = 0; /* 0: full reset, commands may run twice */
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': manifest = optarg; break;
        case 's': stages = optarg; break;
        case 'p': pairs = (int)strtol(optarg, &end, 10); if (*end || pairs < 1) pairs = -1; break;
        case 'S': split = optarg; break;
        case 'e': seed = strtoull(optarg, &end, 10); break;
        case 't': threads = (int)strtol(optarg, &end, 10); if (*end || threads < 1) threads = -1; break;
        case 'o': out = optarg; break;
        case 'y': stab = optarg; break;
        case 'a': task = optarg; break;
        case 'P': pooled = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "metamers null: bad option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!model || !manifest || pairs < 1 || threads < 1 || optind < argc || (pooled && task)) {
        fprintf(stderr, "metamers null: %s (see --help)\n",
                !model ? "--model is required" : !manifest ? "--manifest is required"
                : pairs < 1 ? "--pairs must be a positive integer"
                : threads < 1 ? "--threads must be a positive integer"
                : pooled && task ? "--pooled and --task exclude each other" : "unexpected argument");
        return 2;
    }
    Network net;
    Error err = {0};
    if (network_open(&net, model, &err) != 0) {
        fprintf(stderr, "metamers null: %s: %s\n", model, err.msg);
        return 1;
    }
    char sha[65];
    int *st = xmalloc(((size_t)net.arch.n_layers + 1) * 4 * sizeof *st);
    int n = network_parse_stages(&net, stages, st, (net.arch.n_layers + 1) * 4, &err);
    char *cache = out ? xstrdup(out) : synth_null_default_path(model);
    int rc = n < 0 ? -1 : 0;
    if (rc == 0 && !cache) rc = error_set(&err, "--out is required for builtin: models (no file to put the cache next to)");
    if (rc == 0) rc = synth_model_sha256(&net, model, sha, &err);
    NullDist *dists = xcalloc((size_t)net.n_tasks + 1, sizeof *dists);
    int n_dists = 0;
    if (rc == 0)
        rc = compute_tasks(&net, manifest, split, task, pooled, st, n, pairs, seed, threads, cache, sha, dists, &n_dists, &err);
    if (rc == 0 && stab) rc = write_stability(stab, dists, n_dists, &err);
    if (rc == 0) {
        printf("%-24s %6s %12s %12s %12s\n", "stage", "pairs", "max_spearman", "max_pearson", "max_snr_db");
        for (int t = 0; t < n_dists; t++)
            for (int s = 0; s < dists[t].n_stages; s++) {
                const NullStage *ns = &dists[t].stages[s];
                printf("%-24s %6d %12.4f %12.4f %12.3f\n", ns->stage, ns->n_pairs, ns->max_spearman,
                       ns->max_pearson, ns->max_snr_db);
            }
        printf("cached in %s\n", cache);
    }
    for (int t = 0; t < n_dists; t++) synth_null_free(&dists[t]);
    free(dists);
    free(cache);
    free(st);
    network_free(&net);
    if (rc != 0) fprintf(stderr, "metamers null: %s\n", err.msg);
    return rc == 0 ? 0 : 1;
}
