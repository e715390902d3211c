/* The synthesis driver: clips x stages x seeds from a manifest, run in
 * parallel (one ModelRun per worker), each metamer checkpointed, judged
 * against the null distribution and written out.
 *
 * Outputs under --out (see README.md):
 *   <stage dir>/<clip>_s<seed>.wav        the metamer (float32 WAV)
 *   <stage dir>/<clip>_s<seed>.loss.csv   loss curve (step, loss, lr)
 *   <stage dir>/<clip>_s<seed>.row.csv    its metamers.csv row (marks it done)
 *   <stage dir>/<clip>_s<seed>.ckpt.safetensors   while in progress
 *   natural/<clip>.wav                    the clip as synthesis saw it (RMS 0.1)
 *   metamers.csv (or metamers.shard-K-of-N.csv), synth.json (settings)
 *
 * Parallelism: with two or more workers each runs whole metamers with a
 * single-threaded ModelRun; a lone worker gets the thread pool for the
 * cochleagram instead. OpenBLAS is held at one thread throughout (see
 * run_pending), so the bytes of a metamer depend neither on the worker that
 * ran it nor on how many there were. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../stimuli/stimuli.h"
#include "synth_internal.h"

typedef struct {
    const SynthOptions *o;
    Network net;
    char sha[65], *model_name;
    SynthClip *clips;
    int n_clips;
    SynthJob *jobs; /* this shard's */
    int n_jobs;
    NullDist null;
    /* execution */
    int *pending, n_pending;
    ModelRun *runs;
    ModelRun *judges; /* exact models when runs are surrogates, else NULL */
    Progress *progress;
    pthread_mutex_t mu;
    atomic_bool failed; /* set once; workers stop taking jobs */
    Error first_err;
} Run;

/* ------------------------------------------------------------ job list */

/* Clips of the manifest that pass the filters, with their tasks. */
static int load_clip_list(Run *r, Error *err) {
    const SynthOptions *o = r->o;
    Manifest man;
    if (manifest_read(o->manifest, &man, err) != 0) return -1;
    r->clips = xcalloc((size_t)man.n + 1, sizeof *r->clips);
    int rc = 0;
    for (int i = 0; i < man.n && rc == 0; i++) {
        const ManifestRow *row = &man.rows[i];
        if ((o->clips && !synth_in_list(o->clips, row->clip_id)) || (o->task && strcmp(row->task, o->task)) ||
            (o->split && strcmp(row->split, o->split)))
            continue;
        int task = synth_clip_task(&r->net, row->clip_id, row->task, err);
        if (task < -1) rc = -1;
        SynthClip *c = &r->clips[r->n_clips++];
        c->id = xstrdup(row->clip_id), c->task_name = xstrdup(row->task);
        c->label = xstrdup(row->label), c->path = manifest_clip_path(&man, row), c->task = task;
    }
    if (rc == 0 && o->clips) { /* every named clip must exist */
        char *copy = xstrdup(o->clips), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            if (manifest_find(&man, t) < 0) rc = error_set(err, "%s: no clip '%s'", o->manifest, t);
        free(copy);
    }
    if (rc == 0 && r->n_clips == 0) rc = error_set(err, "%s: no clips left after the filters", o->manifest);
    manifest_free(&man);
    return rc;
}

