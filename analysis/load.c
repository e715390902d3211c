/* Reading the analysis inputs into a Study: participants.tsv, the model's
 * per-stimulus responses, metamers.csv and the BIDS trial logs. Every value
 * is validated where it is read, so a problem is reported as "file:line:
 * column: problem" rather than surfacing later as a strange statistic.
 * Matching trials to model responses and exclusions are in study.c. */
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ana_internal.h"
#include "load_internal.h"

/* ------------------------------------------------------------ values */

int parse_bool(const char *s, int *out) {
    static const char *yes[] = {"1", "true", "yes", "pass", "passed", "y", "t"};
    static const char *no[] = {"0", "false", "no", "fail", "failed", "n", "f"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    return -1;
}

static int parse_prob(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 1)) return -1;
    *out = v;
    return 0;
}

/* Looks up the named columns; required ones must exist. */
static int find_columns(const TableRow *h, const ColSpec *spec, int n, int *col, Error *err) {
    for (int i = 0; i < n; i++) {
        col[i] = -1;
        for (const char *const *name = spec[i].names; *name && col[i] < 0; name++)
            col[i] = table_col(h, *name);
        if (col[i] < 0 && spec[i].required)
            return error_set(err, "missing column '%s'", spec[i].names[0]);
    }
    return 0;
}

static const char *field(const TableRow *row, const int *col, int which) {
    return col[which] >= 0 ? row->fields[col[which]] : "";
}

/* -------------------------------------------------------- participants */

/* `metamers subjects` writes screening (the headphone check) and practice
 * (the scored-practice gate); headphone_check is the documented name. */
enum { P_ID, P_HEADPHONE, P_PRACTICE, P_EXCLUDED, P_NCOLS };
static const ColSpec participant_cols[P_NCOLS] = {
    {{"participant_id"}, true},
    {{"headphone_check", "screening"}, false},
    {{"practice"}, false},
    {{"excluded"}, false},
};

typedef struct {
    Study *st;
    StrPool *ids;
    int col[P_NCOLS];
    char header[P_NCOLS][32]; /* the column names as spelled in the file */
} ParticipantCtx;


const char *strip_sub(const char *id) { return strncmp(id, "sub-", 4) == 0 ? id + 4 : id; }

int study_add_subject(Study *st, StrPool *ids, const char *id) {
    int k = strpool_intern(ids, strip_sub(id));
    if (k == st->n_subjects) {
        st->subjects = realloc(st->subjects, (size_t)(k + 1) * sizeof *st->subjects);
        if (!st->subjects) abort();
        st->subjects[k] = (Participant){
            .id = xstrdup(strip_sub(id)), .headphone = -1, .practice = -1, .index = -1};
        st->n_subjects++;
    }
    return k;
}

static int participant_row(void *vctx, const TableRow *row, bool header, Error *err) {
    ParticipantCtx *c = vctx;
    if (header) {
        if (find_columns(row, participant_cols, P_NCOLS, c->col, err) != 0) return -1;
        for (int i = 0; i < P_NCOLS; i++)
            snprintf(c->header[i], sizeof c->header[i], "%s",
                     c->col[i] >= 0 ? row->fields[c->col[i]] : participant_cols[i].names[0]);
        return 0;
    }
    const char *id = field(row, c->col, P_ID);
    if (is_na(id)) return error_set(err, "participant_id: empty");
    if (strpool_find(c->ids, strip_sub(id)) >= 0)
        return error_set(err, "participant_id: '%s' listed twice", id);
    int k = study_add_subject(c->st, c->ids, id); /* may move c->st->subjects */
    Participant *p = &c->st->subjects[k];
    p->tsv_line = (int)row->line;
    const char *hp = field(row, c->col, P_HEADPHONE), *ex = field(row, c->col, P_EXCLUDED);
    const char *pr = field(row, c->col, P_PRACTICE);
    int v;
    if (!is_na(hp)) {
        if (parse_bool(hp, &v) != 0)
            return error_set(err, "%s: '%s' (expected pass or fail)", c->header[P_HEADPHONE], hp);
        p->headphone = v;
    }
    if (!is_na(pr)) {
        if (parse_bool(pr, &v) != 0)
            return error_set(err, "practice: '%s' (expected pass or fail)", pr);
        p->practice = v;
    }
    if (!is_na(ex)) {
        if (parse_bool(ex, &v) != 0)
            return error_set(err, "excluded: '%s' (expected true or false)", ex);
        p->excluded_flag = v;
    }
    return 0;
}

