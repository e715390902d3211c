/* `metamers eval`: accuracy of a model on a stimulus set's split, per task
 * and per SNR bin, and per-clip predictions (clip_id, task, label, top1,
 * p_top1, correct: the analysis and experiment modules read these columns). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "train.h"

static const char eval_usage[] =
    "usage: metamers eval --model M --manifest M [--split test] [--out predictions.csv]\n"
    "Prints top-1 accuracy per task, overall and per SNR bin (clean, <0, 0-5, 5-10,\n"
    ">10 dB, and 0..10 dB together), computed on full-precision cochleagrams.\n"
    "\n"
    "  --model M      model file (safetensors)\n"
    "  --manifest M   stimulus set manifest.csv\n"
    "  --split NAME   (default test)\n"
    "  --out FILE     per-clip predictions CSV (written atomically)\n"
    "  --record       also store the accuracies in the model's metadata\n"
    "                 (eval.<split>.<task>.<bin>), rewriting the model file\n"
    "  --by COLUMN    also accuracy per value of a manifest column: source,\n"
    "                 speaker (speaker_or_style) or noise, all SNRs and 0..10 dB\n";

#define N_BINS 6
static const char *const bin_names[N_BINS] = {"all", "clean", "<0", "0-5", "5-10", ">10"};

typedef struct {
    const char *model, *manifest, *split, *out, *by;
    bool record;
} EvalArgs;

typedef struct {
    int top1;
    float p;
} Pred;

/* --by's manifest columns: index into group_of. */
static const char *const by_names[] = {"source", "speaker", "noise"};

static int by_column(const char *by) {
    for (int k = 0; k < (int)(sizeof by_names / sizeof *by_names); k++)
        if (!strcmp(by, by_names[k])) return k;
    return -1;
}

static const char *group_of(const ManifestRow *r, int column) {
    return column == 0 ? r->source : column == 1 ? r->speaker_or_style : r->noise;
}

static int parse_args(int argc, char **argv, EvalArgs *a) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"manifest", 1, 0, 'M'}, {"split", 1, 0, 's'},
        {"out", 1, 0, 'o'},   {"record", 0, 0, 'r'},   {"by", 1, 0, 'b'},
        {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    *a = (EvalArgs){.split = "test"};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'M': a->manifest = optarg; break;
        case 's': a->split = optarg; break;
        case 'o': a->out = optarg; break;
        case 'r': a->record = true; break;
        case 'b': a->by = optarg; break;
        case 'h': fputs(eval_usage, stdout); return 1;
        default: fputs(eval_usage, stderr); return 2;
        }
    }
    if (optind != argc || !a->model || !a->manifest) {
        fprintf(stderr, "metamers eval: need --model and --manifest\n");
        return 2;
    }
    if (a->by && by_column(a->by) < 0) {
        fprintf(stderr, "metamers eval: --by %s: not source, speaker or noise\n", a->by);
        return 2;
    }
    return 0;
}

static int snr_bin(double snr) {
    if (isinf(snr)) return 1;
    if (snr < 0) return 2;
    if (snr < 5) return 3;
    if (snr <= 10) return 4;
    return 5;
}

typedef struct {
    const TrainSet *ts;
    const Cochleagram *coch;
    CochleagramWork **work;
    float *x;
    int first;
    Error *errs;
    int *failed;
} EvalCtx;

static void coch_one(void *vctx, int k, int worker) {
    EvalCtx *c = vctx;
    const ManifestRow *row = &c->ts->m->rows[c->ts->rows[c->first + k]];
    char *path = manifest_clip_path(c->ts->m, row);
    const FrontEndConfig *fe = cochleagram_config(c->coch);
    Audio a;
    int rc = audio_read(path, fe->sr, fe->signal_size, &a, &c->errs[worker]);
    free(path);
    if (rc) {
        c->failed[worker] = 1;
        return;
    }
    size_t numel = (size_t)c->ts->channels * c->ts->frames;
    cochleagram_forward(c->coch, c->work[worker], NULL, a.samples, c->x + (size_t)k * numel);
    audio_free(&a);
}

