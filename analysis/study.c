/* From the input tables to an analysable Study: missing observers are errors
 * that name them, exclusions are applied and counted, every analysed trial
 * is matched to the model's response to exactly the stimulus that
 * participant heard (and to its metamers.csv row), and trials are grouped
 * into condition cells and stimuli (items). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load_internal.h"

const char *study_str(const Study *st, int id) { return strpool_get(&st->str, id); }

static const char *first_file_of(const Study *st, int subject) {
    for (int i = 0; i < st->n_trials; i++)
        if (st->trials[i].subject == subject) return st->files[st->trials[i].file];
    return "?";
}

/* Observers in the logs and in participants.tsv must agree; then exclusions
 * in a fixed order (headphone screen, excluded flag, catch trials). */
static int check_observers(Study *st, int n_listed, const AnalysisOptions *opt, Error *err) {
    for (int i = 0; i < st->n_trials; i++) {
        const Trial *t = &st->trials[i];
        Participant *p = &st->subjects[t->subject];
        if (t->type == TRIAL_MAIN) p->n_main++, p->n_main_correct += t->correct;
        if (t->type == TRIAL_CATCH) p->n_catch++, p->n_catch_correct += t->correct;
    }
    if (st->n_subjects > n_listed)
        return error_set(err, "participant sub-%s has trial logs (%s) but no row in %s",
                         st->subjects[n_listed].id, first_file_of(st, n_listed),
                         opt->participants);
    for (int k = 0; k < st->n_subjects; k++) {
        Participant *p = &st->subjects[k];
        p->fail[EXCL_HEADPHONE] = p->headphone == 0;
        p->fail[EXCL_PRACTICE] = p->practice == 0;
        p->fail[EXCL_FLAG] = p->excluded_flag;
        p->fail[EXCL_CATCH] = p->n_catch > 0 &&
                              (double)p->n_catch_correct / p->n_catch < opt->catch_threshold;
        p->reason = EXCL_NONE;
        for (int r = N_EXCL - 1; r > EXCL_NONE; r--)
            if (p->fail[r]) p->reason = (ExclusionReason)r; /* the first in order wins */
        for (int r = EXCL_NONE + 1; r < N_EXCL; r++) st->n_failing[r] += p->fail[r];
        st->n_excluded_by[p->reason]++;
        if (p->reason == EXCL_NONE && p->n_rows == 0)
            return error_set(err, "participant sub-%s (%s:%d) has no trial logs among --trials",
                             p->id, opt->participants, p->tsv_line);
        if (p->reason == EXCL_NONE && p->n_main == 0)
            return error_set(err, "participant sub-%s has no main trials (%s)", p->id,
                             first_file_of(st, k));
        p->index = p->reason == EXCL_NONE ? st->n_included++ : -1;
    }
    if (st->n_included == 0) return error_set(err, "every participant is excluded");
    return 0;
}

static int resolve_task(const ModelIndex *ix, const Study *st, const Trial *t, Error *err) {
    for (int i = 0; i < ix->n_tasks; i++)
        if (ix->tasks[i] == t->task) return t->task;
    if (ix->n_tasks == 1) return ix->tasks[0];
    Buf b = {0};
    for (int i = 0; i < ix->n_tasks; i++)
        buf_printf(&b, "%s'%s'", i ? ", " : "", study_str(st, ix->tasks[i]));
    error_set(err, "%s:%d: task '%s' is not one of the model's tasks (%s)", st->files[t->file],
              t->line, study_str(st, t->task), b.s);
    buf_free(&b);
    return -1;
}

static void describe_trial(Buf *b, const Study *st, const Trial *t) {
    buf_printf(b, "%s:%d: clip '%s', condition '%s'", st->files[t->file], t->line,
               study_str(st, t->clip), study_str(st, t->condition));
    if (study_str(st, t->stage)[0])
        buf_printf(b, ", model '%s', stage '%s'", study_str(st, t->model),
                   study_str(st, t->stage));
    if (study_str(st, t->stim)[0]) buf_printf(b, ", stimulus '%s'", study_str(st, t->stim));
}

