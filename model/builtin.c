/* Built-in architectures, random initialization, and saving a network.
 *
 * `cochcnn9` is Feather et al. 2023's word network (DESIGN.md): the golden
 * small net has the same stage layout with narrower layers. One generator
 * serves both, and the branched word/genre default model. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Widths of the CochCNN9 stage layout. A branched net shares conv0..conv2
 * (the trunk) and gives each task its own conv3, conv4, pool and fc layers,
 * as in Kell et al. 2018. */
typedef struct {
    int conv[5];
    int fc;
    int n_tasks;
    const char *task_names[4];
    int n_classes[4];
    bool dropout[4]; /* dropout 0.5 before the task's final layer */
    /* conv0's stride along frequency: 3 in cochcnn9 (211 channels); with the
     * default front end's 42 channels, 3 leaves relu2 2 frequency rows, 2
     * leaves 3, 1 leaves 6. */
    int conv0_freq_stride;
    /* batchnorm before the task's conv3, conv4 and fc, as in the trunk
     * (with routing its statistics come from that task's examples only) */
    bool branch_bn[4];
    /* conv0's stride along time: 3 in cochcnn9 (a 200 Hz envelope); at the
     * default front end's 100 Hz, 3 leaves relu2 9 time bins of ~220 ms,
     * 2 leaves 13 of ~150 ms. */
    int conv0_time_stride;
} CochCNN9Widths;

static json_t *layer(const char *name, const char *op) {
    return json_pack("{s:s, s:s}", "name", name, "op", op);
}

static json_t *window_layer(const char *name, const char *op, int kh, int kw, int sh, int sw) {
    json_t *l = layer(name, op);
    json_object_set_new(l, "kernel", json_pack("[i,i]", kh, kw));
    json_object_set_new(l, "stride", json_pack("[i,i]", sh, sw));
    json_object_set_new(l, "padding", json_string("same"));
    return l;
}

static json_t *conv(const char *name, int out, int kh, int kw, int sh, int sw) {
    json_t *l = window_layer(name, "conv2d", kh, kw, sh, sw);
    json_object_set_new(l, "out", json_integer(out));
    return l;
}

static json_t *batchnorm(const char *name) {
    json_t *l = layer(name, "batchnorm");
    json_object_set_new(l, "eps", json_real(1e-5));
    return l;
}

/* Appends layer `name` under the branch prefix ("" for the trunk). */
static void add(json_t *layers, json_t *l, const char *prefix) {
    if (*prefix) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s/%s", prefix, json_string_value(json_object_get(l, "name")));
        json_object_set_new(l, "name", json_string(buf));
    }
    json_array_append_new(layers, l);
}

static void add_head(json_t *layers, const CochCNN9Widths *w, int task, const char *prefix) {
    bool bn = w->branch_bn[task];
    if (bn) add(layers, batchnorm("bn3"), prefix);
    add(layers, conv("conv3", w->conv[3], 2, 5, 1, 1), prefix);
    add(layers, layer("relu3", "relu"), prefix);
    if (bn) add(layers, batchnorm("bn4"), prefix);
    add(layers, conv("conv4", w->conv[4], 2, 5, 1, 1), prefix);
    add(layers, layer("relu4", "relu"), prefix);
    json_t *pool = window_layer("avgpool", "avgpool", 2, 5, 2, 2);
    json_object_set_new(pool, "count_include_pad", json_true());
    add(layers, pool, prefix);
    if (bn) add(layers, batchnorm("bnfc"), prefix);
    add(layers, layer("flatten", "flatten"), prefix);
    json_t *fc = layer("fullyconnected", "linear");
    json_object_set_new(fc, "out", json_integer(w->fc));
    add(layers, fc, prefix);
    add(layers, layer("relufc", "relu"), prefix);
    if (w->dropout[task]) {
        json_t *d = layer("dropout", "dropout");
        json_object_set_new(d, "p", json_real(0.5));
        add(layers, d, prefix);
    }
    json_t *final = layer("final", "linear");
    json_object_set_new(final, "out", json_integer(w->n_classes[task]));
    add(layers, final, prefix);
}

