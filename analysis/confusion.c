/* Confusion matrices per task, for humans and for the model on the same
 * trials, and their agreement. Rows are true labels, columns the labels
 * followed by any other answers ("can't tell", out-of-vocabulary words). The
 * correlation is over row-normalized matrices; the off-diagonal version
 * leaves out the hits, which otherwise dominate it whenever both observers
 * are accurate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

static const Study *sort_st;

static int cmp_label(const void *x, const void *y) {
    return strcmp(study_str(sort_st, *(const int *)x), study_str(sort_st, *(const int *)y));
}

/* Pearson correlation of row-normalized matrices, optionally without the
 * diagonal (row label == column label). */
static double matrix_corr(const Confusion *c, bool offdiag) {
    int nr = c->n_rows, nl = c->n_labels, n = 0;
    double *x = xmalloc(2 * (size_t)nr * nl * sizeof *x + 1), *y = x + (size_t)nr * nl;
    for (int i = 0; i < nr; i++) {
        double sh = 0, sm = 0;
        for (int j = 0; j < nl; j++) {
            sh += c->human[(size_t)i * nl + j];
            sm += c->model[(size_t)i * nl + j];
        }
        for (int j = 0; j < nl; j++) {
            if (offdiag && j == i) continue;
            x[n] = sh > 0 ? c->human[(size_t)i * nl + j] / sh : 0;
            y[n] = sm > 0 ? c->model[(size_t)i * nl + j] / sm : 0;
            n++;
        }
    }
    double r = stat_pearson(x, y, n);
    free(x);
    return r;
}

static void confusion_for_task(const Study *st, const Obs *o, int task, Confusion *c) {
    int *col = xmalloc((size_t)st->str.n * sizeof *col);
    for (int i = 0; i < st->str.n; i++) col[i] = -1;
    c->task = task;
    c->labels = xmalloc((size_t)st->str.n * sizeof *c->labels);
    /* True labels first (sorted), then other answers (sorted). */
    for (int pass = 0; pass < 2; pass++) {
        int start = c->n_labels;
        for (int i = 0; i < o->n; i++) {
            if (st->cells[o->cell[i]].task != task) continue;
            int ids[3] = {o->label[i], o->response[i], o->top1[i]};
            for (int k = pass ? 1 : 0; k < (pass ? 3 : 1); k++)
                if (col[ids[k]] < 0) col[ids[k]] = c->n_labels, c->labels[c->n_labels++] = ids[k];
        }
        sort_st = st;
        qsort(c->labels + start, (size_t)(c->n_labels - start), sizeof *c->labels, cmp_label);
        for (int j = start; j < c->n_labels; j++) col[c->labels[j]] = j;
        if (!pass) c->n_rows = c->n_labels;
    }
    size_t n = (size_t)c->n_rows * c->n_labels;
    c->human = xcalloc(n ? n : 1, sizeof *c->human);
    c->model = xcalloc(n ? n : 1, sizeof *c->model);
    for (int i = 0; i < o->n; i++) {
        if (st->cells[o->cell[i]].task != task) continue;
        size_t row = (size_t)col[o->label[i]] * c->n_labels;
        c->human[row + col[o->response[i]]]++;
        c->model[row + col[o->top1[i]]]++;
    }
    c->r_all = matrix_corr(c, false);
    c->r_offdiag = matrix_corr(c, true);
    free(col);
}

void compute_confusions(const Study *st, Results *r) {
    r->conf = xcalloc((size_t)st->n_cells + 1, sizeof *r->conf);
    for (int c = 0; c < st->n_cells; c++) {
        if (c > 0 && st->cells[c - 1].task == st->cells[c].task) continue; /* cells sort by task */
        confusion_for_task(st, &r->obs, st->cells[c].task, &r->conf[r->n_conf++]);
    }
}
