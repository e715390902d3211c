/* Architecture JSON -> layer list with shapes (no weights, no buffers).
 *
 * Schema (safetensors __metadata__.architecture, see DESIGN.md and
 * ../shared/golden/network_small.safetensors):
 *   {"name": "...", "input": [C, H, W],
 *    "layers": [{"name": "conv0", "op": "conv2d", "out": 96, "kernel": [7, 14],
 *                "stride": [3, 3], "padding": "same", "input": "relu2" (optional),
 *                "params": "branches.word.conv3" (optional tensor-name prefix)}, ...],
 *    "outputs": {"word": "word/final", ...} (optional)}
 * A layer's input defaults to the previous layer; the first layer reads the
 * network input (stage `cochleagram`). Branch layers are named "branch/layer";
 * their tensors default to "branch.layer.weight" etc., as PyTorch names
 * submodules. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Values per example at any stage, and weights of any layer: keeps shape
 * arithmetic in int (and a file from declaring tensors no machine could
 * hold). */
#define MAX_STAGE_VALUES (1 << 30)

static const struct {
    const char *name;
    LayerOp op;
} op_names[] = {
    {"conv2d", OP_CONV2D},   {"relu", OP_RELU},       {"maxpool", OP_MAXPOOL},
    {"avgpool", OP_AVGPOOL}, {"batchnorm", OP_BATCHNORM}, {"lrn", OP_LRN},
    {"linear", OP_LINEAR},   {"flatten", OP_FLATTEN}, {"dropout", OP_DROPOUT},
};

const char *layer_op_name(LayerOp op) {
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (op_names[i].op == op) return op_names[i].name;
    return "?";
}

/* A default below min means the key is required. */
static int get_int(json_t *o, const char *key, int def, int min, int *out, Error *err) {
    json_t *v = json_object_get(o, key);
    if (!v && def < min) return error_set(err, "missing '%s'", key);
    if (!v) return *out = def, 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1 << 24)
        return error_set(err, "'%s' must be an integer >= %d", key, min);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_num(json_t *o, const char *key, double def, double *out, Error *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return *out = def, 0;
    if (!json_is_number(v)) return error_set(err, "'%s' must be a number", key);
    *out = json_number_value(v);
    return 0;
}

/* [a, b] or a single integer meaning [a, a]. */
static int get_pair(json_t *o, const char *key, int def, int out[2], Error *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return out[0] = out[1] = def, 0;
    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 4096)
        return out[0] = out[1] = (int)json_integer_value(v), 0;
    for (int i = 0; json_is_array(v) && json_array_size(v) == 2 && i < 2; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 4096) break;
        out[i] = (int)json_integer_value(x);
        if (i == 1) return 0;
    }
    return error_set(err, "'%s' must be [h, w] with positive integers", key);
}

/* TF "SAME": out = ceil(in / s); total pad = max((out-1)s + k - in, 0), the
 * smaller half before. "valid": no padding. [ph, pw]: symmetric explicit. */
static int set_window(LayerSpec *l, json_t *o, const int in[3], Error *err) {
    if (get_pair(o, "kernel", 1, l->kernel, err) || get_pair(o, "stride", 1, l->stride, err))
        return -1;
    json_t *p = json_object_get(o, "padding");
    const char *ps = json_is_string(p) ? json_string_value(p) : NULL;
    for (int d = 0; d < 2; d++) {
        int i = in[d + 1], k = l->kernel[d], s = l->stride[d], total;
        if (!p || (ps && strcmp(ps, "same") == 0)) {
            int out = (i + s - 1) / s;
            total = (out - 1) * s + k - i;
            total = total > 0 ? total : 0;
            l->pad[d] = total / 2;
        } else if (ps && strcmp(ps, "valid") == 0) {
            total = 0;
            l->pad[d] = 0;
        } else if (json_is_array(p) && json_array_size(p) == 2 &&
                   json_is_integer(json_array_get(p, (size_t)d)) &&
                   json_integer_value(json_array_get(p, (size_t)d)) >= 0 &&
                   json_integer_value(json_array_get(p, (size_t)d)) < k) {
            l->pad[d] = (int)json_integer_value(json_array_get(p, (size_t)d));
            total = 2 * l->pad[d];
        } else {
            return error_set(err, "'padding' must be \"same\", \"valid\" or [ph, pw] below the kernel");
        }
        if (i + total < k) return error_set(err, "kernel larger than its padded input");
        l->out_shape[d + 1] = (i + total - k) / s + 1;
    }
    return 0;
}

static int copy_shape(LayerSpec *l, const int in[3]) {
    memcpy(l->out_shape, in, sizeof l->out_shape);
    return 0;
}

