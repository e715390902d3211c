/* Shared by the layer tests: random and zeroed buffers and the central
 * finite-difference check (the method and its tolerance: test_layers.c). */
#ifndef LAYERS_FIXTURE_H
#define LAYERS_FIXTURE_H

#include <stddef.h>

#include "../core/core.h"
#include "test.h"

#define FD_TOL 1e-3

float *rnd(Rng *r, size_t n, float lo, float hi);
float *zeros(size_t n);
/* Scratch of exactly the reported size with plain malloc (no rounding up
 * to a cache line), so ASan sees any overrun of *_scratch_floats. */
float *exact(size_t n);
double dot_d(const float *a, const float *b, size_t n);

typedef double (*LossFn)(void *ctx);

/* Compares analytic[i] with the central difference of f w.r.t. v[i] (all
 * components of small tensors, an evenly spread 400 of larger ones). */
void fd_check(TestCtx *t, LossFn f, void *ctx, float *v, size_t n, const float *analytic,
              float h, double tol, const char *what);

#endif
