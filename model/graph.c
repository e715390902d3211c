/* Running a network: forward to chosen stages (computing only the layers on
 * their paths) and backward from them to the network input, optionally with
 * parameter gradients (training). Buffers are allocated once per work. */
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "model.h"

typedef struct {
    union {
        Conv2d conv;
        Pool2d pool;
        BatchNorm bn;
        Lrn lrn;
        Linear lin;
        Dropout drop;
    } u;
    size_t in_count, out_count; /* values over the whole batch */
} LayerRun;

struct NetworkWork {
    int n_layers, batch;
    bool training;
    LayerRun *run;
    float **act, **grad; /* per layer, batch x numel; flatten's act aliases its input's */
    float *grad_tmp;     /* for adding into a gradient that is already written */
    int32_t **argmax;    /* maxpool layers */
    float **save_mean, **save_invstd; /* batchnorm in training */
    uint64_t *seed;      /* dropout seed of the last training forward, per layer */
    float *scratch;
    float *d_input;
    const float *input; /* of the last forward (borrowed) */
    bool *needed, *written, *aliased;
    bool input_written;
    uint64_t step_seed;
};

static Window2d window_of(const LayerSpec *l, const int *in) {
    Window2d w = {.in_h = in[1], .in_w = in[2], .out_h = l->out_shape[1], .out_w = l->out_shape[2],
                  .kh = l->kernel[0], .kw = l->kernel[1], .sh = l->stride[0], .sw = l->stride[1],
                  .pad_t = l->pad[0], .pad_l = l->pad[1]};
    return w;
}

/* Sizes for one layer at this batch; returns the scratch it needs. */
static size_t setup_run(const Network *net, int i, int batch, LayerRun *r) {
    const LayerSpec *l = &net->arch.layers[i];
    const int *in = network_input_shape_of(net, i);
    int in_numel = in[0] * in[1] * in[2], hw = in[1] * in[2];
    r->in_count = (size_t)batch * in_numel;
    r->out_count = (size_t)batch * l->out_shape[0] * l->out_shape[1] * l->out_shape[2];
    switch (l->op) {
    case OP_CONV2D:
        r->u.conv = (Conv2d){batch, in[0], l->out_features, window_of(l, in)};
        return conv2d_scratch_floats(&r->u.conv);
    case OP_MAXPOOL:
    case OP_AVGPOOL: r->u.pool = (Pool2d){batch, in[0], window_of(l, in)}; return 0;
    case OP_BATCHNORM:
        r->u.bn = (BatchNorm){batch, in[0], hw, (float)l->eps, (float)l->momentum};
        return 0;
    case OP_LRN:
        r->u.lrn = (Lrn){batch, in[0], hw, l->lrn_radius, (float)l->lrn_bias, (float)l->lrn_alpha,
                         (float)l->lrn_beta};
        return lrn_scratch_floats(&r->u.lrn);
    case OP_LINEAR: r->u.lin = (Linear){batch, in_numel, l->out_features}; return 0;
    case OP_DROPOUT: r->u.drop = (Dropout){r->out_count, (float)l->dropout_p}; return 0;
    default: return 0;
    }
}

NetworkWork *network_work_create(const Network *net, int batch, bool training) {
    const Architecture *a = &net->arch;
    NetworkWork *w = xcalloc(1, sizeof *w);
    int n = a->n_layers;
    w->n_layers = n;
    w->batch = batch;
    w->training = training;
    w->run = xcalloc((size_t)n, sizeof *w->run);
    w->act = xcalloc((size_t)n, sizeof(float *));
    w->grad = xcalloc((size_t)n, sizeof(float *));
    w->argmax = xcalloc((size_t)n, sizeof(int32_t *));
    w->save_mean = xcalloc((size_t)n, sizeof(float *));
    w->save_invstd = xcalloc((size_t)n, sizeof(float *));
    w->seed = xcalloc((size_t)n, sizeof(uint64_t));
    w->needed = xcalloc((size_t)n, sizeof(bool));
    w->written = xcalloc((size_t)n, sizeof(bool));
    w->aliased = xcalloc((size_t)n, sizeof(bool));
    size_t scratch = 0, largest = (size_t)batch * architecture_stage_numel(a, -1);
    for (int i = 0; i < n; i++) {
        LayerRun *r = &w->run[i];
        size_t s = setup_run(net, i, batch, r);
        scratch = s > scratch ? s : scratch;
        largest = r->out_count > largest ? r->out_count : largest;
        w->aliased[i] = a->layers[i].op == OP_FLATTEN; /* act points at its input's */
        if (!w->aliased[i]) w->act[i] = alloc_floats(r->out_count);
        w->grad[i] = alloc_floats(r->out_count);
        if (a->layers[i].op == OP_MAXPOOL)
            w->argmax[i] = xmalloc(maxpool2d_index_count(&r->u.pool) * sizeof(int32_t));
        if (a->layers[i].op == OP_BATCHNORM && training) {
            w->save_mean[i] = alloc_floats((size_t)r->u.bn.c);
            w->save_invstd[i] = alloc_floats((size_t)r->u.bn.c);
        }
    }
    w->scratch = alloc_floats(scratch ? scratch : 1);
    w->grad_tmp = alloc_floats(largest);
    w->d_input = alloc_floats((size_t)batch * architecture_stage_numel(a, -1));
    return w;
}

