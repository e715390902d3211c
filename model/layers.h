/* layers: the network engine's layer library (internal to the model module).
 *
 * Style (llm.c): each layer type is a plain struct of sizes, and a set of
 * functions taking raw float pointers. No hidden global state, no allocation,
 * no I/O: everything a call needs is passed in. The graph (model/network*.c)
 * owns activations, gradients and scratch memory and decides the order.
 *
 * Conventions shared by every layer
 * ---------------------------------
 * - Tensors are float32, NCHW, contiguous: x[((n*C + c)*H + h)*W + w].
 *   Flat features (linear, softmax) are [N, F] row-major. Flatten is a no-op
 *   in memory: an NCHW tensor read as [N, C*H*W] is already in PyTorch's
 *   x.flatten(1) (C, H, W) order, so the graph just reuses the pointer.
 * - Parameters use PyTorch layouts: conv weight [out, in, kh, kw], linear
 *   weight [out, in], bias [out]; batchnorm gamma/beta/mean/var [C].
 * - Forward overwrites its output. Outputs must not alias inputs, except for
 *   the elementwise layers (relu, batchnorm inference, dropout) where y == x
 *   is allowed (in place).
 * - Backward OVERWRITES the input gradient dx and ACCUMULATES (+=) parameter
 *   gradients (dweight, dbias, dgamma, dbeta), so gradients of several
 *   examples or calls add up; zero them when starting an accumulation.
 *   Any gradient pointer may be NULL: that gradient is not computed (and its
 *   cost is not paid). Where a layer has several consumers, the graph adds
 *   their input gradients (layers_add). Elementwise backward may run in place
 *   (dx == dy); other layers need dx distinct from dy.
 * - Layers that need temporary memory take `scratch`, of at least
 *   *_scratch_floats(L) floats (64-byte aligned, e.g. from alloc_floats).
 *   Scratch holds nothing between calls: one buffer of the maximum size over
 *   all layers can serve every layer of a network (one per thread).
 * - Functions are reentrant: different threads may run layers concurrently
 *   on different scratch/output buffers. Large matrix products go through
 *   cblas_sgemm. conv2d can split its work over a worker pool (Conv2d.pool);
 *   it does so only while OpenBLAS runs one thread, else OpenBLAS threads
 *   the products itself (two thread systems on two cores only fight).
 *
 * Spatial windows (conv2d, maxpool, avgpool)
 * ------------------------------------------
 * A window is described per dimension by (in, k, s, pad_before, out): output
 * o reads input rows o*s - pad_before ... o*s - pad_before + k - 1; indices
 * outside [0, in) are padding (zeros for conv and avgpool, -inf for maxpool).
 * The padding after follows from `out` and is not stored. window_size()
 * computes out and pad_before for TF "SAME" (pad total = max((ceil(in/s)-1)*s
 * + k - in, 0), the floor half before), "valid" (pad 0) and explicit
 * symmetric padding, matching model/arch.c.
 */
#ifndef MODEL_LAYERS_H
#define MODEL_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Pool Pool; /* core/core.h */

/* ------------------------------------------------------------- geometry */

#define PAD_SAME (-1) /* window_size's pad argument: TF "SAME" */

/* One spatial dimension: returns the output size and sets *pad_before, or
 * returns 0 if the (padded) input is smaller than the kernel or an argument
 * is invalid. pad: PAD_SAME, or >= 0 explicit zeros on both sides ("valid"
 * is 0). */
int window_size(int in, int k, int s, int pad, int *pad_before);

typedef struct {
    int in_h, in_w;   /* input plane */
    int out_h, out_w; /* output plane */
    int kh, kw;       /* kernel */
    int sh, sw;       /* stride */
    int pad_t, pad_l; /* padding before (top, left) */
} Window2d;

/* Fills w for the given input, kernel, stride and padding (PAD_SAME or
 * explicit per dimension). Returns 0, or -1 if window_size fails. */
int window2d_init(Window2d *w, int in_h, int in_w, int kh, int kw, int sh, int sw,
                  int pad_h, int pad_w);
/* true if every field is in range (positive sizes, 0 <= pad < kernel, every
 * output window overlaps the input). For structs filled by hand. */
bool window2d_valid(const Window2d *w);

/* --------------------------------------------------------------- conv2d */

/* y[n, out_c, out_h, out_w] = conv(x[n, in_c, in_h, in_w], weight) + bias.
 * Implementation: per example, a strided/padded im2col into scratch (the
 * padding and the width stride are resolved once per input plane, so every
 * column row is a contiguous copy), then one sgemm [out_c x K] x [K x P]
 * with K = in_c*kh*kw, P = out_h*out_w. A 1x1 stride-1 unpadded conv skips
 * im2col. Backward: dcol = W^T dY (sgemm) then col2im; dW += dY col^T.
 * With a pool of several workers and OpenBLAS at one thread, the sgemms
 * and the im2col/col2im around them are cut into one task per worker
 * (model/conv.c says how); every output is the same dot product either
 * way, so results do not depend on the pool. */