static void predict_batch(const Network *net, NetworkWork *w, const TrainSet *ts, const float *x,
                          int first, int n, Pred *pred) {
    network_forward(net, w, x, net->task_layers, net->n_tasks);
    for (int k = 0; k < n; k++) {
        int t = ts->task[first + k], nc = net->n_classes[t];
        const float *z = network_activation(w, net->task_layers[t]) + (size_t)k * nc;
        double *prob = xmalloc(sizeof(double) * (size_t)nc);
        model_softmax(z, nc, prob);
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (prob[c] > prob[best]) best = c;
        pred[first + k] = (Pred){best, (float)prob[best]};
        free(prob);
    }
}

/* Cochleagrams batch by batch over the pool, then one batched forward. */
static int predict_all(const Network *net, const TrainSet *ts, Pool *pool, Pred *pred, Error *err) {
    const int B = 32;
    Cochleagram *coch = cochleagram_create(&net->front_end, err);
    if (!coch) return -1;
    int nw = pool_size(pool);
    size_t numel = (size_t)ts->channels * ts->frames;
    EvalCtx c = {ts, coch, xcalloc((size_t)nw, sizeof(void *)), alloc_floats(numel * B), 0,
                 xcalloc((size_t)nw, sizeof(Error)), xcalloc((size_t)nw, sizeof(int))};
    for (int k = 0; k < nw; k++) c.work[k] = cochleagram_work_create(coch, 1);
    NetworkWork *w = network_work_create(net, B, false);
    int rc = 0;
    for (int first = 0; first < ts->n && !rc; first += B) {
        int n = ts->n - first < B ? ts->n - first : B;
        c.first = first;
        memset(c.x, 0, numel * B * sizeof(float)); /* a short last batch: zeros, ignored */
        pool_run(pool, coch_one, &c, n);
        for (int k = 0; k < nw; k++)
            if (c.failed[k] && !rc) rc = -1, *err = c.errs[k];
        if (!rc) predict_batch(net, w, ts, c.x, first, n, pred);
    }
    network_work_free(w);
    for (int k = 0; k < nw; k++) cochleagram_work_free(c.work[k]);
    free(c.work), free(c.x), free(c.errs), free(c.failed);
    cochleagram_free(coch);
    return rc;
}

static int write_predictions(const char *path, const Network *net, const TrainSet *ts,
                             const Pred *pred, Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    fprintf(af.f, "clip_id,task,label,top1,p_top1,correct\n");
    for (int i = 0; i < ts->n; i++) {
        const ManifestRow *r = &ts->m->rows[ts->rows[i]];
        int t = ts->task[i];
        table_write_field(af.f, r->clip_id), fputc(',', af.f);
        table_write_field(af.f, r->task), fputc(',', af.f);
        table_write_field(af.f, r->label), fputc(',', af.f);
        table_write_field(af.f, net->classes[t][pred[i].top1]);
        fprintf(af.f, ",%.6f,%d\n", pred[i].p, pred[i].top1 == ts->label[i]);
    }
    return atomic_commit(&af, err);
}

/* Prints the table; fills acc[task][bin] (NaN where no clips). */
static void summarize(const Network *net, const TrainSet *ts, const Pred *pred,
                      double acc[][N_BINS + 1]) {
    printf("%-8s %-8s %7s %8s\n", "task", "snr", "clips", "top1");
    for (int t = 0; t < net->n_tasks; t++) {
        long n[N_BINS + 1] = {0}, ok[N_BINS + 1] = {0};
        for (int i = 0; i < ts->n; i++) {
            if (ts->task[i] != t) continue;
            double snr = ts->m->rows[ts->rows[i]].snr_db;
            int b = snr_bin(snr), hit = pred[i].top1 == ts->label[i];
            n[0]++, ok[0] += hit, n[b]++, ok[b] += hit;
            if (!isinf(snr) && snr >= 0 && snr <= 10) n[N_BINS]++, ok[N_BINS] += hit;
        }
        for (int b = 0; b <= N_BINS; b++) {
            acc[t][b] = n[b] ? (double)ok[b] / (double)n[b] : NAN;
            if (!n[b]) continue;
            printf("%-8s %-8s %7ld %7.1f%%\n", net->task_names[t],
                   b < N_BINS ? bin_names[b] : "0..10", n[b], 100 * acc[t][b]);
        }
    }
}

/* Accuracy per value of a manifest column (e.g. per held-out voice: which
 * talkers or synthesizers the model fails on), all SNRs and 0..10 dB, in
 * order of first appearance. */
