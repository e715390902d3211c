/* A persistent worker pool. Workers sleep on a condition variable between
 * runs (no spinning, so they do not steal cycles from OpenBLAS's threads),
 * and take tasks from a shared atomic counter. */
#include "core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct Pool {
    int n; /* workers including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long generation;
    int busy, quit;
    void (*fn)(void *, int, int);
    void *ctx;
    int ntasks;
    atomic_int next;
};

typedef struct {
    Pool *pool;
    int worker;
} WorkerArg;

static void drain(Pool *p, int worker) {
    for (;;) {
        int task = atomic_fetch_add(&p->next, 1);
        if (task >= p->ntasks) break;
        p->fn(p->ctx, task, worker);
    }
}

static void *worker_main(void *arg) {
    WorkerArg *wa = arg;
    Pool *p = wa->pool;
    int worker = wa->worker;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->start, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, worker);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Pool *pool_create(int nthreads) {
    Pool *p = xcalloc(1, sizeof *p);
    p->n = nthreads < 1 ? 1 : nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = xcalloc((size_t)p->n, sizeof *p->threads);
    for (int i = 1; i < p->n; i++) {
        WorkerArg *wa = xmalloc(sizeof *wa);
        *wa = (WorkerArg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i; /* run with what we have */
            break;
        }
    }
    return p;
}

void pool_free(Pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int pool_size(const Pool *p) { return p ? p->n : 1; }

void pool_run(Pool *p, void (*fn)(void *ctx, int task, int worker), void *ctx, int ntasks) {
    if (!p || p->n == 1 || ntasks <= 1) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int default_thread_count(void) {
    const char *env = getenv("METAMERS_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