static char *cochcnn9_json(const char *name, const CochCNN9Widths *w, int channels, int frames) {
    json_t *layers = json_array();
    add(layers, batchnorm("bn0"), "");
    add(layers, conv("conv0", w->conv[0], 7, 14, w->conv0_freq_stride, w->conv0_time_stride), "");
    add(layers, layer("relu0", "relu"), "");
    add(layers, window_layer("maxpool0", "maxpool", 2, 5, 2, 2), "");
    add(layers, batchnorm("bn1"), "");
    add(layers, conv("conv1", w->conv[1], 4, 8, 2, 2), "");
    add(layers, layer("relu1", "relu"), "");
    add(layers, window_layer("maxpool1", "maxpool", 2, 5, 2, 2), "");
    add(layers, batchnorm("bn2"), "");
    add(layers, conv("conv2", w->conv[2], 2, 5, 1, 1), "");
    add(layers, layer("relu2", "relu"), "");
    json_t *outputs = json_object();
    for (int k = 0; k < w->n_tasks; k++) {
        const char *prefix = w->n_tasks > 1 ? w->task_names[k] : "";
        size_t first = json_array_size(layers);
        add_head(layers, w, k, prefix);
        /* Each branch starts from the trunk's last layer. */
        json_object_set_new(json_array_get(layers, first), "input", json_string("relu2"));
        char out[200];
        snprintf(out, sizeof out, "%s%sfinal", prefix, *prefix ? "/" : "");
        json_object_set_new(outputs, w->task_names[k], json_string(out));
    }
    json_t *root = json_pack("{s:s, s:[i,i,i], s:o, s:o}", "name", name, "input", 1, channels,
                             frames, "layers", layers, "outputs", outputs);
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

/* Uniform weights U(-w, w) with w = weight_gain / sqrt(fan_in), biases
 * U(-b, b) with b = bias_gain / sqrt(fan_in); batchnorm gamma 1, beta 0,
 * mean 0, var 1. */
static void init_uniform(Network *net, uint64_t seed, double weight_gain, double bias_gain) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < net->arch.n_layers; i++) {
        const LayerParams *p = &net->params[i];
        if (net->arch.layers[i].op == OP_BATCHNORM) {
            for (int64_t c = 0; c < p->n_stat; c++) p->weight[c] = 1, p->bias[c] = 0, p->mean[c] = 0, p->var[c] = 1;
            continue;
        }
        if (!p->n_weight) continue;
        double scale = 1.0 / sqrt((double)p->n_weight / net->arch.layers[i].out_features);
        for (int64_t j = 0; j < p->n_weight; j++)
            p->weight[j] = (float)((2 * rng_uniform(&rng) - 1) * weight_gain * scale);
        for (int64_t j = 0; j < p->n_bias; j++)
            p->bias[j] = (float)((2 * rng_uniform(&rng) - 1) * bias_gain * scale);
    }
}

/* PyTorch's default init (kaiming_uniform with a = sqrt(5)): weights and
 * biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Random-weight networks
 * (builtin:NAME) use it so they behave like an untrained PyTorch model. */
void network_init_random(Network *net, uint64_t seed) { init_uniform(net, seed, 1, 1); }

/* He et al. 2015 for ReLU layers: weights U(-sqrt(6/fan_in), sqrt(6/fan_in))
 * (variance 2/fan_in, so activations keep their scale through the layers
 * after the last batchnorm), biases zero. Training starts here: with
 * PyTorch's default the five unnormalized layers of each branch shrink the
 * signal ~6x in variance per layer and the word head sat at the class prior
 * twice as long (model/README.md). */
