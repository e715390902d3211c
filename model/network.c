/* A network: architecture + parameters + class labels + front end, loaded
 * from (and saved to) safetensors with PyTorch state_dict names. All
 * parameters live in one block (llm.c style), so optimizers and checkpoints
 * treat them as one vector. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Sizes of a layer's parameter tensors; in_shape is its input's [C,H,W]. */
static void param_sizes(const LayerSpec *l, const int *in_shape, int64_t *n_weight,
                        int64_t *n_bias, int64_t *n_stat) {
    *n_weight = *n_bias = *n_stat = 0;
    int64_t in_numel = (int64_t)in_shape[0] * in_shape[1] * in_shape[2];
    switch (l->op) {
    case OP_CONV2D:
        *n_weight = (int64_t)l->out_features * in_shape[0] * l->kernel[0] * l->kernel[1];
        *n_bias = l->has_bias ? l->out_features : 0;
        break;
    case OP_LINEAR:
        *n_weight = (int64_t)l->out_features * in_numel;
        *n_bias = l->has_bias ? l->out_features : 0;
        break;
    case OP_BATCHNORM:
        *n_weight = *n_bias = *n_stat = in_shape[0];
        break;
    default: break;
    }
}

const int *network_input_shape_of(const Network *net, int layer) {
    const Architecture *a = &net->arch;
    int in = a->layers[layer].input;
    return in < 0 ? a->input_shape : a->layers[in].out_shape;
}

/* Lays out every layer's parameters in one block: weight, bias, then
 * batchnorm running mean and var. Gradients use the same offsets. */
static void layout_params(Network *net) {
    const Architecture *a = &net->arch;
    net->params = xcalloc((size_t)a->n_layers, sizeof *net->params);
    size_t total = 0;
    for (int i = 0; i < a->n_layers; i++) {
        LayerParams *p = &net->params[i];
        param_sizes(&a->layers[i], network_input_shape_of(net, i), &p->n_weight, &p->n_bias,
                    &p->n_stat);
        p->offset = total;
        total += (size_t)(p->n_weight + p->n_bias + 2 * p->n_stat);
    }
    net->n_params = total;
    net->param_block = alloc_floats(total ? total : 1);
    memset(net->param_block, 0, (total ? total : 1) * sizeof(float));
    for (int i = 0; i < a->n_layers; i++) {
        LayerParams *p = &net->params[i];
        float *base = net->param_block + p->offset;
        p->weight = p->n_weight ? base : NULL;
        p->bias = p->n_bias ? base + p->n_weight : NULL;
        p->mean = p->n_stat ? base + p->n_weight + p->n_bias : NULL;
        p->var = p->n_stat ? p->mean + p->n_stat : NULL;
    }
}

/* Tensor names and shapes of a layer's parameters, PyTorch style. */
typedef struct {
    char name[200];
    int ndim;
    int64_t shape[4];
    float *dst;
} ParamTensor;

static int layer_tensors(const Network *net, int i, ParamTensor out[4]) {
    const LayerSpec *l = &net->arch.layers[i];
    const LayerParams *p = &net->params[i];
    const int *in = network_input_shape_of(net, i);
    int n = 0;
    if (l->op == OP_CONV2D || l->op == OP_LINEAR) {
        ParamTensor *w = &out[n++];
        snprintf(w->name, sizeof w->name, "%s.weight", l->params);
        w->dst = p->weight;
        if (l->op == OP_CONV2D) {
            w->ndim = 4;
            int64_t s[4] = {l->out_features, in[0], l->kernel[0], l->kernel[1]};
            memcpy(w->shape, s, sizeof s);
        } else {
            w->ndim = 2;
            w->shape[0] = l->out_features;
            w->shape[1] = (int64_t)in[0] * in[1] * in[2];
        }
        if (p->bias) {
            ParamTensor *b = &out[n++];
            snprintf(b->name, sizeof b->name, "%s.bias", l->params);
            b->ndim = 1, b->shape[0] = l->out_features, b->dst = p->bias;
        }
    } else if (l->op == OP_BATCHNORM) {
        static const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
        float *dst[4] = {p->weight, p->bias, p->mean, p->var};
        for (int k = 0; k < 4; k++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "%s.%s", l->params, suffix[k]);
            out[n].ndim = 1, out[n].shape[0] = in[0], out[n].dst = dst[k];
        }
    }
    return n;
}

