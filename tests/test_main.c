/* Test runner: forks per test (crash isolation), optional name filter.
 *   run_tests [-n] [substring...]   -n: no fork (for gdb) */
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/core.h"

typedef struct {
    const char *name, *file;
    TestFn fn;
} TestEntry;

static TestEntry tests[1024];
static int n_tests;
static char tmpdir_buf[512];

void test_register(const char *name, const char *file, TestFn fn) {
    if (n_tests < (int)(sizeof tests / sizeof tests[0]))
        tests[n_tests++] = (TestEntry){name, file, fn};
}

void test_fail(TestCtx *t, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  FAIL %s (%s:%d): ", t->name, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    t->failures++;
}

double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

int floats_identical(const float *a, const float *b, size_t n) {
    const char *vg = getenv("METAMERS_VALGRIND");
    if ((vg && *vg == '1') || !blas_core_has_avx512()) return rel_l2(a, b, n) < 1e-5;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

const char *golden_path(const char *name) {
    static char buf[1024];
    const char *dir = getenv("METAMERS_GOLDEN");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "../shared/golden", name);
    return buf;
}

const char *test_tmpdir(TestCtx *t) {
    (void)t;
    if (!tmpdir_buf[0]) {
        snprintf(tmpdir_buf, sizeof tmpdir_buf, "/tmp/metamers-test-XXXXXX");
        if (!mkdtemp(tmpdir_buf)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir_buf;
}

bool test_file_holds(const char *path, const void *bytes, size_t n) {
    char *data = NULL;
    size_t size = 0;
    Error err;
    bool same = read_file(path, &data, &size, &err) == 0 && size == n && !memcmp(data, bytes, n);
    free(data);
    return same;
}

bool test_same_file(const char *a, const char *b) {
    char *data = NULL;
    size_t size = 0;
    Error err;
    bool same = read_file(a, &data, &size, &err) == 0 && test_file_holds(b, data, size);
    free(data);
    return same;
}

int test_count_names(const char *dir, const char *part, char *last, size_t last_size) {
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strstr(e->d_name, part)) continue;
        count++;
        if (last) snprintf(last, last_size, "%s/%s", dir, e->d_name);
    }
    if (d) closedir(d);
    return count;
}

static void remove_tmpdir(void) {
    if (!tmpdir_buf[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir_buf);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir_buf);
    tmpdir_buf[0] = 0;
}

static int run_one(const TestEntry *e) {
    TestCtx t = {e->name, 0};
    e->fn(&t);
    remove_tmpdir();
    return t.failures;
}

static int selected(const TestEntry *e, int argc, char **argv, int first) {
    if (first >= argc) return 1;
    for (int i = first; i < argc; i++)
        if (strstr(e->name, argv[i]) || strstr(e->file, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    blas_select_best_core(argv);
    int fork_tests = 1, first = 1;
    if (argc > 1 && strcmp(argv[1], "-n") == 0) fork_tests = 0, first = 2;
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        const TestEntry *e = &tests[i];
        if (!selected(e, argc, argv, first)) continue;
        double t0 = now_seconds();
        int ok;
        fflush(stdout);
        fflush(stderr);
        if (fork_tests) {
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) _exit(run_one(e) ? 1 : 0);
            int status = 0;
            waitpid(pid, &status, 0);
            ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (WIFSIGNALED(status))
                fprintf(stderr, "  FAIL %s: killed by signal %d\n", e->name, WTERMSIG(status));
        } else {
            ok = run_one(e) == 0;
        }
        printf("%-4s %-48s %7.2f s\n", ok ? "ok" : "FAIL", e->name, now_seconds() - t0);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
