/* Training: the loss falls, resume is exact, eval writes its CSV, and the
 * training gradient (batchnorm in training mode, dropout) matches finite
 * differences. Data: tones generated here (the tiny front end: 8 kHz,
 * 0.25 s), "word" = low vs high tone, "genre" = steady vs amplitude-
 * modulated; and the `tiny` stimulus recipe for the default network. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/train.h"
#include "test.h"

static const char *tiny_arch =
    "{\"name\": \"tiny-branched\", \"input\": [1, 21, 20], \"layers\": ["
    "{\"name\": \"bn0\", \"op\": \"batchnorm\"},"
    "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 6, \"kernel\": [3, 3], \"stride\": [1, 1], \"padding\": \"same\"},"
    "{\"name\": \"relu0\", \"op\": \"relu\"},"
    "{\"name\": \"maxpool0\", \"op\": \"maxpool\", \"kernel\": [2, 2], \"stride\": [2, 2], \"padding\": \"same\"},"
    "{\"name\": \"bn1\", \"op\": \"batchnorm\"},"
    "{\"name\": \"word/conv1\", \"op\": \"conv2d\", \"input\": \"bn1\", \"out\": 4, \"kernel\": [3, 3], \"stride\": [1, 1], \"padding\": \"same\"},"
    "{\"name\": \"word/relu1\", \"op\": \"relu\"},"
    "{\"name\": \"word/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"word/dropout\", \"op\": \"dropout\", \"p\": 0.2},"
    "{\"name\": \"word/final\", \"op\": \"linear\", \"out\": 2},"
    "{\"name\": \"genre/conv1\", \"op\": \"conv2d\", \"input\": \"bn1\", \"out\": 4, \"kernel\": [3, 3], \"stride\": [1, 1], \"padding\": \"same\"},"
    "{\"name\": \"genre/relu1\", \"op\": \"relu\"},"
    "{\"name\": \"genre/avgpool\", \"op\": \"avgpool\", \"kernel\": [2, 2], \"stride\": [2, 2], \"padding\": \"same\"},"
    "{\"name\": \"genre/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"genre/final\", \"op\": \"linear\", \"out\": 2}],"
    "\"outputs\": {\"word\": \"word/final\", \"genre\": \"genre/final\"}}";

static int tiny_net(Network *net, uint64_t seed, Error *err) {
    FrontEndConfig fe;
    if (front_end_config_preset("tiny", &fe, err)) return -1;
    if (network_from_architecture(net, tiny_arch, &fe, err)) return -1;
    network_init_random(net, seed);
    char *word[] = {"low", "high"}, *genre[] = {"steady", "am"};
    if (network_set_classes(net, 0, strcmp(net->task_names[0], "word") ? genre : word, 2, err)) return -1;
    return network_set_classes(net, 1, strcmp(net->task_names[1], "word") ? genre : word, 2, err);
}

/* n clips per class and task per split, with random phase, frequency jitter
 * and a little white noise; returns the manifest path. */
static const char *tone_set(TestCtx *t, int n) {
    static char mpath[600];
    char path[700];
    snprintf(path, sizeof path, "%s/clips", test_tmpdir(t));
    Error err;
    make_dirs(path, 0755, &err);
    Manifest m;
    manifest_init(&m);
    Rng r;
    rng_seed(&r, 7);
    float x[2000];
    for (int i = 0; i < 8 * n; i++) {
        int task = i % 2, cls = (i / 2) % 2, test = i >= 4 * n;
        double f = task ? 1000 : (cls ? 2000 : 300), ph = 6.28 * rng_uniform(&r);
        f *= 1 + 0.05 * (rng_uniform(&r) - 0.5);
        for (int k = 0; k < 2000; k++) {
            double am = task && cls ? 0.5 + 0.5 * sin(6.2832 * 20 * k / 8000.0) : 1;
            x[k] = (float)(0.1 * am * sin(6.2832 * f * k / 8000.0 + ph) + 0.01 * rng_normal(&r));
        }
        char id[64], rel[96], speaker[16];
        snprintf(id, sizeof id, "c%03d", i);
        snprintf(speaker, sizeof speaker, "v%d", i % 3);
        snprintf(rel, sizeof rel, "clips/%s.wav", id);
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(t), rel);
        audio_write_wav(path, x, 2000, 1, 8000, AUDIO_FLOAT32, NULL, &err);
        ManifestRow row = {id, rel, task ? "genre" : "word",
                           task ? (cls ? "am" : "steady") : (cls ? "high" : "low"), "test",
                           speaker, "none", test ? "test" : "train", INFINITY, 1};
        manifest_add(&m, &row);
    }
    snprintf(mpath, sizeof mpath, "%s/manifest.csv", test_tmpdir(t));
    if (manifest_write(mpath, &m, &err)) mpath[0] = 0;
    manifest_free(&m);
    return mpath;
}