static int build_jobs(Run *r, Error *err) {
    const SynthOptions *o = r->o;
    int *stages = xmalloc(((size_t)r->net.arch.n_layers + 1) * sizeof *stages), index = 0, rc = 0;
    for (int c = 0; c < r->n_clips && rc == 0; c++) {
        int ns = synth_clip_stages(&r->net, o->stages, r->clips[c].task, r->clips[c].id,
                                   r->clips[c].task_name, stages, err);
        if (ns < 0) rc = -1;
        for (int s = 0; s < ns; s++)
            for (int seed = 0; seed < o->seeds; seed++, index++) {
                if (!synth_shard_has(index, o->shard_k, o->shard_n)) continue;
                r->jobs = realloc(r->jobs, (size_t)(r->n_jobs + 1) * sizeof *r->jobs);
                if (!r->jobs) abort();
                r->jobs[r->n_jobs++] = (SynthJob){index, c, stages[s], seed};
            }
    }
    free(stages);
    /* Two stages must not share a folder (e.g. "a/b" and "a.b"). */
    for (int i = 0; rc == 0 && i < r->net.arch.n_layers; i++) {
        char di[256], dj[256];
        synth_stage_dirname(r->net.arch.layers[i].name, di, sizeof di);
        if (!strcmp(di, "natural") || !strcmp(di, "cochleagram"))
            rc = error_set(err, "stage '%s' would write to the reserved folder '%s'", r->net.arch.layers[i].name, di);
        for (int j = i + 1; rc == 0 && j < r->net.arch.n_layers; j++) {
            synth_stage_dirname(r->net.arch.layers[j].name, dj, sizeof dj);
            if (!strcmp(di, dj))
                rc = error_set(err, "stages '%s' and '%s' map to the same folder '%s'",
                               r->net.arch.layers[i].name, r->net.arch.layers[j].name, di);
        }
    }
    return rc;
}

/* <out>/<stage dir>/<clip>_s<seed><ext> */
static char *job_path(const Run *r, const SynthJob *j, const char *ext, bool relative) {
    char dir[256], name[1024];
    synth_stage_dirname(synth_stage_name(&r->net, j->stage), dir, sizeof dir);
    snprintf(name, sizeof name, "%s/%s_s%d%s", dir, r->clips[j->clip].id, j->seed, ext);
    return relative ? xstrdup(name) : synth_join(r->o->out, name);
}

/* ------------------------------------------------------------- settings */

/* synth.json: a folder holds metamers of one model and one procedure. */
static int check_settings(const Run *r, Error *err) {
    char desc[512];
    synth_settings_describe(&r->o->set, desc, sizeof desc);
    char *path = synth_join(r->o->out, "synth.json");
    int rc = 0;
    if (synth_file_exists(path)) {
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        const char *sha = json_string_value(json_object_get(j, "model_sha256"));
        const char *set = json_string_value(json_object_get(j, "settings"));
        if (!j) rc = error_set(err, "%s: %s", path, je.text);
        else if (!sha || !set || strcmp(sha, r->sha) || strcmp(set, desc))
            rc = error_set(err, "%s holds metamers of %s (%s); this run is %s (%s): use another --out",
                           r->o->out, sha && strcmp(sha, r->sha) ? "another model" : "other settings",
                           set ? set : "?", r->model_name, desc);
        json_decref(j);
    } else {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "model", r->model_name, "model_sha256", r->sha,
                              "preset", r->o->set.preset, "settings", desc);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        size_t n = strlen(s);
        s = realloc(s, n + 2);
        strcpy(s + n, "\n");
        rc = atomic_write_file(path, s, n + 1, 0644, err);
        free(s);
        json_decref(j);
    }
    free(path);
    return rc;
}

/* ------------------------------------------------------------- verdicts */

static void label_of(const Network *net, int task, int idx, char *buf, size_t size) {
    if (idx < 0) snprintf(buf, size, "n/a");
    else if (task >= 0 && net->classes && net->classes[task] && idx < net->n_classes[task])
        snprintf(buf, size, "%s", net->classes[task][idx]);
    else snprintf(buf, size, "%d", idx);
}

/* Correlations are bounded by 1; rounding leaves a perfect one a few ulps off. */
static bool at_ceiling(double v) { return v >= 1 - 1e-9; }