int load_participants(Study *st, StrPool *ids, const char *path, Error *err) {
    ParticipantCtx c = {.st = st, .ids = ids};
    return table_read(path, '\t', participant_row, &c, err);
}

/* ------------------------------------------------------ model responses */

enum { M_CLIP, M_TASK, M_LABEL, M_TOP1, M_PTOP1, M_CORRECT, M_STIM, M_COND, M_STAGE, M_MODEL,
       M_NCOLS };
static const ColSpec model_cols[M_NCOLS] = {
    {{"clip_id"}, true},        {{"task"}, true},       {{"label"}, true},
    {{"top1"}, true},           {{"p_top1"}, true},     {{"correct"}, true},
    {{"stimulus_path"}, false}, {{"condition"}, false}, {{"stage"}, false},
    {{"model"}, false},
};

typedef struct {
    Study *st;
    ModelIndex *ix;
    int col[M_NCOLS];
    int cap;
} ModelCtx;

static int model_row(void *vctx, const TableRow *row, bool header, Error *err) {
    ModelCtx *c = vctx;
    Study *st = c->st;
    if (header) {
        if (find_columns(row, model_cols, M_NCOLS, c->col, err) != 0) return -1;
        c->ix->has_paths = c->col[M_STIM] >= 0;
        c->ix->has_conditions = c->col[M_COND] >= 0 || c->col[M_STAGE] >= 0;
        return 0;
    }
    const char *clip = field(row, c->col, M_CLIP), *task = field(row, c->col, M_TASK);
    if (is_na(clip)) return error_set(err, "clip_id: empty");
    if (is_na(task)) return error_set(err, "task: empty");
    ModelRow m = {.clip = strpool_intern(&st->str, clip),
                  .task = strpool_intern(&st->str, task),
                  .label = strpool_intern(&st->str, field(row, c->col, M_LABEL)),
                  .top1 = strpool_intern(&st->str, field(row, c->col, M_TOP1)),
                  .line = (int)row->line};
    int ok;
    if (parse_prob(field(row, c->col, M_PTOP1), &m.p_top1) != 0)
        return error_set(err, "p_top1: '%s' is not a probability", field(row, c->col, M_PTOP1));
    if (parse_bool(field(row, c->col, M_CORRECT), &ok) != 0)
        return error_set(err, "correct: '%s' (expected 0 or 1)", field(row, c->col, M_CORRECT));
    m.correct = (unsigned char)ok;
    if (st->n_model == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        st->model = realloc(st->model, (size_t)c->cap * sizeof *st->model);
        if (!st->model) abort();
    }
    int r = st->n_model++;
    st->model[r] = m;
    if (model_index_task(c->ix, m.task) < 0) return error_set(err, "more than 64 tasks");
    return model_index_add(c->ix, st, r, field(row, c->col, M_STIM), field(row, c->col, M_COND),
                           field(row, c->col, M_MODEL), field(row, c->col, M_STAGE), err);
}

int load_model(Study *st, ModelIndex *ix, const char *path, Error *err) {
    ModelCtx c = {.st = st, .ix = ix};
    if (table_read(path, ',', model_row, &c, err) != 0) return -1;
    if (st->n_model == 0) return error_set(err, "%s: no model responses", path);
    return 0;
}

/* ------------------------------------------------------------ metamers */