/* The tone set (n clips per class and task per split), the tiny net and its
 * train split. Returns the manifest's path, or fails the test and returns NULL. */
static const char *tone_fixture(TestCtx *t, int n, Manifest *m, Network *net, TrainSet *ts) {
    const char *mp = tone_set(t, n);
    Error err = {{0}};
    if (!mp[0]) return test_fail(t, __FILE__, __LINE__, "tone set"), NULL;
    if (manifest_read(mp, m, &err) || tiny_net(net, 3, &err) ||
        train_set_load(ts, m, "train", net, NULL, NULL, &err))
        return test_fail(t, __FILE__, __LINE__, "%s", err.msg), NULL;
    return mp;
}

/* Channel c's value subtracted from c, at frame 0 (the shift of a ramp). */
static double c_minus(const float *x, int c, int frames) { return c - x[c * frames]; }

static void opts_for(TrainOptions *o, const char *out, int epochs) {
    train_options_default(o);
    o->epochs = epochs, o->batch = 8, o->lr = 1e-2, o->out = out, o->quiet = true;
    o->aug.fresh_fraction = 0.3, o->aug.max_shift_frames = 2;
    /* every augmentation on, so resume exactness covers their random draws */
    o->aug.freq_shift = 1.5, o->aug.time_masks = 1, o->aug.time_mask_frames = 3;
    o->aug.freq_masks = 1, o->aug.freq_mask_channels = 2;
}

static double mean_loss(const Network *net, const TrainSet *ts, int batch) {
    TrainStep *s = train_step_create(net, batch);
    BatchMaker *b = batch_maker_create(ts, net, batch, 0, NULL);
    size_t in = (size_t)architecture_stage_numel(&net->arch, -1);
    float *x = alloc_floats(in * batch);
    int32_t labels[2 * 64];
    Augment none = {0};
    Error err;
    double sum = 0;
    for (int k = 0; k < 4; k++) {
        batch_make(b, &none, 99, 0, k, x, labels, &err);
        sum += train_step_loss(net, s, x, labels, 1);
    }
    free(x);
    batch_maker_free(b);
    train_step_free(s);
    return sum / 4;
}

/* Trains the tiny net on the tone set with AdamW or SGD (the SGD run with
 * the reduced-envelope remix); the loss must fall by half and the file must
 * say how it was made. */