/* Fills op parameters and out_shape from the JSON object and input shape. */
static int parse_op(LayerSpec *l, json_t *o, const int in[3], Error *err) {
    int64_t in_numel = (int64_t)in[0] * in[1] * in[2]; /* below MAX_STAGE_VALUES */
    switch (l->op) {
    case OP_CONV2D:
        l->out_shape[0] = 0;
        if (get_int(o, "out", 0, 1, &l->out_features, err) || set_window(l, o, in, err)) return -1;
        l->out_shape[0] = l->out_features;
        l->has_bias = !json_is_false(json_object_get(o, "bias"));
        return 0;
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        if (set_window(l, o, in, err)) return -1;
        l->out_shape[0] = in[0];
        l->count_include_pad = !json_is_false(json_object_get(o, "count_include_pad"));
        if (l->op == OP_AVGPOOL && !l->count_include_pad)
            return error_set(err, "avgpool with count_include_pad=false is not supported");
        return 0;
    case OP_BATCHNORM:
        l->momentum = 0.1;
        if (get_num(o, "eps", 1e-5, &l->eps, err) || get_num(o, "momentum", 0.1, &l->momentum, err))
            return -1;
        return copy_shape(l, in);
    case OP_LRN:
        if (get_int(o, "depth_radius", 5, 0, &l->lrn_radius, err) ||
            get_num(o, "bias", 1.0, &l->lrn_bias, err) || get_num(o, "alpha", 1.0, &l->lrn_alpha, err) ||
            get_num(o, "beta", 0.5, &l->lrn_beta, err))
            return -1;
        return copy_shape(l, in);
    case OP_LINEAR:
        if (in[1] != 1 || in[2] != 1)
            return error_set(err, "linear needs a flat input (add a flatten layer), got [%d, %d, %d]",
                             in[0], in[1], in[2]);
        if (get_int(o, "out", 0, 1, &l->out_features, err)) return -1;
        l->out_shape[0] = l->out_features, l->out_shape[1] = l->out_shape[2] = 1;
        l->has_bias = !json_is_false(json_object_get(o, "bias"));
        return 0;
    case OP_FLATTEN: {
        json_t *ord = json_object_get(o, "order");
        if (ord && !(json_is_string(ord) && strcmp(json_string_value(ord), "CHW") == 0))
            return error_set(err, "flatten order must be \"CHW\"");
        l->out_shape[0] = (int)in_numel, l->out_shape[1] = l->out_shape[2] = 1;
        return 0;
    }
    case OP_DROPOUT:
        if (get_num(o, "p", 0.5, &l->dropout_p, err)) return -1;
        if (l->dropout_p < 0 || l->dropout_p >= 1) return error_set(err, "'p' must be in [0, 1)");
        return copy_shape(l, in);
    case OP_RELU: return copy_shape(l, in);
    }
    return error_set(err, "unknown op");
}

static int find_layer(const Architecture *a, int before, const char *name) {
    for (int i = 0; i < before; i++)
        if (strcmp(a->layers[i].name, name) == 0) return i;
    return -1;
}

/* Layer i's activations and weights stay within MAX_STAGE_VALUES (in
 * double: out * in * kh * kw of a crafted layer overflows int64). */
static int check_sizes(const Architecture *a, int i, const int in[3], Error *err) {
    const LayerSpec *l = &a->layers[i];
    if (architecture_stage_numel(a, i) > MAX_STAGE_VALUES)
        return error_set(err, "layer '%s': %lld values per example (at most %d)", l->name,
                         (long long)architecture_stage_numel(a, i), MAX_STAGE_VALUES);
    double in_numel = (double)in[0] * in[1] * in[2], weights = 0;
    if (l->op == OP_CONV2D)
        weights = (double)l->out_features * in[0] * l->kernel[0] * l->kernel[1];
    else if (l->op == OP_LINEAR)
        weights = (double)l->out_features * in_numel;
    if (weights > MAX_STAGE_VALUES)
        return error_set(err, "layer '%s': %.0f weights (at most %d)", l->name, weights,
                         MAX_STAGE_VALUES);
    return 0;
}