static int load_classes(Network *net, const Safetensors *st, Error *err) {
    for (int k = 0; k < net->n_tasks; k++) {
        char key[200];
        snprintf(key, sizeof key, "classes.%s", net->task_names[k]);
        const char *json = st ? safetensors_metadata(st, key) : NULL;
        int n_out = net->arch.layers[net->task_layers[k]].out_shape[0];
        net->n_classes[k] = n_out;
        net->classes[k] = xcalloc((size_t)n_out, sizeof(char *));
        json_t *arr = json ? json_loads(json, 0, NULL) : NULL;
        if (json && (!json_is_array(arr) || (int)json_array_size(arr) != n_out)) {
            json_decref(arr);
            return error_set(err, "metadata %s must be a JSON list of %d labels", key, n_out);
        }
        for (int c = 0; c < n_out; c++) {
            json_t *v = arr ? json_array_get(arr, (size_t)c) : NULL;
            char num[32];
            snprintf(num, sizeof num, "%d", c);
            if (arr && !json_is_string(v)) {
                json_decref(arr);
                return error_set(err, "metadata %s[%d] is not a string", key, c);
            }
            net->classes[k][c] = xstrdup(v ? json_string_value(v) : num);
        }
        json_decref(arr);
    }
    return 0;
}

/* Tasks: the architecture's "outputs", else one task whose name comes from a
 * single `classes.<task>` metadata key (or "output"), read at the last layer. */
static void set_tasks(Network *net, const Safetensors *st) {
    const Architecture *a = &net->arch;
    if (a->n_tasks > 0) {
        net->n_tasks = a->n_tasks;
        net->task_names = xcalloc((size_t)a->n_tasks, sizeof(char *));
        net->task_layers = xcalloc((size_t)a->n_tasks, sizeof(int));
        for (int k = 0; k < a->n_tasks; k++) {
            net->task_names[k] = xstrdup(a->task_names[k]);
            net->task_layers[k] = a->task_layers[k];
        }
    } else if (a->n_layers > 0) {
        const char *task = "output";
        int found = 0;
        for (int i = 0; st && i < st->n_meta; i++)
            if (strncmp(st->meta_keys[i], "classes.", 8) == 0) task = st->meta_keys[i] + 8, found++;
        net->n_tasks = 1;
        net->task_names = xcalloc(1, sizeof(char *));
        net->task_layers = xcalloc(1, sizeof(int));
        net->task_names[0] = xstrdup(found == 1 ? task : "output");
        net->task_layers[0] = a->n_layers - 1;
    }
    net->classes = xcalloc((size_t)net->n_tasks, sizeof(char **));
    net->n_classes = xcalloc((size_t)net->n_tasks, sizeof(int));
}

static int set_front_end(Network *net, const char *fe, Error *err) {
    int rc = fe ? front_end_config_from_json(fe, &net->front_end, err)
                : front_end_config_preset("cochleagram_1", &net->front_end, err);
    if (rc != 0) return -1;
    /* The network's input is the cochleagram: check the shapes agree now
     * rather than failing on the first clip. */
    Cochleagram *c = cochleagram_create(&net->front_end, err);
    if (!c) return -1;
    int ch = cochleagram_channels(c), fr = cochleagram_frames(c);
    cochleagram_free(c);
    const int *in = net->arch.input_shape;
    if (in[0] != 1 || in[1] != ch || in[2] != fr)
        return error_set(err, "architecture input [%d, %d, %d] does not match the front end's "
                              "cochleagram [1, %d, %d]%s",
                         in[0], in[1], in[2], ch, fr, fe ? "" : " (no front_end metadata)");
    return 0;
}

/* A NaN or Inf weight (a diverged training run, a damaged file) would make
 * every activation NaN much later; name the tensor and element now. */
static int check_finite(const Safetensors *st, const ParamTensor *pt, Error *err) {
    int64_t n = 1;
    for (int d = 0; d < pt->ndim; d++) n *= pt->shape[d];
    for (int64_t j = 0; j < n; j++)
        if (!isfinite(pt->dst[j]))
            return error_set(err, "%s: tensor '%s' element %lld is %s", st->path, pt->name,
                             (long long)j, isnan(pt->dst[j]) ? "NaN" : "Inf");
    return 0;
}

static int load_weights(Network *net, const Safetensors *st, Error *err) {
    for (int i = 0; i < net->arch.n_layers; i++) {
        ParamTensor pt[4];
        int n = layer_tensors(net, i, pt);
        for (int k = 0; k < n; k++)
            if (safetensors_read_f32(st, pt[k].name, pt[k].dst, pt[k].ndim, pt[k].shape, err) != 0 ||
                check_finite(st, &pt[k], err) != 0)
                return -1;
    }
    return 0;
}