static void tones_loss_falls(TestCtx *t, bool sgd) {
    Error err;
    Manifest m;
    Network net;
    TrainSet ts;
    if (!tone_fixture(t, 12, &m, &net, &ts)) return;
    double before = mean_loss(&net, &ts, 8);
    TrainOptions o;
    char out[600];
    snprintf(out, sizeof out, "%s/m.safetensors", test_tmpdir(t));
    opts_for(&o, out, 8);
    if (sgd) o.sgd = true, o.lr = 0.05; /* SGD's rate is in gradient units, not Adam's */
    if (sgd) o.aug.remix_oversample = COCHLEAGRAM_REDUCED_OVERSAMPLE;
    REQUIRE(t, train_run(&net, &ts, &o, NULL, &err) == 0, "%s", err.msg);
    double after = mean_loss(&net, &ts, 8);
    CHECK(t, after < 0.5 * before, "%s: loss %g -> %g", sgd ? "sgd" : "adamw", before, after);
    Safetensors st;
    REQUIRE(t, safetensors_open(&st, out, &err) == 0, "%s", err.msg);
    const char *opt = safetensors_metadata(&st, "training.optimizer");
    CHECK(t, opt && !strcmp(opt, sgd ? "sgd momentum=0.9" : "adamw"), "provenance: optimizer '%s'", opt ? opt : "");
    const char *aug = safetensors_metadata(&st, "training.augment"), *ep = safetensors_metadata(&st, "training.epochs");
    const char *want = sgd ? "shift=2 fresh=0.3 snr=0:20 freq_shift=1.5 time_masks=1:3 freq_masks=1:2 remix_envelope_oversample=4"
                           : "shift=2 fresh=0.3 snr=0:20 freq_shift=1.5 time_masks=1:3 freq_masks=1:2";
    CHECK(t, aug && !strcmp(aug, want), "provenance: augment '%s'", aug ? aug : "");
    CHECK(t, ep && !strcmp(ep, "8"), "provenance: epochs '%s'", ep ? ep : "");
    safetensors_close(&st);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
}

TEST(train_tones_loss_falls) { tones_loss_falls(t, false); }
TEST(train_tones_loss_falls_sgd) { tones_loss_falls(t, true); }

/* Training's init: He-scaled weights, each unit's summing to zero (so no
 * relu unit after a relu starts below zero for every input), biases zero. */
TEST(train_init_units_sum_to_zero) {
    Network net;
    Error err;
    FrontEndConfig fe;
    REQUIRE(t, front_end_config_preset("default", &fe, &err) == 0, "%s", err.msg);
    REQUIRE(t, network_builtin_classes(&net, "default", &fe, 3, NULL, network_init_he, &err) == 0, "%s", err.msg);
    int checked = 0;
    for (int i = 0; i < net.arch.n_layers; i++) {
        const LayerParams *p = &net.params[i];
        int64_t units = net.arch.layers[i].out_features;
        if (net.arch.layers[i].op == OP_BATCHNORM || !p->n_weight || units <= 0) continue;
        int64_t fan_in = p->n_weight / units;
        double worst = 0, ss = 0;
        for (int64_t u = 0; u < units; u++) {
            double sum = 0;
            for (int64_t j = 0; j < fan_in; j++) sum += p->weight[u * fan_in + j], ss += (double)p->weight[u * fan_in + j] * p->weight[u * fan_in + j];
            if (fabs(sum) > worst) worst = fabs(sum);
        }
        double sd = sqrt(ss / (double)p->n_weight), he = sqrt(2.0 / (double)fan_in);
        CHECK(t, worst < 1e-4 * sd * sqrt((double)fan_in), "%s: a unit's weights sum to %g", net.arch.layers[i].name, worst);
        CHECK(t, fabs(sd / he - 1) < 0.05, "%s: weight sd %g, He %g", net.arch.layers[i].name, sd, he);
        for (int64_t j = 0; j < p->n_bias; j++) CHECK(t, p->bias[j] == 0, "%s: bias %g", net.arch.layers[i].name, p->bias[j]);
        checked++;
    }
    CHECK(t, checked == 11, "%d conv/linear layers checked, want 11 (trunk 3, branches 2 x 4)", checked);
    network_free(&net);
}

/* Trains a fresh tiny net with options o into the test dir's file `name`
 * (o->out is set here); returns the weights. */
static float *run_with(TestCtx *t, const char *mp, const char *name, TrainOptions *o) {
    Error err;
    Manifest m;
    Network net;
    TrainSet ts;
    Pool *pool = pool_create(2);
    if (manifest_read(mp, &m, &err) || tiny_net(&net, 5, &err) ||
        train_set_load(&ts, &m, "train", &net, NULL, pool, &err)) {
        CHECK(t, 0, "%s", err.msg);
        return NULL;
    }
    char out[600];
    snprintf(out, sizeof out, "%s/%s", test_tmpdir(t), name);
    o->out = out;
    CHECK(t, train_run(&net, &ts, o, pool, &err) == 0, "%s", err.msg);
    float *w = xmalloc(net.n_params * sizeof(float) + sizeof(size_t));
    memcpy(w, &net.n_params, sizeof(size_t));
    memcpy((char *)w + sizeof(size_t), net.param_block, net.n_params * sizeof(float));
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
    pool_free(pool);
    return w;
}

