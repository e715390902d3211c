/* Layer library benchmarks on CochCNN9 (Feather 2023) at batch 1 on a
 * 211 x 390 cochleagram, random weights:
 *   - each conv layer: forward and input-gradient ms (median of 10), GFLOP/s
 *   - the pools at their real shapes
 *   - forward + input gradient from relu4 back to the cochleagram, the work
 *     of one metamer step at relu4 (target ~51 ms; PyTorch/oneDNN ~41 ms). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "../model/layers.h"
#include "bench.h"

#define REPS 10

static float *rand_floats(Rng *r, size_t n, float scale) {
    float *p = alloc_floats(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)(2 * rng_uniform(r) - 1);
    return p;
}

/* CochCNN9's trunk up to relu4 as a layer chain. */
typedef enum { K_BN, K_CONV, K_RELU, K_MAX } Kind;
typedef struct {
    const char *name;
    Kind kind;
    int out, kh, kw, s;
} ChainLayer;

static const ChainLayer chain[] = {
    {"bn0", K_BN, 0, 0, 0, 0},       {"conv0", K_CONV, 96, 7, 14, 3}, {"relu0", K_RELU, 0, 0, 0, 0},
    {"maxpool0", K_MAX, 0, 2, 5, 2}, {"bn1", K_BN, 0, 0, 0, 0},       {"conv1", K_CONV, 256, 4, 8, 2},
    {"relu1", K_RELU, 0, 0, 0, 0},   {"maxpool1", K_MAX, 0, 2, 5, 2}, {"bn2", K_BN, 0, 0, 0, 0},
    {"conv2", K_CONV, 512, 2, 5, 1}, {"relu2", K_RELU, 0, 0, 0, 0},   {"conv3", K_CONV, 1024, 2, 5, 1},
    {"relu3", K_RELU, 0, 0, 0, 0},   {"conv4", K_CONV, 512, 2, 5, 1}, {"relu4", K_RELU, 0, 0, 0, 0},
};
#define N_CHAIN ((int)(sizeof chain / sizeof chain[0]))

typedef struct {
    Conv2d conv;
    Pool2d pool;
    BatchNorm bn;
    size_t in_n, out_n;
    float *w, *b, *mean, *var, *y;
    int32_t *argmax;
} Stage;

typedef struct {
    Stage st[N_CHAIN];
    float *input, *scratch, *g0, *g1, *d_input, *cot;
    size_t max_act;
} Net;

static void net_build(Net *net, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    int c = 1, h = 211, w = 390;
    size_t scratch = 0;
    net->max_act = (size_t)c * h * w;
    net->input = rand_floats(&r, net->max_act, 1.0f);
    for (int i = 0; i < N_CHAIN; i++) {
        const ChainLayer *l = &chain[i];
        Stage *s = &net->st[i];
        memset(s, 0, sizeof *s);
        s->in_n = (size_t)c * h * w;
        switch (l->kind) {
        case K_BN:
            s->bn = (BatchNorm){1, c, h * w, 1e-5f, 0.1f};
            s->w = rand_floats(&r, (size_t)c, 1), s->b = rand_floats(&r, (size_t)c, 1);
            s->mean = rand_floats(&r, (size_t)c, 1), s->var = rand_floats(&r, (size_t)c, 1);
            for (int k = 0; k < c; k++) s->var[k] = 1.5f + s->var[k];
            break;
        case K_CONV: {
            s->conv = (Conv2d){1, c, l->out, {0}, NULL};
            window2d_init(&s->conv.win, h, w, l->kh, l->kw, l->s, l->s, PAD_SAME, PAD_SAME);
            size_t nw = (size_t)l->out * c * l->kh * l->kw;
            s->w = rand_floats(&r, nw, 1.0f / (float)(c * l->kh * l->kw));
            s->b = rand_floats(&r, (size_t)l->out, 0.1f);
            size_t sf = conv2d_scratch_floats(&s->conv);
            scratch = sf > scratch ? sf : scratch;
            c = l->out, h = s->conv.win.out_h, w = s->conv.win.out_w;
            break;
        }
        case K_MAX:
            s->pool = (Pool2d){1, c, {0}};
            window2d_init(&s->pool.win, h, w, l->kh, l->kw, l->s, l->s, PAD_SAME, PAD_SAME);
            s->argmax = xmalloc(maxpool2d_index_count(&s->pool) * sizeof(int32_t));
            h = s->pool.win.out_h, w = s->pool.win.out_w;
            break;
        case K_RELU:
            break;
        }
        s->out_n = (size_t)c * h * w;
        s->y = alloc_floats(s->out_n);
        if (s->out_n > net->max_act) net->max_act = s->out_n;
    }
    net->scratch = alloc_floats(scratch);
    net->g0 = alloc_floats(net->max_act);
    net->g1 = alloc_floats(net->max_act);
    net->d_input = alloc_floats((size_t)211 * 390);
    net->cot = rand_floats(&r, net->st[N_CHAIN - 1].out_n, 1.0f);
}