void network_free(Network *net) {
    for (int k = 0; k < net->n_tasks; k++) {
        for (int c = 0; net->classes && net->classes[k] && c < net->n_classes[k]; c++)
            free(net->classes[k][c]);
        if (net->classes) free(net->classes[k]);
        free(net->task_names[k]);
    }
    free(net->classes);
    free(net->n_classes);
    free(net->task_names);
    free(net->task_layers);
    free(net->params);
    free(net->param_block);
    for (int i = 0; i < net->n_meta; i++) free(net->meta_keys[i]), free(net->meta_values[i]);
    free(net->meta_keys);
    free(net->meta_values);
    architecture_free(&net->arch);
    free(net->arch_json);
    memset(net, 0, sizeof *net);
}

static void copy_metadata(Network *net, const Safetensors *st) {
    net->meta_keys = xcalloc((size_t)st->n_meta + 1, sizeof(char *));
    net->meta_values = xcalloc((size_t)st->n_meta + 1, sizeof(char *));
    for (int i = 0; i < st->n_meta; i++) {
        net->meta_keys[net->n_meta] = xstrdup(st->meta_keys[i]);
        net->meta_values[net->n_meta++] = xstrdup(st->meta_values[i]);
    }
}

/* Every parameter takes at least 2 bytes in the file (F16/BF16), so an
 * architecture asking for more than the file can hold is refused before
 * the parameter block is allocated: a few bytes of metadata must not make
 * the loader reserve gigabytes. */
static int check_param_budget(const Network *net, const Safetensors *st, Error *err) {
    int64_t total = 0; /* no overflow: the parser caps every layer's weights */
    for (int i = 0; i < net->arch.n_layers; i++) {
        int64_t w, b, s;
        param_sizes(&net->arch.layers[i], network_input_shape_of(net, i), &w, &b, &s);
        total += w + b + 2 * s;
    }
    int64_t room = (int64_t)(st->size - st->data_start) / 2;
    if (total > room)
        return error_set(err, "the architecture needs %lld parameters; the file holds at most %lld",
                         (long long)total, (long long)room);
    return 0;
}

/* Architecture, parameter layout, tasks, class labels and front end; st
 * (may be NULL) supplies metadata: classes.<task> and everything to keep. */
static int network_setup(Network *net, const char *arch_json, const char *front_end_json,
                         const Safetensors *st, Error *err) {
    memset(net, 0, sizeof *net);
    if (architecture_parse(&net->arch, arch_json, err) != 0) return -1;
    if (st && check_param_budget(net, st, err) != 0) return -1;
    net->arch_json = xstrdup(arch_json);
    layout_params(net);
    set_tasks(net, st);
    if (st) copy_metadata(net, st);
    if (set_front_end(net, front_end_json, err) != 0) return -1;
    return load_classes(net, st, err);
}

int network_from_safetensors(Network *net, const Safetensors *st, Error *err) {
    const char *arch = safetensors_metadata(st, "architecture");
    int rc = arch ? network_setup(net, arch, safetensors_metadata(st, "front_end"), st, err)
                  : error_set(err, "no __metadata__.architecture");
    if (rc == 0) rc = load_weights(net, st, err);
    if (rc != 0) {
        if (!strstr(err->msg, st->path)) error_prefix(err, "%s", st->path);
        network_free(net);
    }
    return rc;
}

int network_from_architecture(Network *net, const char *arch_json, const FrontEndConfig *fe,
                              Error *err) {
    char *fe_json = front_end_config_to_json(fe);
    int rc = network_setup(net, arch_json, fe_json, NULL, err);
    free(fe_json);
    if (rc != 0) network_free(net);
    return rc;
}

int network_load(Network *net, const char *path, Error *err) {
    Safetensors st;
    memset(net, 0, sizeof *net);
    if (safetensors_open(&st, path, err) != 0) return -1;
    int rc = network_from_safetensors(net, &st, err);
    safetensors_close(&st);
    return rc;
}

static char *classes_json(const Network *net, int task) {
    json_t *arr = json_array();
    for (int c = 0; c < net->n_classes[task]; c++)
        json_array_append_new(arr, json_string(net->classes[task][c]));
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

int network_save(const Network *net, const char *path, const char *const *extra_meta,
                 Error *err) {
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    /* Metadata from the loaded file first, then ours, then the caller's. */
    for (int i = 0; i < net->n_meta; i++)
        safetensors_writer_set_metadata(&w, net->meta_keys[i], net->meta_values[i], err);
    char *fe = front_end_config_to_json(&net->front_end);
    safetensors_writer_set_metadata(&w, "architecture", net->arch_json, err);
    safetensors_writer_set_metadata(&w, "front_end", fe, err);
    free(fe);
    for (int k = 0; k < net->n_tasks; k++) {
        char key[200], *labels = classes_json(net, k);
        snprintf(key, sizeof key, "classes.%s", net->task_names[k]);
        safetensors_writer_set_metadata(&w, key, labels, err);
        free(labels);
    }
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1]; i += 2)
        safetensors_writer_set_metadata(&w, extra_meta[i], extra_meta[i + 1], err);
    int rc = 0;
    for (int i = 0; i < net->arch.n_layers && rc == 0; i++) {
        ParamTensor pt[4];
        int n = layer_tensors(net, i, pt);
        for (int k = 0; k < n && rc == 0; k++)
            rc = safetensors_writer_add(&w, pt[k].name, pt[k].ndim, pt[k].shape, pt[k].dst, err);
    }
    if (rc == 0) rc = safetensors_writer_save(&w, path, err);
    safetensors_writer_free(&w);
    return rc;
}