/* Epochs [0, stop) (stop 0: all) of a 4-epoch run with opts_for's options. */
static float *run(TestCtx *t, const char *mp, const char *name, int stop, bool resume) {
    TrainOptions o;
    opts_for(&o, NULL, 4);
    o.stop_after_epochs = stop, o.resume = resume;
    return run_with(t, mp, name, &o);
}

static bool same_weights(const float *a, const float *b) {
    size_t n;
    memcpy(&n, a, sizeof n);
    return memcmp(a, b, sizeof n + n * sizeof(float)) == 0;
}

/* --augment-from: the epochs before it train exactly as a run without the
 * fresh remix, frequency shift and masks; from it on, augmented (and a
 * resume across the switch is exact). */
TEST(train_augment_from_epoch) {
    const char *mp = tone_set(t, 6);
    TrainOptions never, plain, late;
    opts_for(&never, NULL, 4);
    never.augment_from_epoch = 4;
    opts_for(&plain, NULL, 4);
    plain.aug.fresh_fraction = 0, plain.aug.freq_shift = 0, plain.aug.time_masks = 0, plain.aug.freq_masks = 0;
    opts_for(&late, NULL, 4);
    late.augment_from_epoch = 2;
    float *w_never = run_with(t, mp, "never.safetensors", &never);
    float *w_plain = run_with(t, mp, "plain.safetensors", &plain);
    float *w_late = run_with(t, mp, "late.safetensors", &late);
    late.stop_after_epochs = 1;
    float *w_part = run_with(t, mp, "part.safetensors", &late);
    late.stop_after_epochs = 0, late.resume = true;
    float *w_resumed = run_with(t, mp, "part.safetensors", &late);
    REQUIRE(t, w_never && w_plain && w_late && w_part && w_resumed, "runs");
    CHECK(t, same_weights(w_never, w_plain), "unaugmented epochs differ from a run without augmentation");
    CHECK(t, !same_weights(w_late, w_plain), "augmentation from epoch 3 changed nothing");
    CHECK(t, same_weights(w_late, w_resumed), "resume across the switch differs");
    Error err;
    Safetensors st;
    char path[600];
    snprintf(path, sizeof path, "%s/late.safetensors", test_tmpdir(t));
    REQUIRE(t, safetensors_open(&st, path, &err) == 0, "%s", err.msg);
    const char *aug = safetensors_metadata(&st, "training.augment");
    CHECK(t, aug && strstr(aug, " from_epoch=3"), "provenance: augment '%s'", aug ? aug : "");
    safetensors_close(&st);
    free(w_never), free(w_plain), free(w_late), free(w_part), free(w_resumed);
}

TEST(train_resume_is_exact) {
    const char *mp = tone_set(t, 6);
    float *full = run(t, mp, "a.safetensors", 0, false);
    float *part = run(t, mp, "b.safetensors", 1, false);
    float *resumed = run(t, mp, "b.safetensors", 0, true);
    REQUIRE(t, full && part && resumed, "runs");
    size_t n;
    memcpy(&n, full, sizeof n);
    CHECK(t, memcmp(full, resumed, sizeof n + n * sizeof(float)) == 0, "resumed weights differ");
    CHECK(t, memcmp(full, part, sizeof n + n * sizeof(float)) != 0, "interrupted run not partial");
    /* the saved model reloads with the same weights */
    Network net;
    Error err;
    char path[600];
    snprintf(path, sizeof path, "%s/b.safetensors", test_tmpdir(t));
    REQUIRE(t, network_load(&net, path, &err) == 0, "%s", err.msg);
    CHECK(t, memcmp(net.param_block, (char *)full + sizeof n, n * sizeof(float)) == 0, "saved model");
    network_free(&net);
    free(full), free(part), free(resumed);
}