enum { X_CLIP, X_STAGE, X_SEED, X_PASSED, X_PATH, X_NCOLS };
static const ColSpec metamer_cols[X_NCOLS] = {
    {{"clip", "clip_id"}, true},
    {{"stage"}, true},
    {{"seed"}, true},
    {{"passed"}, true},
    {{"path", "stimulus_path", "wav"}, false},
};

typedef struct {
    Study *st;
    MetamerIndex *mx;
    int col[X_NCOLS];
} MetamerCtx;

static int metamer_row(void *vctx, const TableRow *row, bool header, Error *err) {
    MetamerCtx *c = vctx;
    if (header) return find_columns(row, metamer_cols, X_NCOLS, c->col, err);
    const char *passed = field(row, c->col, X_PASSED);
    int ok;
    if (parse_bool(passed, &ok) != 0)
        return error_set(err, "passed: '%s' (expected true or false)", passed);
    const char *clip = field(row, c->col, X_CLIP), *stage = field(row, c->col, X_STAGE);
    if (is_na(clip) || is_na(stage)) return error_set(err, "clip and stage must not be empty");
    return metamer_index_add(c->mx, c->st, (int)row->line, clip, stage,
                             field(row, c->col, X_SEED), field(row, c->col, X_PATH), ok, err);
}

int load_metamers(Study *st, MetamerIndex *mx, const char *path, Error *err) {
    MetamerCtx c = {.st = st, .mx = mx};
    return table_read(path, ',', metamer_row, &c, err);
}

/* ---------------------------------------------------------- trial logs */

enum { T_CLIP, T_COND, T_LABEL, T_RESPONSE, T_CORRECT, T_STAGE, T_MODEL, T_STIM, T_TYPE,
       T_PHASE, T_PARTICIPANT, T_TASK, T_NCOLS };
static const ColSpec trial_cols[T_NCOLS] = {
    {{"clip_id"}, true},       {{"condition"}, true},  {{"true_label"}, true},
    {{"response"}, true},      {{"correct"}, true},    {{"stage"}, false},
    {{"model"}, false},        {{"stimulus_path"}, false}, {{"trial_type"}, false},
    {{"phase"}, false},        {{"participant_id"}, false}, {{"task"}, false},
};

typedef struct {
    Study *st;
    StrPool *ids;
    int file;
    char subject[128], task[128]; /* from the BIDS file name */
    int col[T_NCOLS];
} TrialCtx;

/* Copies BIDS entity `key` ("sub", "task") from a file name such as
 * sub-07_task-words_run-1_beh.tsv into out; false if absent. */
static bool bids_entity(const char *path, const char *key, char *out, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t k = strlen(key);
    for (const char *p = base; *p; p++) {
        if ((p == base || p[-1] == '_') && strncmp(p, key, k) == 0 && p[k] == '-') {
            const char *v = p + k + 1;
            size_t len = strcspn(v, "_.");
            if (len == 0 || len >= n) return false;
            memcpy(out, v, len);
            out[len] = 0;
            return true;
        }
    }
    return false;
}

/* trial_type: main, practice, catch, screening; the runner's phase column
 * (practice, practice_scored, main) reads the same way. Missing: main. */
static int parse_trial_type(const char *s, TrialType *t) {
    static const char *names[] = {"main", "practice", "catch", "screening"};
    if (is_na(s)) return *t = TRIAL_MAIN, 0;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) return *t = (TrialType)i, 0;
    if (strncasecmp(s, "practice", 8) == 0) return *t = TRIAL_PRACTICE, 0;
    return -1;
}

