/* Shared between load.c (reading), index.c (matching keys) and study.c
 * (exclusions, cells). */
#ifndef LOAD_INTERNAL_H
#define LOAD_INTERNAL_H

#include "ana_internal.h"

typedef struct {
    const char *names[4]; /* accepted spellings, NULL-terminated; first is canonical */
    bool required;
} ColSpec;

/* Model responses by stimulus: keys are strings in a pool, each mapped to a
 * model row or to AMBIGUOUS when several rows share the key. */
#define AMBIGUOUS (-2)

typedef struct {
    StrPool keys;
    int *row;
    int cap;
    bool has_paths, has_conditions;
    int tasks[64], n_tasks;
} ModelIndex;

typedef struct {
    StrPool keys;
    int *row;
    int cap;
    /* per metamers.csv row */
    unsigned char *passed;
    int *line, *stage;
    int n_rows, cap_rows;
    bool has_paths;
    /* stages in order of first appearance */
    int *stages, n_stages;
} MetamerIndex;

int parse_bool(const char *s, int *out);
const char *strip_sub(const char *id);
/* "./a//b" -> "a/b" (in a buffer reused by the next call). */
const char *normalize_path(const char *p);

int study_add_subject(Study *st, StrPool *ids, const char *id);
int load_participants(Study *st, StrPool *ids, const char *path, Error *err);
int load_model(Study *st, ModelIndex *ix, const char *path, Error *err);
int load_metamers(Study *st, MetamerIndex *mx, const char *path, Error *err);
int load_trials(Study *st, StrPool *ids, const char *const *globs, int n_globs, Error *err);

/* Position of task in ix->tasks (added if new); -1 when full. */
int model_index_task(ModelIndex *ix, int task);
int model_index_add(ModelIndex *ix, Study *st, int r, const char *stim, const char *cond,
                    const char *model, const char *stage, Error *err);
/* Row for a main trial whose task is already resolved; -1 none, AMBIGUOUS. */
int model_index_lookup(const ModelIndex *ix, const Study *st, const Trial *tr);
void model_index_free(ModelIndex *ix);

int metamer_index_add(MetamerIndex *mx, Study *st, int line, const char *clip,
                      const char *stage, const char *seed, const char *path, int passed,
                      Error *err);
/* metamers.csv row for a staged trial; -1 none, AMBIGUOUS. */
int metamer_index_lookup(const MetamerIndex *mx, const Study *st, const Trial *tr);
void metamer_index_free(MetamerIndex *mx);

#endif