bool metamer_judge(const MetamerResult *m, const NullStage *ns, const char *pn, const char *pm,
                   char *verdict, size_t size) {
    if (m->diverged) return snprintf(verdict, size, "fail: %s", m->divergence), false;
    if (!ns) return snprintf(verdict, size, "fail: no null distribution"), false;
    char why[512] = "";
    size_t n = 0;
    const struct { const char *name; double v, max; bool bounded; } st[3] = {
        {"spearman", m->spearman, ns->max_spearman, true},
        {"pearson", m->pearson, ns->max_pearson, true},
        {"snr_db", m->snr_db, ns->max_snr_db, false}};
    for (int k = 0; k < 3; k++) {
        bool ceiling = st[k].bounded && at_ceiling(st[k].max) && at_ceiling(st[k].v);
        if (!(st[k].v > st[k].max) && !ceiling)
            n += (size_t)snprintf(why + n, sizeof why - n, "%s%s %.4g <= null max %.4g", n ? "; " : "",
                                  st[k].name, st[k].v, st[k].max);
    }
    if (m->pred_natural != m->pred_metamer && n < sizeof why)
        n += (size_t)snprintf(why + n, sizeof why - n, "%sprediction '%s' != natural '%s'",
                              n ? "; " : "", pm, pn);
    if (n == 0) return snprintf(verdict, size, "pass"), true;
    snprintf(verdict, size, "fail: %s", why);
    return false;
}

/* ------------------------------------------------------------- outputs */

static int write_loss_curve(const char *path, const SynthSettings *s, const MetamerResult *m,
                            Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    fprintf(af.f, "step,loss,lr\n");
    for (int i = 0; i < m->n_loss; i++)
        fprintf(af.f, "%d,%.9g,%.9g\n", i, (double)m->loss[i], synth_lr_at(s, i));
    return atomic_commit(&af, err);
}

static int write_outputs(Run *r, const SynthJob *j, const MetamerResult *m, Error *err) {
    const SynthClip *c = &r->clips[j->clip];
    const char *stage = synth_stage_name(&r->net, j->stage);
    const NullStage *ns = synth_null_of(&r->null, &r->net, synth_null_task(&r->net, c->task, r->o->null_pooled), j->stage);
    char pn[128], pm[128], verdict[700], optimizer[600];
    label_of(&r->net, c->task, m->pred_natural, pn, sizeof pn);
    label_of(&r->net, c->task, m->pred_metamer, pm, sizeof pm);
    bool passed = metamer_judge(m, ns, pn, pm, verdict, sizeof verdict);
    synth_settings_describe(&r->o->set, optimizer, sizeof optimizer);
    char *wav = job_path(r, j, ".wav", false), *loss = job_path(r, j, ".loss.csv", false);
    char *rowp = job_path(r, j, ".row.csv", false);
    Row row = {0};
    row.f[COL_CLIP_ID] = xstrdup(c->id), row.f[COL_TASK] = xstrdup(c->task_name);
    row.f[COL_STAGE] = xstrdup(stage), row.f[COL_STAGE_INDEX] = row_number("%.0f", j->stage);
    row.f[COL_SEED] = row_number("%.0f", j->seed), row.f[COL_START] = row_number("%.0f", m->start);
    row.f[COL_PRESET] = xstrdup(r->o->set.preset);
    row.f[COL_OPTIMIZER] = xstrdup(optimizer), row.f[COL_ITERATIONS] = row_number("%.0f", m->iterations);
    row.f[COL_SECONDS] = row_number("%.2f", m->seconds), row.f[COL_FINAL_LOSS] = row_number("%.6g", m->final_loss);
    row.f[COL_SPEARMAN] = row_number("%.6f", m->spearman), row.f[COL_PEARSON] = row_number("%.6f", m->pearson);
    row.f[COL_SNR_DB] = row_number("%.4f", m->snr_db);
    row_set_judgement(&row, ns, passed, verdict);
    row.f[COL_LABEL] = xstrdup(c->label), row.f[COL_PRED_NATURAL] = xstrdup(pn);
    row.f[COL_PRED_METAMER] = xstrdup(pm), row.f[COL_MODEL] = xstrdup(r->model_name);
    row.f[COL_MODEL_SHA] = xstrdup(r->sha), row.f[COL_PATH] = job_path(r, j, ".wav", true);
    row.f[COL_LOSS_CURVE] = job_path(r, j, ".loss.csv", true);
    /* WAV and loss first, the row last: the row says the metamer is complete. */
    int rc = audio_write_wav(wav, m->wave, r->net.front_end.signal_size, 1, r->net.front_end.sr,
                             AUDIO_FLOAT32, NULL, err);
    if (rc == 0) rc = write_loss_curve(loss, &r->o->set, m, err);
    if (rc == 0) rc = rows_write_csv(rowp, &row, 1, err);
    row_free(&row);
    free(wav), free(loss), free(rowp);
    return rc;
}