static void net_free(Net *net) {
    for (int i = 0; i < N_CHAIN; i++) {
        Stage *s = &net->st[i];
        free(s->w), free(s->b), free(s->mean), free(s->var), free(s->y), free(s->argmax);
    }
    free(net->input), free(net->scratch), free(net->g0), free(net->g1), free(net->d_input);
    free(net->cot);
}

static void stage_forward(Net *net, int i) {
    Stage *s = &net->st[i];
    const float *x = i ? net->st[i - 1].y : net->input;
    switch (chain[i].kind) {
    case K_BN: batchnorm_forward(&s->bn, s->y, x, s->w, s->b, s->mean, s->var); break;
    case K_CONV: conv2d_forward(&s->conv, s->y, x, s->w, s->b, net->scratch); break;
    case K_RELU: relu_forward(s->y, x, s->out_n); break;
    case K_MAX: maxpool2d_forward(&s->pool, s->y, s->argmax, x); break;
    }
}

static void stage_backward(Net *net, int i, float *dx, const float *dy) {
    Stage *s = &net->st[i];
    const float *x = i ? net->st[i - 1].y : net->input;
    switch (chain[i].kind) {
    case K_BN: batchnorm_backward(&s->bn, dx, NULL, NULL, dy, x, s->w, s->mean, s->var); break;
    case K_CONV: conv2d_backward(&s->conv, dx, NULL, NULL, dy, x, s->w, net->scratch); break;
    case K_RELU: relu_backward(dx, dy, x, s->out_n, false); break;
    case K_MAX: maxpool2d_backward(&s->pool, dx, dy, s->argmax, NULL); break;
    }
}

/* forward through relu4, then d cochleagram from a cotangent at relu4
 * (gradients ping-pong between g0 and g1). */
static void net_step(Net *net) {
    for (int i = 0; i < N_CHAIN; i++) stage_forward(net, i);
    const float *dy = net->cot;
    float *bufs[2] = {net->g0, net->g1};
    for (int i = N_CHAIN - 1, k = 0; i >= 0; i--, k ^= 1) {
        float *out = i ? bufs[k] : net->d_input;
        stage_backward(net, i, out, dy);
        dy = out;
    }
}

static double conv_macs(const Conv2d *c) {
    return (double)c->out_c * c->win.out_h * c->win.out_w * c->in_c * c->win.kh * c->win.kw;
}

typedef struct {
    double median, min;
} Timing;

static Timing timing(double *t, int n) {
    double m = t[0];
    for (int i = 1; i < n; i++) m = t[i] < m ? t[i] : m;
    return (Timing){bench_median(t, n), m};
}

static void report(const char *what, Timing t, double flops) {
    char note[96];
    if (flops > 0)
        snprintf(note, sizeof note, "%4.0f GFLOP/s  (min %.2f ms)", flops / t.median * 1e-9,
                 t.min * 1e3);
    else
        snprintf(note, sizeof note, "(min %.2f ms)", t.min * 1e3);
    bench_report(what, t.median * 1e3, "ms", note);
}

/* Per conv layer: the layer's forward and input gradient, and the bare
 * sgemm of each (same shapes, same buffers) to show the im2col/col2im
 * overhead separately from OpenBLAS. */
