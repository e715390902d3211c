/* `metamers stages` and `metamers classify`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "model.h"

static const char stages_usage[] =
    "usage: metamers stages --model M\n"
    "\n"
    "Lists the model's stages (names for --stages) with their op and shape.\n"
    "  --model M   model file (safetensors) or builtin:NAME[:SEED]\n";

static const char classify_usage[] =
    "usage: metamers classify --model M [--top K] [--tsv] IN.wav...\n"
    "\n"
    "Prints the top K (default 5) labels with probabilities for each task of the model,\n"
    "for each input file. --tsv prints `file task rank label probability` rows.\n";

/* Parses --model, --top, --tsv, --help; returns 1 for help, 2 for misuse. */
static int parse_model_args(int argc, char **argv, const char *usage, const char **model,
                            int *top, int *tsv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"top", required_argument, 0, 'k'},
                                         {"tsv", no_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'm') *model = optarg;
        else if (c == 'k' && top && atoi(optarg) > 0) *top = atoi(optarg);
        else if (c == 't' && tsv) *tsv = 1;
        else if (c == 'h') return fputs(usage, stdout), 1;
        else return fprintf(stderr, "%s", usage), 2;
    }
    if (!*model) return fprintf(stderr, "metamers %s: --model is required\n%s", argv[0], usage), 2;
    return 0;
}

int model_cmd_stages(int argc, char **argv) {
    const char *model = NULL;
    int rc = parse_model_args(argc, argv, stages_usage, &model, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (optind != argc) return fprintf(stderr, "%s", stages_usage), 2;
    Network net;
    Error err = {{0}};
    if (network_open(&net, model, &err) != 0) {
        fprintf(stderr, "metamers stages: %s\n", err.msg);
        return 1;
    }
    const int *in = net.arch.input_shape;
    printf("%-24s %-10s %-16s %s\n", "stage", "op", "shape", "values");
    char shape[64];
    snprintf(shape, sizeof shape, "[%d, %d]", in[1], in[2]);
    printf("%-24s %-10s %-16s %lld\n", "cochleagram", "frontend", shape,
           (long long)architecture_stage_numel(&net.arch, -1));
    for (int i = 0; i < net.arch.n_layers; i++) {
        const LayerSpec *l = &net.arch.layers[i];
        snprintf(shape, sizeof shape, "[%d, %d, %d]", l->out_shape[0], l->out_shape[1],
                 l->out_shape[2]);
        printf("%-24s %-10s %-16s %lld\n", l->name, layer_op_name(l->op), shape,
               (long long)architecture_stage_numel(&net.arch, i));
    }
    network_free(&net);
    return 0;
}

static void print_top(const Network *net, int task, const float *logits, const char *file,
                      int top, int tsv) {
    int n = net->n_classes[task];
    double *p = xmalloc((size_t)n * sizeof *p);
    int *order = xmalloc((size_t)n * sizeof *order);
    model_softmax(logits, n, p);
    for (int c = 0; c < n; c++) order[c] = c;
    for (int r = 0; r < top && r < n; r++) { /* partial selection sort: K is small */
        int best = r;
        for (int c = r + 1; c < n; c++)
            if (p[order[c]] > p[order[best]]) best = c;
        int tmp = order[r];
        order[r] = order[best], order[best] = tmp;
        const char *label = net->classes[task][order[r]];
        if (tsv)
            printf("%s\t%s\t%d\t%s\t%.6f\n", file, net->task_names[task], r + 1, label, p[order[r]]);
        else
            printf("%s%s %s (%.3f)", r ? "," : "", r ? "" : "", label, p[order[r]]);
    }
    if (!tsv) putchar('\n');
    free(p);
    free(order);
}

static int classify_file(const Network *net, ModelRun *m, const char *path, int top, int tsv,
                         Error *err) {
    Audio audio = {0};
    if (audio_read(path, net->front_end.sr, net->front_end.signal_size, &audio, err) != 0) return -1;
    model_forward(m, audio.samples, net->task_layers, net->n_tasks);
    if (!tsv) printf("%s\n", path);
    for (int k = 0; k < net->n_tasks; k++) {
        if (!tsv) printf("  %-8s", net->task_names[k]);
        print_top(net, k, model_stage_output(m, net->task_layers[k]), path, top, tsv);
    }
    audio_free(&audio);
    return 0;
}

int model_cmd_classify(int argc, char **argv) {
    const char *model = NULL;
    int top = 5, tsv = 0;
    int rc = parse_model_args(argc, argv, classify_usage, &model, &top, &tsv);
    if (rc) return rc == 1 ? 0 : rc;
    if (optind >= argc) return fprintf(stderr, "%s", classify_usage), 2;
    Network net;
    Error err = {{0}};
    if (network_open(&net, model, &err) != 0) {
        fprintf(stderr, "metamers classify: %s\n", err.msg);
        return 1;
    }
    if (net.n_tasks == 0) {
        fprintf(stderr, "metamers classify: %s has no output layers\n", model);
        network_free(&net);
        return 1;
    }
    Pool *pool = pool_create(default_thread_count());
    ModelRun m;
    int failures = 0;
    if (model_run_init(&m, &net, pool, &err) != 0) {
        fprintf(stderr, "metamers classify: %s\n", err.msg);
        failures = 1;
    } else {
        /* A bad file is reported and skipped: the others are still classified. */
        for (int i = optind; i < argc; i++)
            if (classify_file(&net, &m, argv[i], top, tsv, &err) != 0) {
                fprintf(stderr, "metamers classify: %s\n", err.msg);
                failures++;
            }
        model_run_free(&m);
    }
    pool_free(pool);
    network_free(&net);
    return failures ? 1 : 0;
}