/* ------------------------------------------------------------ execution */

typedef struct {
    Run *r;
    int worker;
} JobCtx;

static void on_step(void *ctx, int step, int total, double loss) {
    (void)total;
    JobCtx *j = ctx;
    progress_step(j->r->progress, j->worker, step, loss);
}

static void run_job(void *vctx, int task, int worker) {
    Run *r = vctx;
    if (r->failed) return; /* stop handing out work after an error */
    const SynthJob *j = &r->jobs[r->pending[task]];
    const SynthClip *c = &r->clips[j->clip];
    const char *stage = synth_stage_name(&r->net, j->stage);
    char *ckpt = job_path(r, j, ".ckpt.safetensors", false), key[1400], desc[512], clip_sha[65];
    synth_settings_describe(&r->o->set, desc, sizeof desc);
    sha256_hex(c->wave, (size_t)r->net.front_end.signal_size * sizeof(float), clip_sha);
    snprintf(key, sizeof key, "model=%s clip=%s clip_sha256=%s stage=%s seed=%d %s", r->sha, c->id,
             clip_sha, stage, j->seed, desc);
    JobCtx jc = {r, worker};
    MetamerSpec spec = {.stage = j->stage, .task_layer = c->task >= 0 ? r->net.task_layers[c->task] : -2,
                        .natural = c->wave, .noise_seed = synth_noise_seed(c->id, j->seed),
                        .checkpoint = ckpt, .key = key, .progress = on_step, .progress_ctx = &jc,
                        .judge = r->judges ? &r->judges[worker] : NULL};
    char label[96];
    snprintf(label, sizeof label, "%s %s s%d", stage, c->id, j->seed);
    progress_job_start(r->progress, worker, label, 0, synth_budget_steps(&r->o->set));
    MetamerResult m;
    Error err = {0};
    int rc = synth_metamer(&r->runs[worker], &r->o->set, &spec, &m, &err);
    if (rc == 0 && m.resumed_other_plans) /* said even with --quiet, like a divergence */
        fprintf(stderr, "metamers synth: %s resumed at step %d under other FFTW plans than it "
                "started with (another machine or plan cache): it will not be bit-identical to "
                "an uninterrupted run\n", label, m.resumed_from);
    if (rc == 0 && m.diverged) /* said even with --quiet: the row alone is easy to miss */
        fprintf(stderr, "metamers synth: %s stopped, %s (kept, marked failed)\n", label,
                m.divergence);
    if (rc == 0) rc = write_outputs(r, j, &m, &err);
    if (rc == 0) unlink(ckpt); /* only once the results are safely stored */
    metamer_result_free(&m);
    progress_job_done(r->progress, worker);
    if (rc != 0) {
        pthread_mutex_lock(&r->mu);
        if (!r->failed) r->first_err = err, r->failed = true;
        pthread_mutex_unlock(&r->mu);
    }
    free(ckpt);
}

/* Deeper stages cost more: start them first so the last job is short. */
static int cmp_depth(const void *a, const void *b, void *ctx) {
    const SynthJob *jobs = ctx, *x = &jobs[*(const int *)a], *y = &jobs[*(const int *)b];
    if (x->stage != y->stage) return y->stage - x->stage;
    return x->index - y->index;
}