void network_work_free(NetworkWork *w) {
    if (!w) return;
    for (int i = 0; i < w->n_layers; i++) {
        if (!w->aliased[i]) free(w->act[i]);
        free(w->grad[i]);
        free(w->argmax[i]);
        free(w->save_mean[i]);
        free(w->save_invstd[i]);
    }
    free(w->run);
    free(w->act);
    free(w->grad);
    free(w->argmax);
    free(w->save_mean);
    free(w->save_invstd);
    free(w->seed);
    free(w->needed);
    free(w->written);
    free(w->aliased);
    free(w->scratch);
    free(w->grad_tmp);
    free(w->d_input);
    free(w);
}

int network_work_batch(const NetworkWork *w) { return w->batch; }

/* Marks the layers on the paths from the input to each target. */
static void mark_needed(const Network *net, NetworkWork *w, const int *targets, int n_targets) {
    memset(w->needed, 0, (size_t)w->n_layers * sizeof(bool));
    for (int k = 0; k < n_targets; k++)
        for (int i = targets[k]; i >= 0 && !w->needed[i]; i = net->arch.layers[i].input)
            w->needed[i] = true;
}

static const float *input_act(const Network *net, const NetworkWork *w, int i) {
    int in = net->arch.layers[i].input;
    return in < 0 ? w->input : w->act[in];
}

static void layer_forward(const Network *net, NetworkWork *w, int i) {
    const LayerSpec *l = &net->arch.layers[i];
    const LayerParams *p = &net->params[i];
    LayerRun *r = &w->run[i];
    const float *x = input_act(net, w, i);
    float *y = w->act[i];
    switch (l->op) {
    case OP_CONV2D: conv2d_forward(&r->u.conv, y, x, p->weight, p->bias, w->scratch); break;
    case OP_RELU: relu_forward(y, x, r->out_count); break;
    case OP_MAXPOOL: maxpool2d_forward(&r->u.pool, y, w->argmax[i], x); break;
    case OP_AVGPOOL: avgpool2d_forward(&r->u.pool, y, x); break;
    case OP_BATCHNORM:
        if (w->training)
            batchnorm_train_forward(&r->u.bn, y, x, p->weight, p->bias, p->mean, p->var,
                                    w->save_mean[i], w->save_invstd[i]);
        else
            batchnorm_forward(&r->u.bn, y, x, p->weight, p->bias, p->mean, p->var);
        break;
    case OP_LRN: lrn_forward(&r->u.lrn, y, x); break;
    case OP_LINEAR: linear_forward(&r->u.lin, y, x, p->weight, p->bias); break;
    case OP_FLATTEN: w->act[i] = (float *)x; break;
    case OP_DROPOUT:
        if (w->training) {
            w->seed[i] = w->step_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
            dropout_forward(&r->u.drop, y, x, w->seed[i]);
        } else {
            memcpy(y, x, r->out_count * sizeof(float));
        }
        break;
    }
}

void network_forward(const Network *net, NetworkWork *w, const float *input, const int *targets,
                     int n_targets) {
    w->input = input;
    mark_needed(net, w, targets, n_targets);
    for (int i = 0; i < w->n_layers; i++)
        if (w->needed[i]) layer_forward(net, w, i);
}