typedef struct {
    int n;            /* batch */
    int in_c, out_c;  /* channels */
    Window2d win;
    Pool *pool;       /* borrowed; NULL: the calling thread (scratch depends on it) */
} Conv2d;

size_t conv2d_scratch_floats(const Conv2d *L);
/* bias may be NULL (no bias). */
void conv2d_forward(const Conv2d *L, float *y, const float *x, const float *weight,
                    const float *bias, float *scratch);
/* dx = dL/dx (overwritten); dweight += dL/dW, dbias += dL/db. Any of the
 * three may be NULL. x is only read when dweight != NULL (may be NULL
 * otherwise); weight only when dx != NULL. */
void conv2d_backward(const Conv2d *L, float *dx, float *dweight, float *dbias,
                     const float *dy, const float *x, const float *weight, float *scratch);

/* ---------------------------------------------------------------- relu */

/* y = max(x, 0); y == x allowed. (NaN stays NaN, like PyTorch.) */
void relu_forward(float *y, const float *x, size_t count);
/* How relu_backward treats units with x <= 0. */
typedef enum {
    RELU_BACKWARD_EXACT,  /* dx = 0 there (PyTorch's gradient) */
    RELU_BACKWARD_FAKE,   /* dx = dy everywhere: Feather 2023's "fake ReLU" */
    RELU_BACKWARD_REVIVE, /* dx = RELU_REVIVE_SLOPE * dy where dy < 0 (the
                           * direction that would raise x), else 0 */
} ReluBackward;
/* Small, so a revived unit's surrogate push stays a nudge next to the live
 * units' exact gradient. */
#define RELU_REVIVE_SLOPE 0.1f

/* dx = dy where x > 0; where x <= 0 as mode says. x may be the forward input
 * or output: both give the same mask (NULL for RELU_BACKWARD_FAKE). dx == dy
 * allowed. */
void relu_backward(float *dx, const float *dy, const float *x, size_t count, ReluBackward mode);

/* --------------------------------------------------------------- pools */

typedef struct {
    int n, c; /* batch, channels */
    Window2d win;
} Pool2d;

/* Number of int32 argmax slots maxpool2d_forward can fill: n*c*out_h*out_w. */
size_t maxpool2d_index_count(const Pool2d *L);
/* Max over each window; padding is -inf (never wins). argmax may be NULL; if
 * given, it receives for every output the index h*in_w + w (within its input
 * plane) of the first maximum in row-major window order (PyTorch's choice on
 * ties; a NaN wins and propagates; a window of only -inf gives its first
 * element). Indices always point inside the input plane. */
void maxpool2d_forward(const Pool2d *L, float *y, int32_t *argmax, const float *x);
/* dx (overwritten) receives each dy at its window's argmax. Uses argmax from
 * the forward if non-NULL, else recomputes it from x. */
void maxpool2d_backward(const Pool2d *L, float *dx, const float *dy, const int32_t *argmax,
                        const float *x);

/* Mean over each window with zero padding counted in the divisor
 * (count_include_pad=true): every output divides by kh*kw. */
void avgpool2d_forward(const Pool2d *L, float *y, const float *x);
void avgpool2d_backward(const Pool2d *L, float *dx, const float *dy);

/* ----------------------------------------------------------- batchnorm */

/* Per-channel normalization of x[n, c, hw] (hw = H*W; 1 for flat [N, C]).
 * gamma and beta may be NULL (affine=False: 1 and 0). */
typedef struct {
    int n, c, hw;
    float eps;      /* PyTorch default 1e-5 */
    float momentum; /* training: running = (1-m) running + m batch; default 0.1 */
} BatchNorm;

/* Inference: y = (x - mean) / sqrt(var + eps) * gamma + beta. y == x allowed. */
void batchnorm_forward(const BatchNorm *L, float *y, const float *x, const float *gamma,
                       const float *beta, const float *mean, const float *var);
/* Inference backward: dx = dy * gamma / sqrt(var + eps) (dx == dy allowed);
 * dgamma += sum dy * xhat; dbeta += sum dy. x is read only for dgamma. */
void batchnorm_backward(const BatchNorm *L, float *dx, float *dgamma, float *dbeta,
                        const float *dy, const float *x, const float *gamma, const float *mean,
                        const float *var);
/* Training: normalizes with the batch statistics over (n, hw) (biased
 * variance), writes save_mean[c] and save_invstd[c] = 1/sqrt(var_b + eps)
 * for the backward, and if running_mean/running_var are non-NULL updates
 * them with momentum, using the unbiased variance (as PyTorch). y == x allowed. */
