/* Every input that once crashed a fuzz harness (tests/fuzz/regress/<parser>/),
 * replayed through the same harness: each must now be accepted or refused
 * with a one-line error (the harness aborts otherwise, failing the test).
 * Under `make check-asan` this also proves the memory errors are gone. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "test.h"

typedef int (*Harness)(const uint8_t *data, size_t size);

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct {
    const char *parser;
    Harness h;
} harnesses[] = {
    {"safetensors", fuzz_safetensors}, {"arch", fuzz_arch},     {"manifest", fuzz_manifest},
    {"design", fuzz_design},           {"trials", fuzz_trials}, {"audio", fuzz_audio},
};
#define N_HARNESSES (sizeof harnesses / sizeof harnesses[0])

/* Runs every file of tests/fuzz/<set>/<parser>/ (sorted, so failures read
 * the same each time) and returns how many there were. */
static int replay(TestCtx *t, const char *set, const char *parser, Harness h) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", set, parser);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[512];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 512;)
        if (e->d_name[0] != '.') names[n++] = xstrdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    fuzz_set_workdir(test_tmpdir(t));
    for (int i = 0; i < n; i++) {
        char path[600], *data = NULL;
        size_t size = 0;
        Error err = {{0}};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (read_file(path, &data, &size, &err) != 0) {
            CHECK(t, 0, "%s", err.msg);
            continue;
        }
        printf("    %s\n", path);
        fflush(stdout); /* names the input if the harness aborts */
        h((const uint8_t *)data, size);
        free(data);
    }
    return n;
}

TEST(fuzz_regressions_are_refused_cleanly) {
    int total = 0;
    for (size_t k = 0; k < N_HARNESSES; k++)
        total += replay(t, "regress", harnesses[k].parser, harnesses[k].h);
    CHECK(t, total > 0, "no regression inputs found (run from the repository root)");
}

/* The seed corpus too: valid files pass the harnesses' round-trip checks. */
TEST(fuzz_seed_corpus_passes_the_harnesses) {
    for (size_t k = 0; k < N_HARNESSES; k++)
        CHECK(t, replay(t, "corpus", harnesses[k].parser, harnesses[k].h) > 0, "no seeds for %s",
              harnesses[k].parser);
}
