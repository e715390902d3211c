/* core: atomic files, worker pool, directory creation. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "test.h"

TEST(atomic_file_replaces_or_keeps) {
    const char *dir = test_tmpdir(t);
    char path[600];
    snprintf(path, sizeof path, "%s/f.txt", dir);
    Error err = {0};
    REQUIRE(t, atomic_write_file(path, "old", 3, 0600, &err) == 0, "%s", err.msg);
    struct stat st;
    CHECK(t, stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode not 0600");
    /* An aborted write leaves the old content and no temp file behind. */
    AtomicFile af;
    REQUIRE(t, atomic_open(&af, path, 0644, &err) == 0, "%s", err.msg);
    fputs("partial", af.f);
    atomic_abort(&af);
    CHECK(t, test_file_holds(path, "old", 3), "old content lost");
    CHECK(t, test_count_names(dir, "", NULL, 0) == 1, "temp file left behind");
    REQUIRE(t, atomic_write_file(path, "new!", 4, 0644, &err) == 0, "%s", err.msg);
    CHECK(t, test_file_holds(path, "new!", 4), "new content not written");
    CHECK(t, atomic_write_file("/nonexistent-dir/x", "a", 1, 0644, &err) != 0 &&
                 strstr(err.msg, "/nonexistent-dir/x"), "error should name the file: %s", err.msg);
}

/* The first creator wins; a later one neither replaces nor leaves a temp. */
TEST(atomic_create_never_replaces) {
    const char *dir = test_tmpdir(t);
    char path[600];
    snprintf(path, sizeof path, "%s/plans", dir);
    Error err = {0};
    CHECK(t, atomic_create_file(path, "first", 5, 0644, &err) == 0, "create: %s", err.msg);
    CHECK(t, atomic_create_file(path, "second", 6, 0644, &err) == 1, "existing file not reported");
    CHECK(t, test_file_holds(path, "first", 5), "existing file replaced");
    CHECK(t, test_count_names(dir, "", NULL, 0) == 1, "temp file left behind");
    CHECK(t, atomic_create_file("/nonexistent-dir/x", "a", 1, 0644, &err) == -1 &&
                 strstr(err.msg, "/nonexistent-dir/x"), "error should name the file: %s", err.msg);
}

TEST(make_dirs_nested) {
    char path[700];
    snprintf(path, sizeof path, "%s/a/b/c", test_tmpdir(t));
    Error err = {0};
    CHECK(t, make_dirs(path, 0700, &err) == 0, "%s", err.msg);
    CHECK(t, make_dirs(path, 0700, &err) == 0, "existing dir: %s", err.msg);
    struct stat st;
    CHECK(t, stat(path, &st) == 0 && S_ISDIR(st.st_mode), "not created");
}

typedef struct {
    atomic_int count;
    int hits[1000];
    int bad_worker;
    int n_workers;
} PoolCtx;

static void pool_task(void *ctx, int task, int worker) {
    PoolCtx *c = ctx;
    c->hits[task]++;
    if (worker < 0 || worker >= c->n_workers) c->bad_worker = 1;
    atomic_fetch_add(&c->count, 1);
}

TEST(pool_runs_every_task_once) {
    for (int threads = 1; threads <= 3; threads++) {
        Pool *p = pool_create(threads);
        for (int round = 0; round < 50; round++) {
            PoolCtx c = {0};
            c.n_workers = pool_size(p);
            int n = round * 20;
            pool_run(p, pool_task, &c, n);
            CHECK(t, atomic_load(&c.count) == n, "%d threads: ran %d of %d", threads,
                  atomic_load(&c.count), n);
            for (int i = 0; i < n; i++) CHECK(t, c.hits[i] == 1, "task %d ran %d times", i, c.hits[i]);
            CHECK(t, !c.bad_worker, "worker index out of range");
        }
        pool_free(p);
    }
}
