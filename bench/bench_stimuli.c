/* Stimulus-set benchmark: the `tiny` recipe (what the tests build) from
 * scratch, with two render jobs. Target: under 30 s on the 2-core machine.
 * Timed here, not in the test, so a loaded machine cannot fail `make check`. */
#include <stdio.h>
#include <stdlib.h>

#include "../core/core.h"
#include "../stimuli/stimuli.h"
#include "bench.h"

BENCH(bench_stimuli_tiny_build) {
    char dir[] = "/tmp/metamers-bench-XXXXXX", out[1100];
    if (!mkdtemp(dir)) return;
    snprintf(out, sizeof out, "%s/tiny", dir);
    char *argv[] = {"build", "--recipe", "tiny", "--out", out, "--quiet", "--jobs", "2", NULL};
    double t0 = now_seconds();
    int rc = stimuli_cmd_build(8, argv);
    double t = now_seconds() - t0;
    if (rc == 0)
        bench_report("stimuli build --recipe tiny (2 jobs)", t, "s", "target < 30 s");
    else
        printf("  stimuli build --recipe tiny failed (exit %d)\n", rc);
    bench_remove_tree(dir);
}
