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
    LayerOp op;
} LayerRun;

struct NetworkWork {
    int n_layers, batch;
    bool training;
    LayerRun *run;
    float **act, **grad; /* per layer, batch x numel; flatten's act aliases its input's */
    /* Where each layer's output gradient is during a backward (NULL: none
     * yet): its own grad buffer, or borrowed without a copy from a caller's
     * d_target or from the gradient an identity backward passed through. */
    const float **dy;
    const float *d_input_at; /* the same for the network input */
    float *grad_tmp;         /* for adding into a gradient that is already written */
    int32_t **argmax;    /* maxpool layers */
    float **save_mean, **save_invstd; /* batchnorm in training */
    uint64_t *seed;      /* dropout seed of the last training forward, per layer */
    float *scratch;
    size_t scratch_floats;
    Pool *pool; /* borrowed, may be NULL */
    float *d_input;
    const float *input; /* of the last forward (borrowed) */
    bool *needed, *aliased;
    uint64_t step_seed;
    /* Task routing (network_route_rows): per target, its examples' rows; per
     * layer, the one target whose path alone it is on (-1 none, -2 several)
     * and the rows it runs on in the current forward and backward. */
    int n_routes, route_first[NETWORK_MAX_ROUTES], route_count[NETWORK_MAX_ROUTES];
    int *owner, *row0, *rows;
};

static Window2d window_of(const LayerSpec *l, const int *in) {
    Window2d w = {.in_h = in[1], .in_w = in[2], .out_h = l->out_shape[1], .out_w = l->out_shape[2],
                  .kh = l->kernel[0], .kw = l->kernel[1], .sh = l->stride[0], .sw = l->stride[1],
                  .pad_t = l->pad[0], .pad_l = l->pad[1]};
    return w;
}

/* Sizes for one layer at this batch. */
static void setup_run(const Network *net, int i, int batch, LayerRun *r) {
    const LayerSpec *l = &net->arch.layers[i];
    const int *in = network_input_shape_of(net, i);
    int in_numel = in[0] * in[1] * in[2], hw = in[1] * in[2];
    r->in_count = (size_t)batch * in_numel;
    r->out_count = (size_t)batch * l->out_shape[0] * l->out_shape[1] * l->out_shape[2];
    r->op = l->op;
    switch (l->op) {
    case OP_CONV2D:
        r->u.conv = (Conv2d){batch, in[0], l->out_features, window_of(l, in), NULL};
        return;
    case OP_MAXPOOL:
    case OP_AVGPOOL: r->u.pool = (Pool2d){batch, in[0], window_of(l, in)}; return;
    case OP_BATCHNORM:
        r->u.bn = (BatchNorm){batch, in[0], hw, (float)l->eps, (float)l->momentum};
        return;
    case OP_LRN:
        r->u.lrn = (Lrn){batch, in[0], hw, l->lrn_radius, (float)l->lrn_bias, (float)l->lrn_alpha,
                         (float)l->lrn_beta};
        return;
    case OP_LINEAR: r->u.lin = (Linear){batch, in_numel, l->out_features, NULL}; return;
    case OP_DROPOUT: r->u.drop = (Dropout){r->out_count, (float)l->dropout_p}; return;
    default: return;
    }
}

/* Scratch a layer needs. A conv's depends on its batch through how it groups
 * examples, not monotonically; in training, routing may run it on any number
 * of rows up to the batch. */