TEST(eval_writes_predictions) {
    Error err;
    Manifest m;
    Network net;
    TrainSet ts;
    const char *mp = tone_fixture(t, 12, &m, &net, &ts);
    if (!mp) return;
    char out[600], csv[600];
    snprintf(out, sizeof out, "%s/m.safetensors", test_tmpdir(t));
    snprintf(csv, sizeof csv, "%s/pred.csv", test_tmpdir(t));
    TrainOptions o;
    opts_for(&o, out, 10);
    REQUIRE(t, train_run(&net, &ts, &o, NULL, &err) == 0, "%s", err.msg);
    char *argv[] = {"eval", "--model", out, "--manifest", (char *)mp, "--out", csv, "--record", NULL};
    FILE *saved = stdout, *saved_err = stderr;
    stdout = fopen("/dev/null", "w");
    int rc = model_cmd_eval(8, argv);
    fclose(stdout);
    stdout = saved;
    REQUIRE(t, rc == 0, "eval failed");
    char *text;
    size_t size;
    REQUIRE(t, read_file(csv, &text, &size, &err) == 0, "%s", err.msg);
    CHECK(t, strncmp(text, "clip_id,task,label,top1,p_top1,correct\n", 39) == 0, "header");
    int rows = 0, correct = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        rows++;
        char *end = strchr(line + 1, '\n');
        correct += end && end[-1] == '1';
    }
    CHECK(t, rows == 48, "%d rows", rows);
    CHECK(t, correct >= 40, "%d / %d correct", correct, rows);
    Network back;
    REQUIRE(t, network_load(&back, out, &err) == 0, "%s", err.msg);
    bool found = false;
    for (int i = 0; i < back.n_meta; i++) found |= !strcmp(back.meta_keys[i], "eval.test.word.all");
    CHECK(t, found, "eval.test.word.all not recorded");
    network_free(&back);
    /* --by speaker: one line per talker and task whose clips add up to the
     * task's and whose hits add up to the predictions file's */
    char table[600];
    snprintf(table, sizeof table, "%s/by.txt", test_tmpdir(t));
    char *argv_by[] = {"eval", "--model", out, "--manifest", (char *)mp, "--by", "speaker", NULL};
    stdout = fopen(table, "w");
    rc = model_cmd_eval(7, argv_by);
    fclose(stdout);
    stdout = saved;
    REQUIRE(t, rc == 0, "eval --by failed");
    FILE *f = fopen(table, "r");
    REQUIRE(t, f != NULL, "%s", table);
    char line[256];
    int groups = 0, clips = 0;
    double hits = 0;
    bool after_blank = false;
    while (fgets(line, sizeof line, f)) {
        char task[16], who[48];
        int n;
        double pct;
        if (line[0] == '\n') after_blank = true;
        if (!after_blank || sscanf(line, "%15s %47s %d %lf%%", task, who, &n, &pct) != 4) continue;
        if (strcmp(task, "word")) continue;
        groups++, clips += n, hits += n * pct / 100;
        CHECK(t, who[0] == 'v', "group '%s'", who);
    }
    fclose(f);
    CHECK(t, groups == 3 && clips == 24, "%d groups, %d clips", groups, clips);
    int word_hits = 0;
    char *p = text;
    for (int row = 0; (p = strchr(p, '\n')) && p[1]; row++) {
        p++;
        if (!strncmp(strchr(p, ',') + 1, "word,", 5)) word_hits += strchr(p, '\n')[-1] == '1';
    }
    CHECK(t, fabs(hits - word_hits) < 0.1, "per-speaker hits %.2f, predictions %d", hits, word_hits);
    char *argv_bad[] = {"eval", "--model", out, "--manifest", (char *)mp, "--by", "colour", NULL};
    stderr = fopen("/dev/null", "w");
    rc = model_cmd_eval(7, argv_bad);
    fclose(stderr);
    stderr = saved_err;
    CHECK(t, rc == 2, "--by colour: rc %d", rc);
    free(text);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
}