static int run_pending(Run *r, Error *err) {
    const SynthOptions *o = r->o;
    int workers = o->threads < r->n_pending ? o->threads : r->n_pending;
    if (workers < 1) workers = 1;
    Pool *inner = workers == 1 ? pool_create(o->threads) : NULL;
    r->runs = xcalloc((size_t)workers, sizeof *r->runs);
    int rc = 0;
    /* Created here, one thread: FFTW planning is not thread safe. */
    double os = o->set.envelope_oversample;
    for (int w = 0; w < workers && rc == 0; w++)
        rc = model_run_init_reduced(&r->runs[w], &r->net, inner, os, err);
    if (os > 0) {
        r->judges = xcalloc((size_t)workers, sizeof *r->judges);
        for (int w = 0; w < workers && rc == 0; w++) rc = model_run_init(&r->judges[w], &r->net, inner, err);
    }
    if (rc == 0 && r->n_pending > 0) {
        qsort_r(r->pending, (size_t)r->n_pending, sizeof *r->pending, cmp_depth, r->jobs);
        long long total = (long long)r->n_pending * synth_budget_steps(&o->set);
        r->progress = progress_create(r->n_pending, total, 0, workers, o->quiet);
        pthread_mutex_init(&r->mu, NULL);
        Pool *outer = pool_create(workers);
        /* One OpenBLAS thread always: two workers must not oversubscribe the
         * cores, and OpenBLAS's threaded sgemv sums in another order than
         * its serial one (the logits differ in the last bits), so a metamer
         * resumed alone would otherwise differ from one run beside another. */
        int old = blas_set_threads(1);
        pool_run(outer, run_job, r, r->n_pending);
        blas_set_threads(old);
        pool_free(outer);
        progress_finish(r->progress);
        pthread_mutex_destroy(&r->mu);
        if (r->failed) rc = (*err = r->first_err, -1);
    }
    for (int w = 0; w < workers; w++) {
        model_run_free(&r->runs[w]);
        if (r->judges) model_run_free(&r->judges[w]);
    }
    free(r->runs), free(r->judges);
    r->judges = NULL;
    if (inner) pool_free(inner);
    return rc;
}

/* ----------------------------------------------------------- the run */

static int write_naturals(Run *r, Error *err) {
    char *dir = synth_join(r->o->out, "natural");
    int rc = make_dirs(dir, 0755, err);
    for (int i = 0; rc == 0 && i < r->n_pending; i++) {
        SynthClip *c = &r->clips[r->jobs[r->pending[i]].clip];
        char name[600];
        snprintf(name, sizeof name, "%s.wav", c->id);
        char *path = synth_join(dir, name);
        if (!synth_file_exists(path))
            rc = audio_write_wav(path, c->wave, r->net.front_end.signal_size, 1, r->net.front_end.sr,
                                 AUDIO_FLOAT32, NULL, err);
        free(path);
    }
    free(dir);
    return rc;
}

/* The null of every (task, stage) a pending job needs; then all of it. */
static int prepare_null(Run *r, Error *err) {
    const SynthOptions *o = r->o;
    int *stages = xmalloc(((size_t)r->net.arch.n_layers + 1) * sizeof *stages);
    char *cache = o->null_path ? xstrdup(o->null_path) : synth_null_default_path(o->model);
    if (!cache) cache = synth_join(o->out, "null.safetensors"); /* builtin: models */
    int rc = 0, per_task = synth_null_per_task(&r->net, o->null_pooled);
    for (int t = per_task ? 0 : -1; t < (per_task ? r->net.n_tasks : 0) && rc == 0; t++) {
        int n = 0;
        for (int i = 0; i < r->n_pending; i++) {
            const SynthJob *j = &r->jobs[r->pending[i]];
            bool skip = per_task && r->clips[j->clip].task != t; /* another task's job */
            for (int k = 0; k < n; k++) skip |= stages[k] == j->stage;
            if (!skip) stages[n++] = j->stage;
        }
        NullDist d;
        if (n > 0)
            rc = synth_null_ensure(&r->net, r->sha, cache, o->null_manifest ? o->null_manifest : o->manifest,
                                   o->null_manifest ? NULL : o->split, t, stages, n, o->null_pairs,
                                   o->null_seed, o->threads, o->quiet, &d, err);
        if (n > 0 && rc == 0) synth_null_free(&d);
    }
    if (rc == 0) rc = synth_null_load(cache, r->sha, &r->null, NULL, err);
    free(cache);
    free(stages);
    return rc;
}