void network_set_step_seed(NetworkWork *w, uint64_t seed) { w->step_seed = seed; }

const float *network_activation(const NetworkWork *w, int layer) {
    return layer < 0 ? w->input : w->act[layer];
}

/* Where layer i's input gradient goes: straight into the input's buffer if
 * nothing wrote it yet, else into grad_tmp to be added afterwards. */
static float *grad_destination(const Network *net, NetworkWork *w, int i, bool *add_after) {
    int in = net->arch.layers[i].input;
    bool *written = in < 0 ? &w->input_written : &w->written[in];
    float *dst = in < 0 ? w->d_input : w->grad[in];
    *add_after = *written;
    *written = true;
    return *add_after ? w->grad_tmp : dst;
}

static void layer_backward(const Network *net, NetworkWork *w, int i, bool fake_relu,
                           float *d_params) {
    const LayerSpec *l = &net->arch.layers[i];
    const LayerParams *p = &net->params[i];
    LayerRun *r = &w->run[i];
    const float *x = input_act(net, w, i), *dy = w->grad[i];
    float *dw = d_params && p->weight ? d_params + p->offset : NULL;
    float *db = d_params && p->bias ? d_params + p->offset + p->n_weight : NULL;
    bool add_after;
    float *dx = grad_destination(net, w, i, &add_after);
    switch (l->op) {
    case OP_CONV2D: conv2d_backward(&r->u.conv, dx, dw, db, dy, x, p->weight, w->scratch); break;
    case OP_RELU: relu_backward(dx, dy, w->act[i], r->out_count, fake_relu); break;
    case OP_MAXPOOL: maxpool2d_backward(&r->u.pool, dx, dy, w->argmax[i], x); break;
    case OP_AVGPOOL: avgpool2d_backward(&r->u.pool, dx, dy); break;
    case OP_BATCHNORM:
        if (w->training)
            batchnorm_train_backward(&r->u.bn, dx, dw, db, dy, x, p->weight, w->save_mean[i],
                                     w->save_invstd[i]);
        else
            batchnorm_backward(&r->u.bn, dx, dw, db, dy, x, p->weight, p->mean, p->var);
        break;
    case OP_LRN: lrn_backward(&r->u.lrn, dx, dy, x, w->scratch); break;
    case OP_LINEAR: linear_backward(&r->u.lin, dx, dw, db, dy, x, p->weight); break;
    case OP_FLATTEN: memcpy(dx, dy, r->out_count * sizeof(float)); break;
    case OP_DROPOUT:
        if (w->training)
            dropout_backward(&r->u.drop, dx, dy, w->seed[i]);
        else
            memcpy(dx, dy, r->out_count * sizeof(float));
        break;
    }
    if (add_after) {
        int in = l->input;
        layers_add(in < 0 ? w->d_input : w->grad[in], w->grad_tmp, r->in_count);
    }
}

static bool is_target(const int *targets, int n_targets, int i) {
    for (int k = 0; k < n_targets; k++)
        if (targets[k] == i) return true;
    return false;
}

const float *network_backward(const Network *net, NetworkWork *w, const int *targets,
                              const float *const *d_targets, int n_targets, bool fake_relu,
                              float *d_params) {
    memset(w->written, 0, (size_t)w->n_layers * sizeof(bool));
    w->input_written = false;
    for (int k = 0; k < n_targets; k++) {
        int t = targets[k];
        float *dst = t < 0 ? w->d_input : w->grad[t];
        bool *written = t < 0 ? &w->input_written : &w->written[t];
        size_t count = (size_t)w->batch * architecture_stage_numel(&net->arch, t);
        if (*written)
            layers_add(dst, d_targets[k], count);
        else
            memcpy(dst, d_targets[k], count * sizeof(float));
        *written = true;
    }
    for (int i = w->n_layers - 1; i >= 0; i--) {
        if (!w->needed[i] || !w->written[i]) continue;
        bool fake = fake_relu && is_target(targets, n_targets, i);
        layer_backward(net, w, i, fake, d_params);
    }
    if (!w->input_written)
        memset(w->d_input, 0,
               (size_t)w->batch * architecture_stage_numel(&net->arch, -1) * sizeof(float));
    return w->d_input;
}