/* d loss / d theta by central differences on the full training loss
 * (batchnorm with batch statistics, dropout with a fixed mask, both heads). */
TEST(train_gradient_matches_finite_differences) {
    Error err;
    Network net;
    REQUIRE(t, tiny_net(&net, 11, &err) == 0, "%s", err.msg);
    int B = 6;
    size_t in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = alloc_floats(in * B);
    Rng r;
    rng_seed(&r, 4);
    for (size_t i = 0; i < in * B; i++) x[i] = (float)rng_uniform(&r);
    int32_t labels[12] = {0, -1, 1, -1, 1, 0, -1, 1, -1, 0, -1, -1};
    /* non-trivial batchnorm affine parameters */
    for (int i = 0; i < net.arch.n_layers; i++)
        if (net.arch.layers[i].op == OP_BATCHNORM)
            for (int64_t c = 0; c < net.params[i].n_weight; c++)
                net.params[i].weight[c] = (float)(0.5 + rng_uniform(&r)),
                net.params[i].bias[c] = (float)(0.2 * rng_normal(&r));
    TrainStep *s = train_step_create(&net, B);
    train_step_run(&net, s, x, labels, 42, NULL);
    float *g = xmalloc(net.n_params * sizeof(float));
    memcpy(g, train_step_grad(s), net.n_params * sizeof(float));
    const char *layers[] = {"conv0", "bn0", "bn1", "word/conv1", "word/final", "genre/conv1", "genre/final"};
    int checked = 0, bad = 0;
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        int L = architecture_stage_index(&net.arch, layers[li]);
        REQUIRE(t, L >= 0, "%s", layers[li]);
        const LayerParams *p = &net.params[L];
        for (int k = 0; k < 3; k++) {
            size_t j = p->offset + (size_t)((k * 7919) % (p->n_weight + p->n_bias));
            /* ReLU and max-pool kinks bias large steps, float32 rounding small
             * ones: the best of three step sizes must agree. */
            float keep = net.param_block[j];
            double best_fd = 0, best_err = INFINITY;
            for (float h = 1e-4f; h < 2e-3f; h *= 3) {
                net.param_block[j] = keep + h;
                double lp = train_step_loss(&net, s, x, labels, 42);
                net.param_block[j] = keep - h;
                double lm = train_step_loss(&net, s, x, labels, 42);
                net.param_block[j] = keep;
                double fd = (lp - lm) / (2 * h), e = fabs(fd - g[j]);
                if (e < best_err) best_err = e, best_fd = fd;
            }
            checked++;
            if (best_err > 3e-2 * fabs(g[j]) + 1e-3) {
                bad++;
                CHECK(t, 0, "%s param %zu: fd %g analytic %g", layers[li], j - p->offset, best_fd, g[j]);
            }
        }
    }
    CHECK(t, checked == 21 && bad == 0, "%d of %d", bad, checked);
    free(g), free(x);
    train_step_free(s);
    network_free(&net);
}

/* Routing (each example through the trunk and its own task's branch only)
 * gives the gradient of running every example through every branch: on a
 * mixed batch with an unlabelled example, one with no genre example and one
 * whose example has both labels. The float sums run in another order, hence
 * the tolerance. */
