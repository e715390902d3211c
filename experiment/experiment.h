/* experiment: the terminal listening experiment (see experiment/README.md).
 *
 *   metamers experiment build   --design D --participants N   counterbalanced trial lists
 *   metamers experiment run     --design D --subject 07        one session (resumes)
 *   metamers experiment devices                                 audio outputs
 *
 * A session's trials are logged as BIDS behavioural data,
 *   <data-dir>/sub-<id>/beh/sub-<id>_task-<task>_run-<n>_beh.tsv (+ .json)
 * one row per answered trial, written and fsync'ed before the next trial
 * starts. Running the same subject again resumes after the last complete row
 * (a half-written last row left by a crash is cut off first).
 *
 * Observers: a person at the terminal, or a simulated observer that answers
 * through the same trial loop (no keyboard, no audio):
 *   --observer oracle[,lapse=P][,seed=S]       the true label
 *   --observer table:PRED.csv[,lapse=P]        per-clip predictions (metamers eval)
 *   --observer model:M[,lapse=P]                a network (observer_model.c)
 * New kinds plug in through experiment_register_observer().
 */
#ifndef EXPERIMENT_H
#define EXPERIMENT_H

#include <stdint.h>

#include "../core/core.h"

#ifndef METAMERS_VERSION
#define METAMERS_VERSION "0.1.0"
#endif

/* Response written when a listener chooses "can't tell" (never a vocabulary word). */
#define EXP_CANT_TELL "cant_tell"

/* Commands (argv[0] is the subcommand name; --help on each). Errors print one
 * line "metamers experiment <cmd>: ..." on stderr and return non-zero. */
int experiment_cmd_build(int argc, char **argv);
/* Dispatcher: argv[0] "experiment" (then argv[1] is the action) or the action. */
int experiment_cmd(int argc, char **argv);
int experiment_cmd_run(int argc, char **argv);
int experiment_cmd_devices(int argc, char **argv);

/* One row of a participant's trial list, in presentation order. */
typedef struct {
    int trial;                 /* 1-based position in the list */
    int block;                 /* 0 = practice, 1.. = main blocks between breaks */
    const char *phase;         /* "practice", "practice_scored" or "main" */
    const char *condition;     /* design condition name, or "catch" */
    const char *clip_id;       /* the natural source clip (also for metamers) */
    const char *stimulus_path; /* as in the list: relative to the design's folder */
    const char *stage;         /* "n/a" for natural clips */
    const char *model;         /* "n/a" for natural clips */
    const char *true_label;
    int metamer_seed; /* -1 for natural clips */
} ExpTrial;

/* ---------------------------------------------------------------- observers */

/* What an observer factory gets: the experiment it will answer. */
typedef struct {
    const char *design_dir; /* stimulus paths are relative to this */
    const char *task;
    const char *const *vocabulary; /* the answers a person could give */
    int n_vocabulary;
    const char *arg; /* text after "kind:" ("" if none) */
    /* Options after the first comma other than lapse/seed/delay_ms, as
     * key=value pairs; a factory rejects keys it does not know. */
    const char *const *keys, *const *values;
    int n_options;
} ExpObserverEnv;

typedef struct ExpObserver ExpObserver;
struct ExpObserver {
    void *state;
    /* Optional: called once with every trial still to run, before the first
     * one, so a missing prediction is an error before any trial. */
    int (*prepare)(ExpObserver *self, const ExpTrial *trials, int n, Error *err);
    /* The observer's answer: a vocabulary word or EXP_CANT_TELL, copied to
     * response (cap bytes). *rt_ms may be set (it starts as NAN = "n/a").
     * Lapses are applied by the trial loop, not here. */
    int (*answer)(ExpObserver *self, const ExpTrial *trial, char *response, size_t cap,
                  double *rt_ms, Error *err);
    void (*destroy)(ExpObserver *self); /* frees state; may be NULL */
};

/* Fills *obs (zeroed) for "kind:arg,...". Returns 0 or -1 with err. */
typedef int (*ExpObserverFactory)(const ExpObserverEnv *env, ExpObserver *obs, Error *err);

/* Registers (or replaces) the factory for a kind, e.g. "model". The built-in
 * kinds are "oracle" and "table". Returns 0, or -1 if the registry is full. */
int experiment_register_observer(const char *kind, ExpObserverFactory factory);

#endif