int network_set_classes(Network *net, int task, char *const *labels, int n, Error *err) {
    if (task < 0 || task >= net->n_tasks || n != net->n_classes[task])
        return error_set(err, "task %d has %d outputs, got %d labels", task,
                         task >= 0 && task < net->n_tasks ? net->n_classes[task] : 0, n);
    for (int c = 0; c < n; c++) {
        free(net->classes[task][c]);
        net->classes[task][c] = xstrdup(labels[c]);
    }
    return 0;
}

int network_stage_index(const Network *net, const char *stage, Error *err) {
    int i = architecture_stage_index(&net->arch, stage);
    if (i >= -1) return i;
    /* Name the valid stages: the user typed a stage name by hand. */
    char list[600] = "cochleagram";
    size_t pos = strlen(list);
    for (int k = 0; k < net->arch.n_layers && pos < sizeof list - 8; k++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, ", %s", net->arch.layers[k].name);
    if (pos >= sizeof list - 8) strcpy(list + sizeof list - 8, ", ...");
    error_set(err, "unknown stage '%s' (stages: %s)", stage, list);
    return -2;
}

int network_open(Network *net, const char *spec, Error *err) {
    if (strncmp(spec, "builtin:", 8) != 0) return network_load(net, spec, err);
    /* builtin:NAME[:SEED], random weights: for benchmarks and dry runs. */
    char name[64] = {0};
    unsigned long long seed = 1;
    const char *colon = strchr(spec + 8, ':');
    size_t len = colon ? (size_t)(colon - spec - 8) : strlen(spec + 8);
    if (len == 0 || len >= sizeof name || (colon && sscanf(colon + 1, "%llu", &seed) != 1))
        return error_set(err, "'%s': expected builtin:NAME[:SEED]", spec);
    memcpy(name, spec + 8, len);
    FrontEndConfig fe;
    if (front_end_config_preset("cochleagram_1", &fe, err) != 0) return -1;
    return network_builtin(net, name, &fe, seed, err);
}

static bool is_logits_layer(const Network *net, int layer) {
    if (net->n_tasks == 0) return layer == net->arch.n_layers - 1;
    for (int t = 0; t < net->n_tasks; t++)
        if (net->task_layers[t] == layer) return true;
    return false;
}

int network_stage_set(const Network *net, const char *name, int *stages) {
    bool all = strcmp(name, "all") == 0;
    if (!all && strcmp(name, "paper") != 0) return -1;
    int n = 0;
    stages[n++] = -1;
    for (int i = 0; i < net->arch.n_layers; i++) {
        LayerOp op = net->arch.layers[i].op;
        if (all || op == OP_RELU || op == OP_AVGPOOL || is_logits_layer(net, i)) stages[n++] = i;
    }
    return n;
}

int network_relu_input_of(const Network *net, int stage) {
    for (int i = stage; i >= 0; i = net->arch.layers[i].input) {
        LayerOp op = net->arch.layers[i].op;
        if (op == OP_RELU) return net->arch.layers[i].input;
        if (op != OP_MAXPOOL && op != OP_AVGPOOL && op != OP_FLATTEN && op != OP_DROPOUT) break;
    }
    return -2;
}

int network_parse_stages(const Network *net, const char *list, int *stages, int max, Error *err) {
    int *set = xmalloc(((size_t)net->arch.n_layers + 1) * sizeof *set);
    int n_set = network_stage_set(net, list, set);
    if (n_set > max) {
        free(set);
        return error_set(err, "too many stages (%d, at most %d)", n_set, max);
    }
    if (n_set >= 0) memcpy(stages, set, (size_t)n_set * sizeof *stages);
    free(set);
    if (n_set >= 0) return n_set;
    int n = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            free(copy);
            return error_set(err, "too many stages (at most %d)", max);
        }
        int i = network_stage_index(net, tok, err);
        if (i < -1) {
            free(copy);
            return -1;
        }
        stages[n++] = i;
    }
    free(copy);
    return n ? n : error_set(err, "no stage given");
}