TEST(train_routing_matches_every_branch) {
    Error err;
    Network net;
    REQUIRE(t, tiny_net(&net, 5, &err) == 0, "%s", err.msg);
    for (int i = 0; i < net.arch.n_layers; i++) /* masks depend on the row order */
        if (net.arch.layers[i].op == OP_DROPOUT) net.arch.layers[i].dropout_p = 0;
    enum { B = 7 };
    size_t in = (size_t)architecture_stage_numel(&net.arch, -1);
    float *x = alloc_floats(in * B), *g = xmalloc(net.n_params * sizeof(float));
    Rng r;
    rng_seed(&r, 9);
    for (size_t i = 0; i < in * B; i++) x[i] = (float)rng_uniform(&r);
    const int32_t batches[3][2 * B] = {
        {1, -1, 0, -1, -1, 1, 0, /* genre; example 4 has no label */ -1, 0, -1, 1, -1, -1, -1},
        {1, 0, 0, 1, 1, 0, 1, /* no genre example */ -1, -1, -1, -1, -1, -1, -1},
        {-1, 1, -1, 0, -1, 1, -1, /* example 3 has both */ 0, -1, 1, 1, 0, -1, 1},
    };
    TrainStep *s = train_step_create(&net, B);
    for (int k = 0; k < 3; k++) {
        StepStats every, routed;
        train_step_set_routing(s, false);
        train_step_run(&net, s, x, batches[k], 3, &every);
        memcpy(g, train_step_grad(s), net.n_params * sizeof(float));
        train_step_set_routing(s, true);
        train_step_run(&net, s, x, batches[k], 3, &routed);
        double e = rel_l2(train_step_grad(s), g, net.n_params);
        CHECK(t, e < 1e-5, "batch %d: gradient rel. L2 %g", k, e);
        for (int task = 0; task < 2; task++)
            CHECK(t, fabs(routed.loss[task] - every.loss[task]) < 1e-5 &&
                         routed.correct[task] == every.correct[task] &&
                         routed.count[task] == every.count[task],
                  "batch %d task %d: loss %g vs %g, %d/%d vs %d/%d", k, task, routed.loss[task],
                  every.loss[task], routed.correct[task], routed.count[task], every.correct[task],
                  every.count[task]);
    }
    free(g), free(x);
    train_step_free(s);
    network_free(&net);
}

/* The default network on the `tiny` stimulus recipe (built here, ~10 s). */
TEST(train_default_on_tiny_recipe) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tiny", test_tmpdir(t));
    char *bargv[] = {"build", "--recipe", "tiny", "--out", dir, NULL};
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = stimuli_cmd_build(5, bargv);
    fclose(stdout);
    stdout = saved;
    REQUIRE(t, rc == 0, "stimuli build --recipe tiny failed");
    char mp[700], out[700];
    snprintf(mp, sizeof mp, "%s/manifest.csv", dir);
    snprintf(out, sizeof out, "%s/default.safetensors", test_tmpdir(t));
    Error err;
    Manifest m;
    Network net;
    TrainSet ts;
    FrontEndConfig fe;
    int n_classes[2] = {stimuli_vocabulary_size(), stimuli_genre_count()};
    REQUIRE(t, manifest_read(mp, &m, &err) == 0, "%s", err.msg);
    REQUIRE(t, front_end_config_preset("default", &fe, &err) == 0, "%s", err.msg);
    /* He init: where `metamers train` starts */
    REQUIRE(t, network_builtin_classes(&net, "default", &fe, 1, n_classes, network_init_he, &err) == 0,
            "%s", err.msg);
    REQUIRE(t, train_set_default_classes(&net, &err) == 0, "%s", err.msg);
    REQUIRE(t, train_set_load(&ts, &m, "train", &net, NULL, NULL, &err) == 0, "%s", err.msg);
    double before = mean_loss(&net, &ts, 8);
    TrainOptions o;
    opts_for(&o, out, 10);
    o.lr = 2e-3;
    REQUIRE(t, train_run(&net, &ts, &o, NULL, &err) == 0, "%s", err.msg);
    double after = mean_loss(&net, &ts, 8);
    CHECK(t, after < 0.7 * before, "loss %g -> %g", before, after);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
}

/* Frequency shift: on a ramp x[c][t] = c, linear interpolation gives
 * c - s exactly away from the edges, so every interior channel moves by the
 * same s, |s| <= freq_shift, and different draws give different s. Masks:
 * on all-ones input, the zeros are whole frames (time) or whole channels
 * (frequency) in one contiguous run of at most the given width. With
 * everything off the input is untouched and nothing is drawn. */