/* Matches every main trial of an included participant; all unmatched trials
 * are counted and the first is named. */
static int match_trials(Study *st, const ModelIndex *ix, const MetamerIndex *mx,
                        const AnalysisOptions *opt, Error *err) {
    int missing = 0, first = -1, first_kind = 0;
    for (int i = 0; i < st->n_trials; i++) {
        Trial *t = &st->trials[i];
        if (t->type != TRIAL_MAIN || st->subjects[t->subject].index < 0) continue;
        if ((t->task = resolve_task(ix, st, t, err)) < 0) return -1;
        int r = model_index_lookup(ix, st, t);
        if (r >= 0 && st->model[r].clip != t->clip) r = -3;
        if (r >= 0 && strcasecmp(study_str(st, st->model[r].label),
                                 study_str(st, t->true_label)) != 0)
            r = -6;
        int kind = r < 0 ? -r : 0;
        if (!kind && opt->metamers && study_str(st, t->stage)[0]) {
            int m = metamer_index_lookup(mx, st, t);
            if (m < 0)
                kind = m == AMBIGUOUS ? 5 : 4;
            else if (!mx->passed[m])
                t->dropped = true, st->n_dropped_trials++;
        }
        if (kind) {
            if (!missing++) first = i, first_kind = kind;
            continue;
        }
        t->model_row = r;
    }
    if (!missing) return 0;
    static const char *what[] = {"", "no model response in", "several model responses in",
                                 "the matching model response has another clip_id in",
                                 "no row in", "several rows in"};
    Buf b = {0};
    describe_trial(&b, st, &st->trials[first]);
    error_set(err, "%s: %s %s (%d unmatched trial%s in all)", b.s, what[first_kind],
              first_kind == 4 || first_kind == 5 ? opt->metamers : opt->model_responses, missing,
              missing == 1 ? "" : "s");
    buf_free(&b);
    return -1;
}

/* "relu2" < "relu10": digit runs compare as numbers. */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            char *ea, *eb;
            unsigned long x = strtoul(a, &ea, 10), y = strtoul(b, &eb, 10);
            if (x != y) return x < y ? -1 : 1;
            a = ea, b = eb;
        } else {
            if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
            a++, b++;
        }
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static const Study *sort_study; /* qsort has no context argument in C11 */

static int cmp_stage_names(const void *x, const void *y) {
    const char *a = study_str(sort_study, *(const int *)x), *b = study_str(sort_study, *(const int *)y);
    bool ca = strcmp(a, "cochleagram") == 0, cb = strcmp(b, "cochleagram") == 0;
    if (ca != cb) return ca ? -1 : 1;
    return natural_cmp(a, b);
}

/* Rank of each staged cell's stage: --stage-order, else metamers.csv's order,
 * else "cochleagram" first and natural order. */
static int rank_stages(Study *st, const MetamerIndex *mx, const AnalysisOptions *opt, Error *err) {
    int n = 0, *order = xmalloc(((size_t)st->n_cells + mx->n_stages + 1) * sizeof *order);
    if (opt->stage_order) {
        char *list = xstrdup(opt->stage_order);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if (n < st->n_cells + mx->n_stages) order[n++] = strpool_intern(&st->str, tok);
        free(list);
    } else if (mx->n_stages) {
        memcpy(order, mx->stages, (size_t)mx->n_stages * sizeof *order);
        n = mx->n_stages;
    } else {
        for (int c = 0; c < st->n_cells; c++) {
            bool seen = !st->cells[c].staged;
            for (int i = 0; i < n && !seen; i++) seen = order[i] == st->cells[c].stage;
            if (!seen) order[n++] = st->cells[c].stage;
        }
        sort_study = st;
        qsort(order, (size_t)n, sizeof *order, cmp_stage_names);
    }
    int rc = 0;
    for (int c = 0; c < st->n_cells && rc == 0; c++) {
        Cell *cell = &st->cells[c];
        if (!cell->staged) continue;
        cell->stage_rank = -1;
        for (int i = 0; i < n && cell->stage_rank < 0; i++)
            if (order[i] == cell->stage) cell->stage_rank = i;
        if (cell->stage_rank < 0)
            rc = error_set(err, "stage '%s' is not in %s", study_str(st, cell->stage),
                           opt->stage_order ? "--stage-order" : opt->metamers);
    }
    free(order);
    return rc;
}

