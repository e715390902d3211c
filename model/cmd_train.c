/* `metamers train`: trains the branched word/genre network on a stimulus set. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

static const char train_usage[] =
    "usage: metamers train --manifest M --out model.safetensors [options]\n"
    "Trains a network on the manifest's train split: AdamW with warmup and cosine\n"
    "decay, batchnorm batch statistics, dropout, random time shifts and fresh\n"
    "pink/white noise at random SNR; both tasks (word, genre) in one network, each\n"
    "example's loss on its own task's head. Writes the model and <out>.ckpt after\n"
    "every epoch; --resume continues from the checkpoint exactly.\n"
    "\n"
    "  --manifest M        stimulus set manifest.csv (`metamers stimuli build`)\n"
    "  --out FILE          model file (safetensors)\n"
    "  --arch NAME         built-in architecture (default: default)\n"
    "  --front-end NAME    front end preset (default: default)\n"
    "  --epochs N          (default 10)       --batch N    (default 32)\n"
    "  --optimizer NAME    adamw (default) or sgd (momentum 0.9, L2 weight decay)\n"
    "  --lr X              peak learning rate (default 1e-3)\n"
    "  --weight-decay X    decoupled, conv/linear weights only (default 1e-4)\n"
    "  --fresh X           fraction of examples remixed with fresh noise (default 0.25)\n"
    "  --snr LO:HI         SNR range of fresh noise, dB (default 0:20)\n"
    "  --shift N           max random time shift, frames (default 20)\n"
    "  --freq-shift X      max random shift along frequency, channels (default 0)\n"
    "  --time-masks N:W    N gaps of up to W frames set to silence (default 0:0)\n"
    "  --freq-masks N:W    N bands of up to W channels set to silence (default 0:0)\n"
    "  --remix-envelope E  front end of the fresh remixes: exact (default) or reduced\n"
    "                      (synth's reduced-rate envelope, ~6x cheaper per clip)\n"
    "  --augment-from N    epochs before epoch N (1-based) train without the fresh\n"
    "                      remix, frequency shift and masks (default 1: all epochs)\n"
    "  --seed N            (default 1)\n"
    "  --resume            continue from <out>.ckpt\n"
    "  --cache DIR         keep the clips' cochleagrams there (half precision)\n"
    "  --log FILE          training log CSV, one row per epoch\n"
    "  --recipe NAME       recorded in the model's provenance metadata\n"
    "  --stop-after N      stop after N epochs of this run (to test --resume)\n";

typedef struct {
    const char *manifest, *out, *arch, *front_end, *cache;
    TrainOptions o;
} TrainArgs;

static int bad(const char *what, const char *val) {
    fprintf(stderr, "metamers train: bad %s '%s'\n", what, val);
    return 2;
}

/* "N:W": N masks of up to W rows, both small non-negative integers. */
static int parse_masks(const char *s, int *n, int *w) {
    char tail;
    if (sscanf(s, "%d:%d%c", n, w, &tail) != 2 || *n < 0 || *w < 0 || *n > 100 || *w > 10000) return -1;
    return 0;
}