void batchnorm_train_forward(const BatchNorm *L, float *y, const float *x, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             float *save_mean, float *save_invstd);
/* Exact gradient through the batch statistics. dx must not alias dy. */
void batchnorm_train_backward(const BatchNorm *L, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *gamma,
                              const float *save_mean, const float *save_invstd);

/* ------------------------------------------------ local response norm */

/* TensorFlow's tf.nn.local_response_normalization over channels (Kell 2018):
 *   y[c] = x[c] / (bias + alpha * sum_{c'=c-r..c+r, in range} x[c']^2)^beta
 * (alpha is NOT divided by the window size, unlike torch's LocalResponseNorm). */
typedef struct {
    int n, c, hw;
    int radius; /* depth_radius r */
    float bias, alpha, beta;
} Lrn;

/* Scratch for lrn_backward (the forward needs none). */
size_t lrn_scratch_floats(const Lrn *L);
/* y must not alias x. */
void lrn_forward(const Lrn *L, float *y, const float *x);
/* Exact gradient; recomputes what it needs from x. dx must not alias dy or x. */
void lrn_backward(const Lrn *L, float *dx, const float *dy, const float *x, float *scratch);

/* -------------------------------------------------------------- linear */

/* y[n, out] = x[n, in] W^T + b with W [out, in] (sgemv for n == 1). With a
 * pool and OpenBLAS at one thread, large products are cut into ranges of
 * outputs (forward, dweight) or of inputs (dx) at multiples of 64, one serial
 * BLAS call each: the same kernels sum in the same order, so results do not
 * depend on the pool. */
typedef struct {
    int n, in, out;
    Pool *pool; /* borrowed; NULL: the calling thread */
} Linear;

/* bias may be NULL. */
void linear_forward(const Linear *L, float *y, const float *x, const float *weight,
                    const float *bias);
/* dx = dy W (overwritten); dweight += dy^T x; dbias += sum_n dy. */
void linear_backward(const Linear *L, float *dx, float *dweight, float *dbias, const float *dy,
                     const float *x, const float *weight);

/* ------------------------------------------------------------- dropout */

/* Inverted dropout, training only (at inference the graph skips the layer:
 * identity). Each element is kept with probability 1-p and scaled by 1/(1-p);
 * the keep mask is a pure function of (seed, element index), so backward
 * regenerates it from the same seed and no mask is stored. The caller draws a
 * fresh seed per step (e.g. rng_next) to get a new mask. */
typedef struct {
    size_t count; /* elements over the whole batch */
    float p;      /* drop probability in [0, 1] */
} Dropout;

void dropout_forward(const Dropout *L, float *y, const float *x, uint64_t seed); /* y==x ok */
void dropout_backward(const Dropout *L, float *dx, const float *dy, uint64_t seed); /* dx==dy ok */

/* ------------------------------------------------- softmax cross-entropy */

/* loss = mean over examples with label >= 0 of -log softmax(logits)[label]
 * (labels must be < classes);
 * examples with a negative label are ignored (PyTorch's ignore_index). */
typedef struct {
    int n, classes;
} SoftmaxXent;

/* Returns the mean loss (0 if no example has a label). Log-sum-exp in double. */
float softmax_xent_forward(const SoftmaxXent *L, const float *logits, const int32_t *labels);
/* dlogits = dloss * (softmax(logits) - onehot(label)) / n_labelled; rows
 * with a negative label get 0. Overwrites dlogits. */
void softmax_xent_backward(const SoftmaxXent *L, float *dlogits, const float *logits,
                           const int32_t *labels, float dloss);

/* ------------------------------------------------------------- helpers */

/* dst += src (for gradients of layers with several consumers). */
void layers_add(float *dst, const float *src, size_t count);

/* Internal (conv.c, layers.c): workers a layer may cut its BLAS work over:
 * pool_size(pool) while OpenBLAS runs one thread, else 1. */
int layers_workers(const Pool *pool);
/* Internal: tasks for a product of `work` multiply-adds: one per worker while
 * each keeps >= 2^22. Smaller shares are not worth a hand-off, and OpenBLAS
 * runs small products through other kernels that round differently, so
 * cutting those would change the result. */
int layers_tasks(const Pool *pool, double work);
/* Internal: task t of `tasks` gets [*lo, *hi) of [0, n), cut at multiples
 * of align. */
void layers_split_range(int n, int align, int tasks, int t, int *lo, int *hi);

/* Internal (conv.c, pool.c): splits a row into its stride phases.
 * d[q*wq + j] = row[first + q + j*sw] for q < sw, j < wq where that index is
 * inside [0, n), else pad. */
void layers_split_phases(float *d, const float *row, int n, int first, int sw, int wq, float pad);

#endif