static int cmp_cells(const void *x, const void *y) {
    const Cell *a = x, *b = y;
    const Study *st = sort_study;
    int c = strcmp(study_str(st, a->task), study_str(st, b->task));
    if (c) return c;
    if (a->staged != b->staged) return a->staged ? 1 : -1;
    if (!a->staged) {
        bool na = strcmp(study_str(st, a->condition), "natural") == 0;
        bool nb = strcmp(study_str(st, b->condition), "natural") == 0;
        if (na != nb) return na ? -1 : 1;
        return natural_cmp(study_str(st, a->condition), study_str(st, b->condition));
    }
    if ((c = strcmp(study_str(st, a->model), study_str(st, b->model)))) return c;
    if (a->stage_rank != b->stage_rank) return a->stage_rank - b->stage_rank;
    if ((c = strcmp(study_str(st, a->condition), study_str(st, b->condition)))) return c;
    return a->orig - b->orig;
}

static void label_cells(Study *st) {
    int first_model = -1, tasks = 0;
    bool many_models = false;
    for (int c = 0; c < st->n_cells; c++) {
        const Cell *cl = &st->cells[c];
        if (cl->staged && first_model < 0) first_model = cl->model;
        many_models |= cl->staged && cl->model != first_model;
        tasks += c == 0 || cl->task != st->cells[c - 1].task;
    }
    st->n_tasks = tasks;
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < st->n_cells; c++) {
            Cell *cl = &st->cells[c];
            bool dup = false;
            for (int d = 0; d < st->n_cells && pass; d++)
                dup |= d != c && strcmp(st->cells[d].label, cl->label) == 0;
            if (pass && !dup) continue;
            const char *task = tasks > 1 ? study_str(st, cl->task) : "";
            const char *sep = tasks > 1 ? " " : "";
            if (!cl->staged)
                snprintf(cl->label, sizeof cl->label, "%s%s%s", task, sep,
                         study_str(st, cl->condition));
            else if (pass)
                snprintf(cl->label, sizeof cl->label, "%s%s%s/%s/%s", task, sep,
                         study_str(st, cl->condition), study_str(st, cl->model),
                         study_str(st, cl->stage));
            else
                snprintf(cl->label, sizeof cl->label, "%s%s%s%s%s", task, sep,
                         many_models ? study_str(st, cl->model) : "", many_models ? ":" : "",
                         study_str(st, cl->stage));
        }
    }
}