void network_init_he(Network *net, uint64_t seed) {
    init_uniform(net, seed, sqrt(6.0), 0);
    /* Each unit's weights are then shifted to sum to zero. Layers after a
     * relu see inputs that are all positive and alike, so a unit whose
     * weights happen to sum negative is below zero for every input: a
     * third of the fc units were dead before the first step, and a dead
     * relu gets no gradient to come back (model/README.md). */
    for (int i = 0; i < net->arch.n_layers; i++) {
        const LayerParams *p = &net->params[i];
        int64_t units = net->arch.layers[i].out_features;
        if (net->arch.layers[i].op == OP_BATCHNORM || !p->n_weight || units <= 0) continue;
        int64_t fan_in = p->n_weight / units;
        for (int64_t u = 0; u < units; u++) {
            float *w = p->weight + u * fan_in;
            double sum = 0;
            for (int64_t j = 0; j < fan_in; j++) sum += w[j];
            for (int64_t j = 0; j < fan_in; j++) w[j] -= (float)(sum / (double)fan_in);
        }
    }
}

/* The built-in architectures by name; lookups and the error message both
 * read this one table. */
static const struct {
    const char *name;
    CochCNN9Widths widths;
} builtins[] = {
    {"cochcnn9", {{96, 256, 512, 1024, 512}, 4096, 1, {"word"}, {794}, {true}, 3, {false}, 3}},
    {"cochcnn9-small", {{8, 16, 24, 32, 16}, 64, 1, {"output"}, {10}, {false}, 3, {false}, 3}},
    /* The bundled default (model/README.md): narrow enough to train
     * in minutes on 2 cores; word = the stimulus vocabulary (254 words, a
     * recipe uses a subset), genre = 9 genres; `metamers train` sets the
     * counts from the stimulus module. Dropout only in the genre branch:
     * the word branch has 15x more training clips, and dropout there made
     * the word head learn ~3x more slowly (model/README.md). */
    {"default", {{48, 96, 192, 192, 192}, 384, 2, {"word", "genre"}, {254, 9}, {false, true}, 2, {false}, 3}},
    /* Probe: batchnorm in the word branch only (a batch holds ~2 genre
     * clips, too few for batch statistics). */
    {"default-bn", {{48, 96, 192, 192, 192}, 384, 2, {"word", "genre"}, {254, 9}, {false, true}, 2, {true, false}, 3}},
    /* Candidate default keeping 6 frequency rows at relu2 (model/README.md). */
    {"default-f1", {{48, 96, 192, 128, 128}, 384, 2, {"word", "genre"}, {254, 9}, {true, true}, 1, {false}, 3}},
    /* Probe: the default with conv0 striding 2 along time (model/README.md). */
    {"default-t2", {{48, 96, 192, 192, 192}, 384, 2, {"word", "genre"}, {254, 9}, {false, true}, 2, {false}, 2}},
};
#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

/* The widths of built-in `name`, or NULL with err set. */
static const CochCNN9Widths *builtin_widths(const char *name, Error *err) {
    for (int i = 0; i < N_BUILTINS; i++)
        if (strcmp(name, builtins[i].name) == 0) return &builtins[i].widths;
    char names[256] = "";
    for (int i = 0; i < N_BUILTINS; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", builtins[i].name);
    error_set(err, "unknown built-in architecture '%s' (%s)", name, names);
    return NULL;
}

int network_builtin(Network *net, const char *name, const FrontEndConfig *fe, uint64_t seed,
                    Error *err) {
    return network_builtin_classes(net, name, fe, seed, NULL, network_init_random, err);
}

int network_builtin_classes(Network *net, const char *name, const FrontEndConfig *fe,
                            uint64_t seed, const int *n_classes,
                            void (*init)(Network *, uint64_t), Error *err) {
    memset(net, 0, sizeof *net);
    const CochCNN9Widths *found = builtin_widths(name, err);
    if (!found) return -1;
    CochCNN9Widths w = *found;
    for (int k = 0; n_classes && k < w.n_tasks; k++)
        if (n_classes[k] > 0) w.n_classes[k] = n_classes[k];
    Cochleagram *c = cochleagram_create(fe, err);
    if (!c) return -1;
    char *json = cochcnn9_json(name, &w, cochleagram_channels(c), cochleagram_frames(c));
    cochleagram_free(c);
    int rc = network_from_architecture(net, json, fe, err);
    free(json);
    if (rc == 0) init(net, seed);
    return rc;
}