static void summarize_by(const Network *net, const TrainSet *ts, const Pred *pred, const char *by) {
    const char **name = xcalloc((size_t)ts->n, sizeof *name);
    long(*cnt)[4] = xcalloc((size_t)ts->n, sizeof *cnt); /* n, ok, n 0..10, ok 0..10 */
    int column = by_column(by);
    printf("\n%-8s %-40s %7s %8s %7s %8s\n", "task", by, "clips", "top1", "0..10", "top1");
    for (int t = 0; t < net->n_tasks; t++) {
        int groups = 0;
        for (int i = 0; i < ts->n; i++) {
            if (ts->task[i] != t) continue;
            const ManifestRow *r = &ts->m->rows[ts->rows[i]];
            const char *g = group_of(r, column);
            int k = 0;
            while (k < groups && strcmp(name[k], g)) k++;
            if (k == groups) name[groups] = g, memset(cnt[groups], 0, sizeof cnt[0]), groups++;
            int hit = pred[i].top1 == ts->label[i];
            cnt[k][0]++, cnt[k][1] += hit;
            if (!isinf(r->snr_db) && r->snr_db >= 0 && r->snr_db <= 10) cnt[k][2]++, cnt[k][3] += hit;
        }
        for (int k = 0; k < groups; k++) {
            printf("%-8s %-40s %7ld %7.1f%%", net->task_names[t], name[k], cnt[k][0],
                   100.0 * (double)cnt[k][1] / (double)cnt[k][0]);
            if (cnt[k][2]) printf(" %7ld %7.1f%%\n", cnt[k][2], 100.0 * (double)cnt[k][3] / (double)cnt[k][2]);
            else printf(" %7d %8s\n", 0, "-");
        }
    }
    free(name), free(cnt);
}

static int record(const char *path, const Network *net, const char *split,
                  double acc[][N_BINS + 1], Error *err) {
    char keys[TRAIN_MAX_TASKS * (N_BINS + 1)][96], vals[TRAIN_MAX_TASKS * (N_BINS + 1)][32];
    const char *meta[2 * TRAIN_MAX_TASKS * (N_BINS + 1) + 1];
    int k = 0, m = 0;
    for (int t = 0; t < net->n_tasks && t < TRAIN_MAX_TASKS; t++)
        for (int b = 0; b <= N_BINS; b++) {
            if (isnan(acc[t][b])) continue;
            snprintf(keys[k], sizeof keys[k], "eval.%s.%s.%s", split, net->task_names[t],
                     b < N_BINS ? bin_names[b] : "0to10db");
            snprintf(vals[k], sizeof vals[k], "%.4f", acc[t][b]);
            meta[m++] = keys[k], meta[m++] = vals[k], k++;
        }
    meta[m] = NULL;
    return network_save(net, path, meta, err);
}

int model_cmd_eval(int argc, char **argv) {
    EvalArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    Network net = {0};
    Manifest m;
    manifest_init(&m);
    TrainSet ts = {0};
    Pred *pred = NULL;
    Pool *pool = pool_create(default_thread_count());
    rc = network_load(&net, a.model, &err);
    if (!rc && net.n_tasks > TRAIN_MAX_TASKS) rc = error_set(&err, "at most %d tasks", TRAIN_MAX_TASKS);
    if (!rc) rc = manifest_read(a.manifest, &m, &err);
    if (!rc) rc = train_set_select(&ts, &m, a.split, &net, &err);
    if (!rc) {
        Cochleagram *c = cochleagram_create(&net.front_end, &err);
        if (!c) rc = -1;
        else ts.channels = cochleagram_channels(c), ts.frames = cochleagram_frames(c), cochleagram_free(c);
    }
    if (!rc) pred = xcalloc((size_t)ts.n, sizeof *pred), rc = predict_all(&net, &ts, pool, pred, &err);
    double acc[TRAIN_MAX_TASKS][N_BINS + 1];
    if (!rc) summarize(&net, &ts, pred, acc);
    if (!rc && a.by) summarize_by(&net, &ts, pred, a.by);
    if (!rc && a.out) rc = write_predictions(a.out, &net, &ts, pred, &err);
    if (!rc && a.record) rc = record(a.model, &net, a.split, acc, &err);
    if (rc) fprintf(stderr, "metamers eval: %s\n", err.msg);
    free(pred);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
    pool_free(pool);
    return rc ? 1 : 0;
}