/* Cells (task x condition x model x stage) and items (cell x stimulus). */
static int build_cells(Study *st, const MetamerIndex *mx, const AnalysisOptions *opt,
                       Error *err) {
    StrPool cell_keys = {0}, item_keys = {0};
    Buf key = {0};
    int cap_cells = 0, cap_items = 0;
    for (int i = 0; i < st->n_trials; i++) {
        Trial *t = &st->trials[i];
        if (t->model_row < 0 || t->dropped) continue;
        key.len = 0;
        buf_printf(&key, "%d,%d,%d,%d", t->task, t->condition, t->model, t->stage);
        t->cell = strpool_intern(&cell_keys, key.s);
        if (t->cell == st->n_cells) {
            if (st->n_cells == cap_cells) {
                cap_cells = cap_cells ? 2 * cap_cells : 16;
                st->cells = realloc(st->cells, (size_t)cap_cells * sizeof *st->cells);
                if (!st->cells) abort();
            }
            st->cells[st->n_cells++] = (Cell){.task = t->task, .condition = t->condition,
                                              .model = t->model, .stage = t->stage,
                                              .staged = study_str(st, t->stage)[0] != 0};
        }
    }
    int rc = rank_stages(st, mx, opt, err);
    if (rc == 0) {
        /* Sort cells into report order and renumber the trials. */
        int *perm = xmalloc((size_t)st->n_cells * sizeof *perm);
        Cell *sorted = xmalloc((size_t)st->n_cells * sizeof *sorted);
        memcpy(sorted, st->cells, (size_t)st->n_cells * sizeof *sorted);
        for (int c = 0; c < st->n_cells; c++) sorted[c].orig = c;
        sort_study = st;
        qsort(sorted, (size_t)st->n_cells, sizeof *sorted, cmp_cells);
        for (int c = 0; c < st->n_cells; c++) perm[sorted[c].orig] = c;
        free(st->cells);
        st->cells = sorted;
        for (int i = 0; i < st->n_trials; i++) {
            Trial *t = &st->trials[i];
            if (t->cell < 0 || t->model_row < 0 || t->dropped) {
                t->cell = -1;
                continue;
            }
            t->cell = perm[t->cell];
            key.len = 0;
            buf_printf(&key, "%d,%d", t->cell, t->model_row);
            t->item = strpool_intern(&item_keys, key.s);
            if (t->item == st->n_items) {
                if (st->n_items == cap_items) {
                    cap_items = cap_items ? 2 * cap_items : 256;
                    st->items = realloc(st->items, (size_t)cap_items * sizeof *st->items);
                    if (!st->items) abort();
                }
                st->items[st->n_items++] = (Item){t->cell, t->clip, t->model_row};
            }
        }
        free(perm);
        label_cells(st);
    }
    strpool_free(&cell_keys);
    strpool_free(&item_keys);
    buf_free(&key);
    return rc;
}

static void metamer_stats(Study *st, const MetamerIndex *mx) {
    int n = mx->n_stages;
    st->n_metamer_stages = n;
    st->metamer_stage = xcalloc((size_t)n + 1, sizeof(int));
    st->metamer_n = xcalloc((size_t)n + 1, sizeof(int));
    st->metamer_passed = xcalloc((size_t)n + 1, sizeof(int));
    for (int s = 0; s < n; s++) st->metamer_stage[s] = mx->stages[s];
    for (int r = 0; r < mx->n_rows; r++)
        for (int s = 0; s < n; s++)
            if (mx->stage[r] == mx->stages[s]) {
                st->metamer_n[s]++;
                st->metamer_passed[s] += mx->passed[r];
            }
}

int study_load(Study *st, const AnalysisOptions *opt, Error *err) {
    memset(st, 0, sizeof *st);
    strpool_intern(&st->str, ""); /* id 0: the missing value */
    StrPool ids = {0};
    ModelIndex ix = {0};
    MetamerIndex mx = {0};
    int rc = load_participants(st, &ids, opt->participants, err);
    int n_listed = st->n_subjects;
    if (rc == 0) rc = load_model(st, &ix, opt->model_responses, err);
    if (rc == 0 && opt->metamers) rc = load_metamers(st, &mx, opt->metamers, err);
    if (rc == 0)
        rc = load_trials(st, &ids, (const char *const *)opt->trial_globs, opt->n_trial_globs, err);
    if (rc == 0) rc = check_observers(st, n_listed, opt, err);
    if (rc == 0) rc = match_trials(st, &ix, &mx, opt, err);
    if (rc == 0) rc = build_cells(st, &mx, opt, err);
    if (rc == 0 && st->n_items == 0) rc = error_set(err, "no main trials left to analyse");
    if (rc == 0) metamer_stats(st, &mx);
    strpool_free(&ids);
    model_index_free(&ix);
    metamer_index_free(&mx);
    return rc;
}

void study_free(Study *st) {
    strpool_free(&st->str);
    for (int i = 0; i < st->n_files; i++) free(st->files[i]);
    for (int i = 0; i < st->n_subjects; i++) free(st->subjects[i].id);
    free(st->files);
    free(st->trials);
    free(st->subjects);
    free(st->cells);
    free(st->items);
    free(st->model);
    free(st->metamer_stage);
    free(st->metamer_n);
    free(st->metamer_passed);
    memset(st, 0, sizeof *st);
}
