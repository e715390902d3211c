/* Progress of a synthesis run on stderr: one line with metamers done, steps
 * done, a bar, each worker's current job and loss, and the time left.
 *
 * On a terminal the line is redrawn in place at most 5 times a second; in a
 * log file (Slurm, nohup) a full line is printed every 60 s instead, so logs
 * stay readable. The ETA counts only steps made in this session, so resumed
 * jobs do not make it optimistic. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth_internal.h"

#define MAX_WORKERS 64

typedef struct {
    char label[96];
    int step, total;
    double loss;
    bool active;
} WorkerState;

struct Progress {
    pthread_mutex_t mu;
    int n_jobs, jobs_done, workers;
    long long total_steps, done_steps, start_steps;
    double t0, last_draw;
    bool tty, quiet, drawn;
    WorkerState w[MAX_WORKERS];
};

Progress *progress_create(int n_jobs, long long total_steps, long long done_steps, int workers,
                          bool quiet) {
    Progress *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->n_jobs = n_jobs;
    p->total_steps = total_steps;
    p->done_steps = p->start_steps = done_steps;
    p->workers = workers < MAX_WORKERS ? workers : MAX_WORKERS;
    p->t0 = now_seconds();
    p->tty = isatty(2);
    p->quiet = quiet;
    return p;
}

static void fmt_duration(double s, char *buf, size_t size) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, size, "%lds", t);
}

static void draw(Progress *p, double now) {
    double frac = p->total_steps ? (double)p->done_steps / (double)p->total_steps : 1;
    char bar[21], eta[32] = "?";
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    double rate = (double)(p->done_steps - p->start_steps) / (now - p->t0 + 1e-9);
    if (rate > 0) fmt_duration((double)(p->total_steps - p->done_steps) / rate, eta, sizeof eta);
    char line[600];
    int n = snprintf(line, sizeof line, "synth %d/%d done [%s] %3.0f%% %.1f steps/s ETA %s",
                     p->jobs_done, p->n_jobs, bar, 100 * frac, rate, eta);
    for (int k = 0; k < p->workers && n > 0 && (size_t)n < sizeof line; k++)
        if (p->w[k].active)
            n += snprintf(line + n, sizeof line - (size_t)n, " | %s %d/%d loss %.4g", p->w[k].label,
                          p->w[k].step, p->w[k].total, p->w[k].loss);
    if (p->tty) fprintf(stderr, "\r%s\033[K", line);
    else fprintf(stderr, "%s\n", line);
    fflush(stderr);
    p->drawn = true;
    p->last_draw = now;
}

static void maybe_draw(Progress *p, bool force) {
    if (p->quiet) return;
    double now = now_seconds();
    if (force || now - p->last_draw >= (p->tty ? 0.2 : 60.0)) draw(p, now);
}

void progress_job_start(Progress *p, int worker, const char *label, int step, int total) {
    if (worker >= MAX_WORKERS) return;
    pthread_mutex_lock(&p->mu);
    WorkerState *w = &p->w[worker];
    snprintf(w->label, sizeof w->label, "%s", label);
    w->step = step, w->total = total, w->loss = 0, w->active = true;
    pthread_mutex_unlock(&p->mu);
}

void progress_step(Progress *p, int worker, int step, double loss) {
    if (worker >= MAX_WORKERS) return;
    pthread_mutex_lock(&p->mu);
    if (isnan(loss)) { /* resumed from a checkpoint: not this session's work */
        p->start_steps += step - p->w[worker].step;
    }
    p->done_steps += step - p->w[worker].step;
    p->w[worker].step = step;
    if (!isnan(loss)) p->w[worker].loss = loss;
    maybe_draw(p, false);
    pthread_mutex_unlock(&p->mu);
}

void progress_job_done(Progress *p, int worker) {
    pthread_mutex_lock(&p->mu);
    p->jobs_done++;
    if (worker < MAX_WORKERS) {
        /* A diverged job stops early: count its remaining steps as done. */
        p->done_steps += p->w[worker].total - p->w[worker].step;
        p->w[worker].active = false;
    }
    maybe_draw(p, !p->tty);
    pthread_mutex_unlock(&p->mu);
}

void progress_finish(Progress *p) {
    if (!p) return;
    if (!p->quiet && p->tty && p->drawn) {
        draw(p, now_seconds());
        fputc('\n', stderr);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}