TEST(train_augment_spectral_shift_and_masks) {
    enum { C = 21, T = 20 };
    float x[C * T], tmp[C * T];
    Rng r, r0;
    rng_seed(&r, 7);
    double first = 0;
    int distinct = 0;
    for (int draw = 0; draw < 8; draw++) {
        for (int c = 0; c < C; c++)
            for (int k = 0; k < T; k++) x[c * T + k] = (float)c;
        Augment a = {.freq_shift = 2};
        train_augment_spectral(x, C, T, &a, &r, tmp);
        double s = c_minus(x, 3, T);
        CHECK(t, fabs(s) <= 2 + 1e-6, "shift %g beyond 2 channels", s);
        for (int c = 3; c < C - 3; c++)
            for (int k = 0; k < T; k++)
                CHECK(t, fabs(c - x[c * T + k] - s) < 1e-5, "channel %d frame %d moved by %g, not %g", c, k,
                      c - x[c * T + k], s);
        if (draw == 0) first = s;
        else distinct += fabs(s - first) > 1e-3;
    }
    CHECK(t, distinct > 0, "every draw shifted by the same amount");
    for (int along_time = 0; along_time < 2; along_time++)
        for (int draw = 0; draw < 20; draw++) {
            for (int i = 0; i < C * T; i++) x[i] = 1;
            Augment a = {0};
            if (along_time) a.time_masks = 1, a.time_mask_frames = 5;
            else a.freq_masks = 1, a.freq_mask_channels = 4;
            train_augment_spectral(x, C, T, &a, &r, tmp);
            int len = along_time ? T : C, other = along_time ? C : T, first_zero = -1, zeros = 0;
            for (int i = 0; i < len; i++) {
                int nz = 0;
                for (int j = 0; j < other; j++) nz += (along_time ? x[j * T + i] : x[i * T + j]) == 0;
                CHECK(t, nz == 0 || nz == other, "mask covers %d of %d cells of a row", nz, other);
                if (nz == other) {
                    if (first_zero < 0) first_zero = i;
                    CHECK(t, i == first_zero + zeros, "mask not contiguous at %d", i);
                    zeros++;
                }
            }
            CHECK(t, zeros <= (along_time ? 5 : 4), "mask of %d rows", zeros);
        }
    for (int i = 0; i < C * T; i++) x[i] = (float)i;
    r0 = r;
    Augment off = {0};
    train_augment_spectral(x, C, T, &off, &r, tmp);
    for (int i = 0; i < C * T; i++) CHECK(t, x[i] == (float)i, "element %d changed with augmentation off", i);
    CHECK(t, rng_next(&r) == rng_next(&r0), "augmentation off drew random numbers");
}

/* --remix-envelope reduced: the fresh remixes go through the reduced-rate
 * envelope, close to the exact front end but not it; clips taken from the
 * cache are untouched. Same seed, epoch and step, so the same mixtures. */
TEST(train_remix_envelope_reduced) {
    Error err;
    Manifest m;
    Network net;
    TrainSet ts;
    if (!tone_fixture(t, 4, &m, &net, &ts)) return;
    enum { batch = 8 };
    size_t numel = (size_t)architecture_stage_numel(&net.arch, -1) * batch;
    float *x[2] = {alloc_floats(numel), alloc_floats(numel)};
    int32_t labels[2 * batch];
    for (int fresh = 0; fresh <= 1; fresh++) {
        Augment a = {.fresh_fraction = fresh, .snr_lo = 0, .snr_hi = 20};
        for (int k = 0; k < 2; k++) {
            BatchMaker *b = batch_maker_create(&ts, &net, batch, k ? COCHLEAGRAM_REDUCED_OVERSAMPLE : 0, NULL);
            CHECK(t, batch_make(b, &a, 5, 0, 0, x[k], labels, &err) == (fresh ? batch : 0), "%s", err.msg);
            batch_maker_free(b);
        }
        double rel = rel_l2(x[1], x[0], numel);
        if (fresh) /* tolerance: synth/README.md measures the surrogate's error at this rate */
            CHECK(t, rel > 0 && rel < 1e-3, "fresh remixes: reduced vs exact rel L2 %g", rel);
        else
            CHECK(t, rel == 0, "cached clips changed by the remix front end: rel L2 %g", rel);
    }
    free(x[0]), free(x[1]);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
}