static int parse_args(int argc, char **argv, TrainArgs *a) {
    static const struct option opts[] = {
        {"manifest", 1, 0, 'm'}, {"out", 1, 0, 'o'},   {"arch", 1, 0, 'a'},
        {"front-end", 1, 0, 'F'}, {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'},
        {"lr", 1, 0, 'l'},       {"weight-decay", 1, 0, 'w'}, {"fresh", 1, 0, 'f'},
        {"snr", 1, 0, 'S'},      {"shift", 1, 0, 's'}, {"seed", 1, 0, 'r'},
        {"freq-shift", 1, 0, 'q'}, {"time-masks", 1, 0, 'T'}, {"freq-masks", 1, 0, 'Q'},
        {"resume", 0, 0, 'R'},   {"cache", 1, 0, 'c'}, {"log", 1, 0, 'L'},
        {"recipe", 1, 0, 'n'},   {"stop-after", 1, 0, 'x'}, {"optimizer", 1, 0, 'O'},
        {"remix-envelope", 1, 0, 'E'}, {"augment-from", 1, 0, 'A'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    *a = (TrainArgs){.arch = "default", .front_end = "default"};
    train_options_default(&a->o);
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->manifest = optarg; break;
        case 'o': a->out = optarg; break;
        case 'a': a->arch = optarg; break;
        case 'F': a->front_end = optarg; break;
        case 'e': if ((a->o.epochs = atoi(optarg)) < 1) return bad("--epochs", optarg); break;
        case 'b': if ((a->o.batch = atoi(optarg)) < 2) return bad("--batch", optarg); break;
        case 'l': if ((a->o.lr = strtod(optarg, &end)) <= 0 || *end) return bad("--lr", optarg); break;
        case 'w': if ((a->o.weight_decay = strtod(optarg, &end)) < 0 || *end) return bad("--weight-decay", optarg); break;
        case 'f':
            a->o.aug.fresh_fraction = strtod(optarg, &end);
            if (*end || a->o.aug.fresh_fraction < 0 || a->o.aug.fresh_fraction > 1) return bad("--fresh", optarg);
            break;
        case 'S':
            if (sscanf(optarg, "%lf:%lf", &a->o.aug.snr_lo, &a->o.aug.snr_hi) != 2 ||
                a->o.aug.snr_lo > a->o.aug.snr_hi)
                return bad("--snr", optarg);
            break;
        case 's': if ((a->o.aug.max_shift_frames = atoi(optarg)) < 0) return bad("--shift", optarg); break;
        case 'q':
            if ((a->o.aug.freq_shift = strtod(optarg, &end)) < 0 || *end) return bad("--freq-shift", optarg);
            break;
        case 'T':
            if (parse_masks(optarg, &a->o.aug.time_masks, &a->o.aug.time_mask_frames)) return bad("--time-masks", optarg);
            break;
        case 'Q':
            if (parse_masks(optarg, &a->o.aug.freq_masks, &a->o.aug.freq_mask_channels)) return bad("--freq-masks", optarg);
            break;
        case 'r': a->o.seed = strtoull(optarg, &end, 10); if (*end) return bad("--seed", optarg); break;
        case 'R': a->o.resume = true; break;
        case 'c': a->cache = optarg; break;
        case 'L': a->o.log_csv = optarg; break;
        case 'n': a->o.recipe = optarg; break;
        case 'x': a->o.stop_after_epochs = atoi(optarg); break;
        case 'O':
            if (strcmp(optarg, "adamw") && strcmp(optarg, "sgd")) return bad("--optimizer", optarg);
            a->o.sgd = strcmp(optarg, "sgd") == 0;
            break;
        case 'E':
            if (strcmp(optarg, "exact") && strcmp(optarg, "reduced")) return bad("--remix-envelope", optarg);
            a->o.aug.remix_oversample = strcmp(optarg, "reduced") == 0 ? COCHLEAGRAM_REDUCED_OVERSAMPLE : 0;
            break;
        case 'A': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 100000) return bad("--augment-from", optarg);
            a->o.augment_from_epoch = (int)v - 1;
            break;
        }
        case 'h': fputs(train_usage, stdout); return 1;
        default: fputs(train_usage, stderr); return 2;
        }
    }
    if (optind != argc || !a->manifest || !a->out) {
        fprintf(stderr, "metamers train: need --manifest and --out\n");
        return 2;
    }
    a->o.out = a->out;
    return 0;
}

/* The word and genre tasks' classes are the stimulus module's fixed lists,
 * so every recipe (tiny, demo, train) trains the same label space. */
int train_set_default_classes(Network *net, Error *err) {
    for (int t = 0; t < net->n_tasks; t++) {
        bool word = strcmp(net->task_names[t], "word") == 0;
        bool genre = strcmp(net->task_names[t], "genre") == 0;
        if (!word && !genre) return error_set(err, "task '%s' has no built-in class list", net->task_names[t]);
        int n = word ? stimuli_vocabulary_size() : stimuli_genre_count();
        char **labels = xmalloc(sizeof(char *) * (size_t)n);
        for (int c = 0; c < n; c++)
            labels[c] = (char *)(word ? stimuli_vocabulary_word(c) : stimuli_genre_name(c));
        int rc = network_set_classes(net, t, labels, n, err);
        free(labels);
        if (rc) return -1;
    }
    return 0;
}

int model_cmd_train(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    FrontEndConfig fe;
    Manifest m;
    manifest_init(&m);
    Network net = {0};
    TrainSet ts = {0};
    Pool *pool = pool_create(default_thread_count());
    rc = front_end_config_preset(a.front_end, &fe, &err);
    int n_classes[2] = {stimuli_vocabulary_size(), stimuli_genre_count()};
    if (!rc) rc = network_builtin_classes(&net, a.arch, &fe, a.o.seed,
                                          strcmp(a.arch, "default") ? NULL : n_classes,
                                          network_init_he, &err);
    if (!rc) rc = train_set_default_classes(&net, &err);
    if (!rc) rc = manifest_read(a.manifest, &m, &err);
    double t0 = now_seconds();
    if (!rc)
        fprintf(stderr, "train: cochleagrams of the train clips (%s)...\n",
                a.cache ? "cached on disk" : "no --cache: computed every run");
    if (!rc) rc = train_set_load(&ts, &m, "train", &net, a.cache, pool, &err);
    if (!rc)
        fprintf(stderr, "train: %d clips, cochleagrams %d x %d ready in %.1f s, %zu parameters\n",
                ts.n, ts.channels, ts.frames, now_seconds() - t0, net.n_params);
    if (!rc) rc = train_run(&net, &ts, &a.o, pool, &err);
    if (rc) fprintf(stderr, "metamers train: %s\n", err.msg);
    train_set_free(&ts);
    network_free(&net);
    manifest_free(&m);
    pool_free(pool);
    return rc ? 1 : 0;
}