static int trial_row(void *vctx, const TableRow *row, bool header, Error *err) {
    TrialCtx *c = vctx;
    Study *st = c->st;
    if (header) {
        if (find_columns(row, trial_cols, T_NCOLS, c->col, err) != 0) return -1;
        if (c->col[T_PARTICIPANT] < 0 && !c->subject[0])
            return error_set(err, "no participant_id column and the file name has no "
                                  "sub-<id> entity");
        return 0;
    }
    Trial tr = {.file = c->file, .line = (int)row->line, .cell = -1, .item = -1,
                .model_row = -1};
    bool typed = c->col[T_TYPE] >= 0;
    const char *type = field(row, c->col, typed ? T_TYPE : T_PHASE);
    if (parse_trial_type(type, &tr.type) != 0)
        return error_set(err, "%s: '%s' (expected main, practice, catch or screening)",
                         typed ? "trial_type" : "phase", type);
    /* Without trial_type, catch trials are the rows of condition "catch" (as
     * the runner logs them). */
    if (!typed && tr.type == TRIAL_MAIN && strcmp(field(row, c->col, T_COND), "catch") == 0)
        tr.type = TRIAL_CATCH;
    const char *subject = c->col[T_PARTICIPANT] >= 0 ? field(row, c->col, T_PARTICIPANT)
                                                      : c->subject;
    if (is_na(subject)) return error_set(err, "participant_id: empty");
    tr.subject = study_add_subject(st, c->ids, subject);
    st->subjects[tr.subject].n_rows++;
    const char *task = c->col[T_TASK] >= 0 ? field(row, c->col, T_TASK) : c->task;
    tr.task = strpool_intern(&st->str, is_na(task) ? "" : task);
    const char *clip = field(row, c->col, T_CLIP), *correct = field(row, c->col, T_CORRECT);
    int ok = 0;
    if (tr.type == TRIAL_MAIN || tr.type == TRIAL_CATCH) {
        if (is_na(clip)) return error_set(err, "clip_id: empty");
        if (parse_bool(correct, &ok) != 0)
            return error_set(err, "correct: '%s' (expected 0 or 1)", correct);
    }
    tr.correct = (unsigned char)ok;
    tr.clip = strpool_intern(&st->str, clip);
    tr.condition = strpool_intern(&st->str, field(row, c->col, T_COND));
    tr.true_label = strpool_intern(&st->str, field(row, c->col, T_LABEL));
    tr.response = strpool_intern(&st->str, field(row, c->col, T_RESPONSE));
    /* NA stage/model are stored as "" so one test (id of "") finds them. */
    const char *stage = field(row, c->col, T_STAGE), *model = field(row, c->col, T_MODEL);
    tr.stage = strpool_intern(&st->str, is_na(stage) ? "" : stage);
    tr.model = strpool_intern(&st->str, is_na(model) ? "" : model);
    tr.stim = strpool_intern(&st->str, normalize_path(field(row, c->col, T_STIM)));
    if (st->n_trials == st->cap_trials) {
        st->cap_trials = st->cap_trials ? 2 * st->cap_trials : 4096;
        st->trials = realloc(st->trials, (size_t)st->cap_trials * sizeof *st->trials);
        if (!st->trials) abort();
    }
    st->trials[st->n_trials++] = tr;
    return 0;
}

static int load_trial_file(Study *st, StrPool *ids, const char *path, Error *err) {
    TrialCtx c = {.st = st, .ids = ids, .file = st->n_files};
    st->files = realloc(st->files, (size_t)(st->n_files + 1) * sizeof *st->files);
    if (!st->files) abort();
    st->files[st->n_files++] = xstrdup(path);
    bids_entity(path, "sub", c.subject, sizeof c.subject);
    bids_entity(path, "task", c.task, sizeof c.task);
    return table_read(path, '\t', trial_row, &c, err);
}

int load_trials(Study *st, StrPool *ids, const char *const *globs, int n_globs, Error *err) {
    for (int g = 0; g < n_globs; g++) {
        glob_t gl;
        int rc = glob(globs[g], 0, NULL, &gl);
        if (rc == GLOB_NOMATCH) return error_set(err, "--trials '%s' matches no file", globs[g]);
        if (rc != 0) return error_set(err, "--trials '%s': glob failed", globs[g]);
        for (size_t i = 0; i < gl.gl_pathc && rc == 0; i++)
            rc = load_trial_file(st, ids, gl.gl_pathv[i], err);
        globfree(&gl);
        if (rc != 0) return -1;
    }
    return 0;
}