static int parse_layer(Architecture *a, int i, json_t *o, Error *err) {
    LayerSpec *l = &a->layers[i];
    json_t *name = json_object_get(o, "name"), *op = json_object_get(o, "op"),
           *input = json_object_get(o, "input"), *params = json_object_get(o, "params");
    if (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > 120)
        return error_set(err, "layer %d: missing or bad 'name'", i);
    l->name = xstrdup(json_string_value(name));
    if (strcmp(l->name, "cochleagram") == 0 || find_layer(a, i, l->name) >= 0)
        return error_set(err, "layer '%s': name used twice", l->name);
    l->op = (LayerOp)-1;
    for (size_t k = 0; json_is_string(op) && k < sizeof op_names / sizeof op_names[0]; k++)
        if (strcmp(json_string_value(op), op_names[k].name) == 0) l->op = op_names[k].op;
    if ((int)l->op < 0) return error_set(err, "layer '%s': unknown op", l->name);
    l->input = i - 1;
    if (input) {
        const char *in = json_is_string(input) ? json_string_value(input) : "";
        l->input = strcmp(in, "cochleagram") == 0 ? -1 : find_layer(a, i, in);
        if (l->input < 0 && strcmp(in, "cochleagram") != 0)
            return error_set(err, "layer '%s': input '%s' is not an earlier layer", l->name, in);
    }
    if (params && !json_is_string(params))
        return error_set(err, "layer '%s': 'params' must be a string", l->name);
    l->params = xstrdup(params ? json_string_value(params) : l->name);
    for (char *p = l->params; *p; p++)
        if (*p == '/') *p = '.';
    const int *in_shape = l->input < 0 ? a->input_shape : a->layers[l->input].out_shape;
    if (parse_op(l, o, in_shape, err) != 0) return error_prefix(err, "layer '%s'", l->name);
    return check_sizes(a, i, in_shape, err);
}

static int parse_outputs(Architecture *a, json_t *outputs, Error *err) {
    if (!outputs) return 0;
    if (!json_is_object(outputs)) return error_set(err, "'outputs' must be an object");
    a->n_tasks = (int)json_object_size(outputs);
    a->task_names = xcalloc((size_t)a->n_tasks, sizeof(char *));
    a->task_layers = xcalloc((size_t)a->n_tasks, sizeof(int));
    int k = 0;
    const char *task;
    json_t *v;
    json_object_foreach(outputs, task, v) {
        a->task_names[k] = xstrdup(task);
        a->task_layers[k] = json_is_string(v) ? find_layer(a, a->n_layers, json_string_value(v)) : -1;
        if (a->task_layers[k] < 0)
            return error_set(err, "outputs.%s: not a layer name", task);
        k++;
    }
    return 0;
}

void architecture_free(Architecture *a) {
    for (int i = 0; i < a->n_layers; i++) free(a->layers[i].name), free(a->layers[i].params);
    for (int i = 0; i < a->n_tasks; i++) free(a->task_names[i]);
    free(a->layers);
    free(a->task_names);
    free(a->task_layers);
    free(a->name);
    memset(a, 0, sizeof *a);
}

static int parse_root(Architecture *a, json_t *root, Error *err) {
    json_t *input = json_object_get(root, "input"), *layers = json_object_get(root, "layers"),
           *name = json_object_get(root, "name");
    a->name = xstrdup(json_is_string(name) ? json_string_value(name) : "unnamed");
    for (int d = 0; d < 3; d++) {
        json_t *x = json_array_get(input, (size_t)d);
        if (!json_is_array(input) || json_array_size(input) != 3 || !json_is_integer(x) ||
            json_integer_value(x) < 1 || json_integer_value(x) > 1 << 20)
            return error_set(err, "'input' must be [channels, height, width]");
        a->input_shape[d] = (int)json_integer_value(x);
    }
    if (architecture_stage_numel(a, -1) > MAX_STAGE_VALUES)
        return error_set(err, "'input' has more than %d values", MAX_STAGE_VALUES);
    /* An empty list is a front end alone (stage `cochleagram` only). */
    if (!json_is_array(layers) || json_array_size(layers) > 4096)
        return error_set(err, "'layers' must be an array");
    a->layers = xcalloc(json_array_size(layers) + 1, sizeof *a->layers);
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *o = json_array_get(layers, i);
        a->n_layers = (int)i + 1;
        if (!json_is_object(o)) return error_set(err, "layer %zu is not an object", i);
        if (parse_layer(a, (int)i, o, err) != 0) return -1;
    }
    return parse_outputs(a, json_object_get(root, "outputs"), err);
}

int architecture_parse(Architecture *a, const char *json, Error *err) {
    memset(a, 0, sizeof *a);
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return error_set(err, "architecture JSON invalid at line %d column %d: %s", jerr.line,
                         jerr.column, jerr.text);
    int rc = json_is_object(root) ? parse_root(a, root, err)
                                  : error_set(err, "architecture is not a JSON object");
    json_decref(root);
    if (rc != 0) {
        error_prefix(err, "architecture");
        architecture_free(a);
    }
    return rc;
}

int architecture_stage_index(const Architecture *a, const char *stage) {
    if (strcmp(stage, "cochleagram") == 0) return -1;
    int i = find_layer(a, a->n_layers, stage);
    return i >= 0 ? i : -2;
}

int64_t architecture_stage_numel(const Architecture *a, int layer) {
    const int *s = layer < 0 ? a->input_shape : a->layers[layer].out_shape;
    return (int64_t)s[0] * s[1] * s[2];
}