static int write_table(Run *r, Error *err) {
    const SynthOptions *o = r->o;
    Row *rows = NULL;
    int n = 0, rc = 0;
    char *csv;
    if (o->shard_n > 1) { /* only this shard's rows: shards may share --out */
        char name[64];
        snprintf(name, sizeof name, "metamers.shard-%d-of-%d.csv", o->shard_k, o->shard_n);
        csv = synth_join(o->out, name);
        for (int i = 0; i < r->n_jobs && rc == 0; i++) {
            char *p = job_path(r, &r->jobs[i], ".row.csv", false);
            if (synth_file_exists(p)) rc = rows_read_csv(p, &rows, &n, err);
            free(p);
        }
    } else {
        csv = synth_join(o->out, "metamers.csv");
        rc = rows_scan_dir(o->out, &rows, &n, err);
    }
    rows_sort(rows, n);
    if (rc == 0) rc = rows_write_csv(csv, rows, n, err);
    int passed = 0;
    for (int i = 0; i < n; i++) passed += !strcmp(rows[i].f[COL_PASSED], "true");
    char *sum = synth_join(o->out, "summary.csv");
    if (rc == 0) rc = rows_summary(o->shard_n > 1 ? NULL : sum, o->quiet ? NULL : stderr, rows, n, err);
    free(sum);
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "%s: %d metamers, %d passed the success criterion%s\n", csv, n, passed,
                o->shard_n > 1 ? " (merge the shards with `metamers synth merge`)" : "");
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    free(rows);
    free(csv);
    return rc;
}

static void run_free(Run *r) {
    for (int c = 0; c < r->n_clips; c++) {
        SynthClip *k = &r->clips[c];
        free(k->id), free(k->task_name), free(k->label), free(k->path), free(k->wave);
    }
    free(r->clips), free(r->jobs), free(r->pending), free(r->model_name);
    synth_null_free(&r->null);
    network_free(&r->net);
}

int synth_run(const SynthOptions *o, Error *err) {
    Run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    if (network_open(&r.net, o->model, err) != 0) return error_prefix(err, "%s", o->model);
    r.model_name = synth_model_name(o->model);
    int rc = synth_model_sha256(&r.net, o->model, r.sha, err);
    if (rc == 0) rc = load_clip_list(&r, err);
    if (rc == 0) rc = build_jobs(&r, err);
    if (rc == 0 && o->dry_run) {
        for (int i = 0; i < r.n_jobs; i++)
            printf("%d\t%s\t%s\t%d\n", r.jobs[i].index, r.clips[r.jobs[i].clip].id,
                   synth_stage_name(&r.net, r.jobs[i].stage), r.jobs[i].seed);
        fprintf(stderr, "%d jobs in this shard\n", r.n_jobs);
        run_free(&r);
        return 0;
    }
    if (rc == 0) rc = make_dirs(o->out, 0755, err);
    if (rc == 0) rc = check_settings(&r, err);
    r.pending = xmalloc(((size_t)r.n_jobs + 1) * sizeof *r.pending);
    for (int i = 0; rc == 0 && i < r.n_jobs; i++) {
        char *row = job_path(&r, &r.jobs[i], ".row.csv", false), *dir = xstrdup(row);
        *strrchr(dir, '/') = 0;
        rc = make_dirs(dir, 0755, err);
        if (!synth_file_exists(row)) r.pending[r.n_pending++] = i;
        free(row), free(dir);
    }
    if (rc == 0 && !o->quiet && r.n_pending < r.n_jobs)
        fprintf(stderr, "%d of %d metamers already done in %s\n", r.n_jobs - r.n_pending, r.n_jobs, o->out);
    /* Clips are read (and their length checked) before any long work. */
    for (int i = 0; rc == 0 && i < r.n_pending; i++) {
        SynthClip *c = &r.clips[r.jobs[r.pending[i]].clip];
        if (!c->wave) rc = synth_load_clip(&r.net, c->path, c->id, o->set.clip_rms, &c->wave, err);
    }
    if (rc == 0 && r.n_pending) rc = prepare_null(&r, err);
    if (rc == 0) rc = write_naturals(&r, err);
    if (rc == 0) rc = run_pending(&r, err);
    if (rc == 0) rc = write_table(&r, err);
    run_free(&r);
    return rc;
}
