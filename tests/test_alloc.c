/* "No allocation inside the step loop", measured: this test binary wraps the
 * C allocator and counts calls made from the program's own code while a
 * synthesis-like step runs (cochleagram forward, network forward, backward
 * with the fake relu, cochleagram backward). Calls from shared libraries are
 * not ours to remove: OpenBLAS 0.3.21's threaded sgemm mallocs a small job
 * array per call, which the count reports separately. Not under
 * AddressSanitizer, which owns malloc. */
#include <stdatomic.h>
#include <stddef.h>

#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

#ifndef SANITIZED
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

extern char __executable_start, etext; /* the program's own code (linker symbols) */

static atomic_int counting, n_allocs, n_library_allocs;

static void count(const void *caller) {
    if (!atomic_load(&counting)) return;
    const char *c = caller;
    atomic_fetch_add(c >= &__executable_start && c < &etext ? &n_allocs : &n_library_allocs, 1);
}

#define CALLER __builtin_return_address(0)
void *malloc(size_t n) { return count(CALLER), __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return count(CALLER), __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return count(CALLER), __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { return count(CALLER), __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { return count(CALLER), __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    count(CALLER);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12; /* ENOMEM */
}

TEST(alloc_none_in_synthesis_step) {
    Network net;
    Error err = {0};
    REQUIRE(t, network_open(&net, "builtin:cochcnn9-small", &err) == 0, "%s", err.msg);
    Pool *pool = pool_create(2);
    ModelRun m;
    REQUIRE(t, model_run_init(&m, &net, pool, &err) == 0, "%s", err.msg);
    int n = model_run_samples(&m), stage = network_stage_index(&net, "relu4", &err);
    float *wave = alloc_floats((size_t)n), *grad = alloc_floats((size_t)n);
    float *cot = alloc_floats((size_t)model_stage_numel(&m, stage));
    Rng r;
    rng_seed(&r, 2);
    for (int i = 0; i < n; i++) wave[i] = (float)(0.1 * rng_normal(&r));
    for (int64_t i = 0; i < model_stage_numel(&m, stage); i++) cot[i] = (float)rng_normal(&r);
    const float *cots[1] = {cot};
    for (int step = 0; step < 4; step++) {
        atomic_store(&counting, step > 0); /* the first step may warm up libraries */
        model_forward(&m, wave, &stage, 1);
        model_backward(&m, &stage, cots, 1, BACKWARD_FAKE_RELU, grad);
        atomic_store(&counting, 0);
    }
    CHECK(t, atomic_load(&n_allocs) == 0, "%d allocations in 3 steps", atomic_load(&n_allocs));
    printf("    3 steps: %d allocations by the program, %d inside shared libraries (OpenBLAS)\n",
           atomic_load(&n_allocs), atomic_load(&n_library_allocs));
    free(wave), free(grad), free(cot);
    model_run_free(&m);
    pool_free(pool);
    network_free(&net);
}
#endif
