/* Benchmark harness: BENCH(name) { ... } registers a benchmark; run_bench runs
 * all (or those whose name contains an argument). Benchmarks print their own
 * lines through bench_report so the output is one table. */
#ifndef BENCH_H
#define BENCH_H

typedef void (*BenchFn)(void);
void bench_register(const char *name, BenchFn fn);
/* Median of an array of seconds (sorts it). */
double bench_median(double *seconds, int n);
/* Removes a benchmark's scratch folder and everything in it. */
void bench_remove_tree(const char *dir);
/* "name  value unit  note" on one line. */
void bench_report(const char *what, double value, const char *unit, const char *note);

#define BENCH(fn)                                                                 \
    static void fn(void);                                                         \
    __attribute__((constructor)) static void register_##fn(void) {                \
        bench_register(#fn, fn);                                                  \
    }                                                                             \
    static void fn(void)

#endif
