#include "bench.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"

typedef struct {
    const char *name;
    BenchFn fn;
} BenchEntry;

static BenchEntry benches[256];
static int n_benches;

void bench_register(const char *name, BenchFn fn) {
    if (n_benches < (int)(sizeof benches / sizeof benches[0]))
        benches[n_benches++] = (BenchEntry){name, fn};
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *s, int n) {
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void bench_remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

void bench_report(const char *what, double value, const char *unit, const char *note) {
    printf("  %-52s %10.2f %-6s %s\n", what, value, unit, note ? note : "");
    fflush(stdout);
}

int main(int argc, char **argv) {
    blas_select_best_core(argv);
    printf("OpenBLAS core: %s, threads: %d\n", blas_core_name(), default_thread_count());
    for (int i = 0; i < n_benches; i++) {
        int run = argc < 2;
        for (int a = 1; a < argc; a++) run |= strstr(benches[i].name, argv[a]) != NULL;
        if (!run) continue;
        printf("%s\n", benches[i].name);
        benches[i].fn();
    }
    return 0;
}