BENCH(layers_cochcnn9_convs) {
    Net net;
    net_build(&net, 1);
    for (int i = 0; i < N_CHAIN; i++) stage_forward(&net, i); /* real inputs for each layer */
    float *dx = alloc_floats(net.max_act), *dy = alloc_floats(net.max_act);
    Rng r;
    rng_seed(&r, 3);
    for (size_t k = 0; k < net.max_act; k++) dy[k] = (float)(2 * rng_uniform(&r) - 1);
    double tot_layer = 0, tot_gemm = 0, flops_total = 0;
    for (int i = 0; i < N_CHAIN; i++) {
        if (chain[i].kind != K_CONV) continue;
        Stage *s = &net.st[i];
        const Conv2d *L = &s->conv;
        const float *x = i ? net.st[i - 1].y : net.input;
        const int K = L->in_c * L->win.kh * L->win.kw, P = L->win.out_h * L->win.out_w;
        float *col = net.scratch + conv2d_scratch_floats(L) - (size_t)K * P;
        double t[4][REPS];
        conv2d_forward(L, s->y, x, s->w, s->b, net.scratch); /* warm */
        conv2d_backward(L, dx, NULL, NULL, dy, x, s->w, net.scratch);
        for (int k = 0; k < REPS; k++) {
            double t0 = now_seconds();
            conv2d_forward(L, s->y, x, s->w, s->b, net.scratch);
            double t1 = now_seconds();
            conv2d_backward(L, dx, NULL, NULL, dy, x, s->w, net.scratch);
            double t2 = now_seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->out_c, P, K, 1.0f, s->w, K,
                        col, P, 0.0f, s->y, P);
            double t3 = now_seconds();
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, L->out_c, 1.0f, s->w, K, dy,
                        P, 0.0f, col, P);
            double t4 = now_seconds();
            t[0][k] = t1 - t0, t[1][k] = t2 - t1, t[2][k] = t3 - t2, t[3][k] = t4 - t3;
        }
        Timing tf = timing(t[0], REPS), tb = timing(t[1], REPS), gf = timing(t[2], REPS),
               gb = timing(t[3], REPS);
        double fl = 2 * conv_macs(L);
        char what[96];
        const Window2d *w = &L->win;
        snprintf(what, sizeof what, "%s %dx%dx%d -> %d [%dx%d]/%d forward", chain[i].name,
                 L->in_c, w->in_h, w->in_w, L->out_c, w->kh, w->kw, w->sh);
        report(what, tf, fl);
        snprintf(what, sizeof what, "%s input gradient", chain[i].name);
        report(what, tb, fl);
        snprintf(what, sizeof what, "%s   sgemm alone, forward %dx%dx%d", chain[i].name, L->out_c,
                 P, K);
        report(what, gf, fl);
        snprintf(what, sizeof what, "%s   sgemm alone, input gradient", chain[i].name);
        report(what, gb, fl);
        tot_layer += tf.median + tb.median, tot_gemm += gf.median + gb.median;
        flops_total += 2 * fl;
    }
    Timing tl = {tot_layer, tot_layer}, tg = {tot_gemm, tot_gemm};
    report("sum of conv medians (forward + input gradient)", tl, flops_total);
    report("sum of bare sgemm medians", tg, flops_total);
    free(dx), free(dy);
    net_free(&net);
}

/* The non-conv layers of the chain at their real shapes. */
BENCH(layers_cochcnn9_other) {
    Net net;
    net_build(&net, 2);
    for (int i = 0; i < N_CHAIN; i++) stage_forward(&net, i);
    float *d = alloc_floats(net.max_act);
    double sum = 0;
    for (int i = 0; i < N_CHAIN; i++) {
        if (chain[i].kind == K_CONV) continue;
        double tf[REPS], tb[REPS];
        for (int k = 0; k < REPS; k++) {
            double t0 = now_seconds();
            stage_forward(&net, i);
            tf[k] = now_seconds() - t0;
            t0 = now_seconds();
            stage_backward(&net, i, d, net.st[i].y);
            tb[k] = now_seconds() - t0;
        }
        char what[96];
        snprintf(what, sizeof what, "%s forward (%zu -> %zu values)", chain[i].name,
                 net.st[i].in_n, net.st[i].out_n);
        Timing a = timing(tf, REPS), b = timing(tb, REPS);
        report(what, a, 0);
        snprintf(what, sizeof what, "%s backward", chain[i].name);
        report(what, b, 0);
        sum += a.median + b.median;
    }
    report("sum of non-conv layers", (Timing){sum, sum}, 0);
    free(d);
    net_free(&net);
}

BENCH(layers_cochcnn9_step_relu4) {
    Net net;
    net_build(&net, 4);
    double ts[REPS], tf[REPS];
    net_step(&net); /* warm */
    for (int k = 0; k < REPS; k++) {
        double t0 = now_seconds();
        for (int i = 0; i < N_CHAIN; i++) stage_forward(&net, i);
        tf[k] = now_seconds() - t0;
    }
    for (int k = 0; k < REPS; k++) {
        double t0 = now_seconds();
        net_step(&net);
        ts[k] = now_seconds() - t0;
    }
    double fl = 0;
    for (int i = 0; i < N_CHAIN; i++)
        if (chain[i].kind == K_CONV) fl += 2 * conv_macs(&net.st[i].conv);
    report("cochcnn9 forward to relu4", timing(tf, REPS), fl);
    report("cochcnn9 forward + input gradient from relu4", timing(ts, REPS), 2 * fl);
    printf("  (target ~51 ms; PyTorch/oneDNN 41 ms; OpenBLAS core %s)\n", blas_core_name());
    net_free(&net);
}