static size_t run_scratch(const LayerRun *r, bool training) {
    if (r->op == OP_LRN) return lrn_scratch_floats(&r->u.lrn);
    if (r->op != OP_CONV2D) return 0;
    size_t need = 0;
    for (int rows = training ? 1 : r->u.conv.n; rows <= r->u.conv.n; rows++) {
        Conv2d part = r->u.conv;
        part.n = rows;
        size_t s = conv2d_scratch_floats(&part);
        need = s > need ? s : need;
    }
    return need;
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
    w->dy = xcalloc((size_t)n, sizeof(float *));
    w->needed = xcalloc((size_t)n, sizeof(bool));
    w->aliased = xcalloc((size_t)n, sizeof(bool));
    w->owner = xcalloc((size_t)n, sizeof(int));
    w->row0 = xcalloc((size_t)n, sizeof(int));
    w->rows = xcalloc((size_t)n, sizeof(int));
    size_t scratch = 0, largest = (size_t)batch * architecture_stage_numel(a, -1);
    for (int i = 0; i < n; i++) {
        LayerRun *r = &w->run[i];
        setup_run(net, i, batch, r);
        size_t s = run_scratch(r, training);
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
    w->scratch_floats = scratch;
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
    free(w->dy);
    free(w->needed);
    free(w->aliased);
    free(w->owner);
    free(w->row0);
    free(w->rows);
    free(w->scratch);
    free(w->grad_tmp);
    free(w->d_input);
    free(w);
}

int network_work_batch(const NetworkWork *w) { return w->batch; }

void network_work_set_pool(NetworkWork *w, Pool *pool) {
    w->pool = pool;
    size_t need = w->scratch_floats;
    for (int i = 0; i < w->n_layers; i++) {
        LayerRun *r = &w->run[i];
        if (r->op == OP_LINEAR) r->u.lin.pool = pool;
        if (r->op != OP_CONV2D) continue;
        r->u.conv.pool = pool;
        size_t s = run_scratch(r, w->training);
        need = s > need ? s : need;
    }
    if (need > w->scratch_floats) {
        free(w->scratch);
        w->scratch = alloc_floats(need);
        w->scratch_floats = need;
    }
}

/* Marks the layers on the paths from the input to each target, and the rows
 * each runs on: a layer on one routed target's path alone runs on that
 * target's rows, every other layer on the whole batch. */
static void mark_needed(const Network *net, NetworkWork *w, const int *targets, int n_targets) {
    memset(w->needed, 0, (size_t)w->n_layers * sizeof(bool));
    for (int i = 0; i < w->n_layers; i++) w->owner[i] = -1;
    for (int k = 0; k < n_targets; k++)
        for (int i = targets[k]; i >= 0 && w->owner[i] != -2 && w->owner[i] != k;
             i = net->arch.layers[i].input) {
            w->needed[i] = true;
            w->owner[i] = w->owner[i] == -1 ? k : -2;
        }
    for (int i = 0; i < w->n_layers; i++) {
        int k = w->owner[i];
        bool routed = k >= 0 && k < w->n_routes;
        w->row0[i] = routed ? w->route_first[k] : 0;
        w->rows[i] = routed ? w->route_count[k] : w->batch;
    }
}

void network_route_rows(NetworkWork *w, const int *first, const int *count, int n_targets) {
    w->n_routes = n_targets < NETWORK_MAX_ROUTES ? n_targets : NETWORK_MAX_ROUTES;
    for (int k = 0; k < w->n_routes; k++) {
        int f = first[k] < 0 ? 0 : first[k] > w->batch ? w->batch : first[k];
        w->route_first[k] = f;
        w->route_count[k] = count[k] < 0 ? 0 : count[k] > w->batch - f ? w->batch - f : count[k];
    }
}

/* Layer i's run on its rows, and the offsets of its first row in its input
 * and output (values). */
static LayerRun run_rows(const NetworkWork *w, int i, size_t *in_off, size_t *out_off) {
    LayerRun r = w->run[i];
    size_t in_per = r.in_count / (size_t)w->batch, out_per = r.out_count / (size_t)w->batch;
    int rows = w->rows[i];
    *in_off = (size_t)w->row0[i] * in_per, *out_off = (size_t)w->row0[i] * out_per;
    if (rows == w->batch) return r;
    r.in_count = (size_t)rows * in_per, r.out_count = (size_t)rows * out_per;
    switch (r.op) {
    case OP_CONV2D: r.u.conv.n = rows; break;
    case OP_MAXPOOL:
    case OP_AVGPOOL: r.u.pool.n = rows; break;
    case OP_BATCHNORM: r.u.bn.n = rows; break;
    case OP_LRN: r.u.lrn.n = rows; break;
    case OP_LINEAR: r.u.lin.n = rows; break;
    case OP_DROPOUT: r.u.drop.count = r.out_count; break;
    default: break;
    }
    return r;
}

/* argmax slots before layer i's first row */
static size_t argmax_offset(const NetworkWork *w, int i) {
    return (size_t)w->row0[i] * (maxpool2d_index_count(&w->run[i].u.pool) / (size_t)w->batch);
}

static const float *input_act(const Network *net, const NetworkWork *w, int i) {
    int in = net->arch.layers[i].input;
    return in < 0 ? w->input : w->act[in];
}

/* relu, maxpool and avgpool are independent per value or per plane: the
 * graph cuts them into sub-calls of the serial kernels over the pool, one
 * per worker, when each share has >= SPLIT_MIN input values (a hand-off
 * costs about what 10^4-10^5 values of such work do). */
#define SPLIT_MIN 65536

typedef struct {
    const LayerRun *r;
    bool backward;
    const float *x, *y, *dy; /* y: relu's output (its backward mask) */
    float *out;              /* y (forward) or dx (backward) */
    int32_t *argmax;
    bool spread_max; /* maxpool backward as avgpool's (BACKWARD_SPREAD_MAXPOOL) */
    ReluBackward relu_mode;
    size_t units; /* values (relu) or planes (pools) */
    int tasks;
} SplitJob;

static void split_part(const SplitJob *j, size_t lo, size_t hi) {
    const LayerRun *r = j->r;
    if (r->op == OP_RELU) {
        if (j->backward)
            relu_backward(j->out + lo, j->dy + lo, j->y + lo, hi - lo, j->relu_mode);
        else
            relu_forward(j->out + lo, j->x + lo, hi - lo);
        return;
    }
    Pool2d sub = r->u.pool;
    sub.n = 1, sub.c = (int)(hi - lo);
    const size_t ip = (size_t)sub.win.in_h * sub.win.in_w, op = (size_t)sub.win.out_h * sub.win.out_w;
    int32_t *am = j->argmax ? j->argmax + lo * op : NULL;
    bool max = r->op == OP_MAXPOOL;
    if (!j->backward && max)
        maxpool2d_forward(&sub, j->out + lo * op, am, j->x + lo * ip);
    else if (!j->backward)
        avgpool2d_forward(&sub, j->out + lo * op, j->x + lo * ip);
    else if (max && !j->spread_max)
        maxpool2d_backward(&sub, j->out + lo * ip, j->dy + lo * op, am, j->x + lo * ip);
    else /* an average pool, or a max-pool under BACKWARD_SPREAD_MAXPOOL */
        avgpool2d_backward(&sub, j->out + lo * ip, j->dy + lo * op);
}

static void split_task(void *ctx, int t, int worker) {
    (void)worker;
    const SplitJob *j = ctx;
    size_t align = j->r->op == OP_RELU ? 16 : 1; /* whole cache lines per share */
    size_t lo = j->units * (size_t)t / (size_t)j->tasks / align * align;
    size_t hi = t + 1 == j->tasks ? j->units : j->units * (size_t)(t + 1) / (size_t)j->tasks / align * align;
    if (lo < hi) split_part(j, lo, hi);
}

static void run_split(NetworkWork *w, SplitJob *j) {
    const LayerRun *r = j->r;
    j->units = r->op == OP_RELU ? r->out_count : (size_t)r->u.pool.n * (size_t)r->u.pool.c;
    size_t shares = r->in_count / SPLIT_MIN, workers = (size_t)pool_size(w->pool);
    j->tasks = (int)(shares < workers ? (shares ? shares : 1) : workers);
    pool_run(w->pool, split_task, j, j->tasks);
}

static void layer_forward(const Network *net, NetworkWork *w, int i) {
    const LayerSpec *l = &net->arch.layers[i];
    const LayerParams *p = &net->params[i];
    size_t in_off, out_off;
    LayerRun run = run_rows(w, i, &in_off, &out_off), *r = &run;
    if (l->op == OP_FLATTEN) { /* aliases the whole input, whatever the rows */
        w->act[i] = (float *)input_act(net, w, i);
        return;
    }
    if (w->rows[i] == 0) return;
    const float *x = input_act(net, w, i) + in_off;
    float *y = w->act[i] + out_off;
    switch (l->op) {
    case OP_CONV2D: conv2d_forward(&r->u.conv, y, x, p->weight, p->bias, w->scratch); break;
    case OP_RELU:
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        run_split(w, &(SplitJob){.r = r, .x = x, .out = y,
                                 .argmax = w->argmax[i] ? w->argmax[i] + argmax_offset(w, i) : NULL});
        break;
    case OP_BATCHNORM:
        if (w->training)
            batchnorm_train_forward(&r->u.bn, y, x, p->weight, p->bias, p->mean, p->var,
                                    w->save_mean[i], w->save_invstd[i]);
        else
            batchnorm_forward(&r->u.bn, y, x, p->weight, p->bias, p->mean, p->var);
        break;
    case OP_LRN: lrn_forward(&r->u.lrn, y, x); break;
    case OP_LINEAR: linear_forward(&r->u.lin, y, x, p->weight, p->bias); break;
    case OP_FLATTEN: break; /* above */
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

/* Gradients during a backward. Each layer's output gradient starts unset;
 * the first contribution is borrowed when it outlives the backward (a
 * caller's d_target, or the gradient an identity backward passes through),
 * later ones are added into the layer's own buffer. This saves a full copy
 * per target and per fake relu, flatten or inference dropout. */
static const float **dy_slot(NetworkWork *w, int layer) {
    return layer < 0 ? &w->d_input_at : &w->dy[layer];
}

static float *own_grad(NetworkWork *w, int layer) {
    return layer < 0 ? w->d_input : w->grad[layer];
}

/* Adds src (borrowed if it is the first contribution) to layer's gradient. */
static void grad_add(NetworkWork *w, int layer, const float *src, size_t count) {
    const float **slot = dy_slot(w, layer);
    float *own = own_grad(w, layer);
    if (!*slot) {
        *slot = src;
        return;
    }
    if (*slot != own) memcpy(own, *slot, count * sizeof(float));
    layers_add(own, src, count);
    *slot = own;
}

/* Where a layer writes the gradient of its input `in`: straight into the
 * input's own buffer unless that already holds a sum (then grad_tmp). */
static float *dx_destination(NetworkWork *w, int in) {
    return *dy_slot(w, in) == own_grad(w, in) ? w->grad_tmp : own_grad(w, in);
}

/* Records dx (from dx_destination; values [off, off + part) written, of
 * count) as a contribution to in's gradient. A routed layer writes only its
 * rows; where it is the first contribution to a wider input, the other rows
 * are zeroed here. */
static void dx_commit(NetworkWork *w, int in, float *dx, size_t off, size_t part, size_t count) {
    const float **slot = dy_slot(w, in);
    float *own = own_grad(w, in);
    if (dx != own) {
        layers_add(own + off, dx + off, part); /* grad_tmp onto an existing sum */
    } else { /* in's own rows [lo, hi) hold [off, off + part) */
        size_t per = count / (size_t)w->batch;
        size_t lo = in < 0 ? 0 : (size_t)w->row0[in] * per;
        size_t hi = in < 0 ? count : lo + (size_t)w->rows[in] * per;
        memset(own + lo, 0, (off - lo) * sizeof *own);
        memset(own + off + part, 0, (hi - off - part) * sizeof *own);
        if (*slot) layers_add(own + lo, *slot + lo, hi - lo); /* onto a borrowed gradient */
    }
    *slot = own;
}

/* Backward of an identity layer: its gradient is its input's, uncopied. */
static bool is_identity_backward(const NetworkWork *w, LayerOp op, ReluBackward relu_mode) {
    return (op == OP_RELU && relu_mode == RELU_BACKWARD_FAKE) || op == OP_FLATTEN || (op == OP_DROPOUT && !w->training);
}

/* The gradient of layer i's input on its rows (r: run_rows, offsets in_off
 * and out_off) into dx from dy, both offset to the layer's first row. */
static void backward_op(const Network *net, NetworkWork *w, int i, const LayerRun *r,
                        size_t in_off, size_t out_off, float *dx, const float *dy,
                        ReluBackward relu_mode, bool spread_max, float *d_params) {
    const LayerParams *p = &net->params[i];
    const float *x = input_act(net, w, i) + in_off;
    float *dw = d_params && p->weight ? d_params + p->offset : NULL;
    float *db = d_params && p->bias ? d_params + p->offset + p->n_weight : NULL;
    switch (r->op) {
    case OP_CONV2D: conv2d_backward(&r->u.conv, dx, dw, db, dy, x, p->weight, w->scratch); break;
    case OP_RELU:
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        run_split(w, &(SplitJob){.r = r, .backward = true, .x = x, .y = w->act[i] + out_off,
                                 .dy = dy, .out = dx,
                                 .argmax = w->argmax[i] ? w->argmax[i] + argmax_offset(w, i) : NULL,
                                 .spread_max = spread_max, .relu_mode = relu_mode});
        break;
    case OP_BATCHNORM:
        if (w->training)
            batchnorm_train_backward(&r->u.bn, dx, dw, db, dy, x, p->weight, w->save_mean[i],
                                     w->save_invstd[i]);
        else
            batchnorm_backward(&r->u.bn, dx, dw, db, dy, x, p->weight, p->mean, p->var);
        break;
    case OP_LRN: lrn_backward(&r->u.lrn, dx, dy, x, w->scratch); break;
    case OP_LINEAR: linear_backward(&r->u.lin, dx, dw, db, dy, x, p->weight); break;
    case OP_DROPOUT: dropout_backward(&r->u.drop, dx, dy, w->seed[i]); break;
    case OP_FLATTEN: memcpy(dx, dy, r->in_count * sizeof *dx); break; /* narrower than its input */
    }
}

/* relu_mode: this layer's, if it is a relu (fake for a target under
 * BACKWARD_FAKE_RELU). */
static void layer_backward(const Network *net, NetworkWork *w, int i, ReluBackward relu_mode,
                           bool spread_max, float *d_params) {
    const int in = net->arch.layers[i].input;
    const size_t in_count = w->run[i].in_count;
    size_t in_off, out_off;
    LayerRun r = run_rows(w, i, &in_off, &out_off);
    bool narrower = in >= 0 ? w->rows[i] != w->rows[in] : w->rows[i] != w->batch;
    if (is_identity_backward(w, r.op, relu_mode)) {
        if (!narrower) { /* the same rows: passed on uncopied */
            grad_add(w, in, w->dy[i], in_count);
            return;
        }
        r.op = OP_FLATTEN; /* a copy of its rows */
    }
    float *dx = dx_destination(w, in);
    backward_op(net, w, i, &r, in_off, out_off, dx + in_off, w->dy[i] + out_off, relu_mode,
                spread_max, d_params);
    dx_commit(w, in, dx, in_off, r.in_count, in_count);
}

static bool is_target(const int *targets, int n_targets, int i) {
    for (int k = 0; k < n_targets; k++)
        if (targets[k] == i) return true;
    return false;
}

const float *network_backward(const Network *net, NetworkWork *w, const int *targets,
                              const float *const *d_targets, int n_targets, unsigned surrogates,
                              float *d_params) {
    memset(w->dy, 0, (size_t)w->n_layers * sizeof *w->dy);
    w->d_input_at = NULL;
    for (int k = 0; k < n_targets; k++)
        grad_add(w, targets[k], d_targets[k],
                 (size_t)w->batch * architecture_stage_numel(&net->arch, targets[k]));
    for (int i = w->n_layers - 1; i >= 0; i--) {
        if (!w->needed[i] || !w->dy[i] || w->rows[i] == 0) continue;
        ReluBackward relu_mode = RELU_BACKWARD_EXACT;
        if ((surrogates & BACKWARD_FAKE_RELU) && is_target(targets, n_targets, i))
            relu_mode = RELU_BACKWARD_FAKE;
        else if (surrogates & BACKWARD_REVIVE_RELU)
            relu_mode = RELU_BACKWARD_REVIVE;
        layer_backward(net, w, i, relu_mode, surrogates & BACKWARD_SPREAD_MAXPOOL, d_params);
    }
    /* The result is always w's own buffer, whatever it borrowed. */
    size_t n_in = (size_t)w->batch * architecture_stage_numel(&net->arch, -1);
    if (!w->d_input_at)
        memset(w->d_input, 0, n_in * sizeof(float));
    else if (w->d_input_at != w->d_input)
        memcpy(w->d_input, w->d_input_at, n_in * sizeof(float));
    return w->d_input;
}
