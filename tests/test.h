/* Minimal test harness. A test is
 *     TEST(name) { CHECK(t, cond, "what %d", x); ... }
 * Tests register themselves (constructor), so each test file stands alone.
 * The runner forks per test, so a crash fails one test, not the run, and
 * prints "N passed, N failed" as its last line. */
#ifndef TEST_H
#define TEST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;
    int failures;
} TestCtx;

typedef void (*TestFn)(TestCtx *t);
void test_register(const char *name, const char *file, TestFn fn);
void test_fail(TestCtx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* ||a-b|| / ||b|| in double precision. */
double rel_l2(const float *a, const float *b, size_t n);
/* a == b bit for bit where OpenBLAS runs AVX-512 kernels. Without them
 * (AVX2 CPUs such as AMD EPYC here, or valgrind's emulated CPU under `make
 * check-valgrind`) OpenBLAS's rounding depends on a product's shape, so a
 * product cut over threads differs from the whole by ~1e-7: there it is
 * rel. L2 < 1e-5 instead (blas_core_has_avx512). */
int floats_identical(const float *a, const float *b, size_t n);
/* Path of ../shared/golden/<name> relative to the repository root (tests run from it). */
const char *golden_path(const char *name);
/* A fresh temporary directory for this test (removed by the runner after). */
const char *test_tmpdir(TestCtx *t);
/* Whether file path holds exactly these n bytes (false if unreadable). */
bool test_file_holds(const char *path, const void *bytes, size_t n);
/* Whether files a and b hold the same bytes (false if either is unreadable). */
bool test_same_file(const char *a, const char *b);
/* Entries of dir (not . or ..) whose names contain `part` ("" for all,
 * ".tmp-" for the temp files an atomic write leaves); the last one's path
 * in `last` when given. 0 if dir cannot be read. */
int test_count_names(const char *dir, const char *part, char *last, size_t last_size);

#define TEST(fn)                                                                  \
    static void fn(TestCtx *t);                                                   \
    __attribute__((constructor)) static void register_##fn(void) {                \
        test_register(#fn, __FILE__, fn);                                         \
    }                                                                             \
    static void fn(TestCtx *t)

#define CHECK(t, cond, ...)                                                       \
    do {                                                                          \
        if (!(cond)) test_fail((t), __FILE__, __LINE__, __VA_ARGS__);             \
    } while (0)

/* Fails and leaves the test (for preconditions later checks depend on). */
#define REQUIRE(t, cond, ...)                                                     \
    do {                                                                          \
        if (!(cond)) {                                                            \
            test_fail((t), __FILE__, __LINE__, __VA_ARGS__);                      \
            return;                                                               \
        }                                                                         \
    } while (0)

#define CHECK_REL_L2(t, a, b, n, tol, what)                                       \
    do {                                                                          \
        double e_ = rel_l2((a), (b), (n));                                        \
        if (!(e_ < (tol)))                                                        \
            test_fail((t), __FILE__, __LINE__, "%s: rel. L2 error %.3g >= %.3g",  \
                      (what), e_, (double)(tol));                                 \
    } while (0)

#endif
