/* The analyses of a loaded Study: accuracy per condition with bootstrap CIs,
 * human vs model per participant (the model scored on exactly the stimuli
 * that participant heard), per-clip correlations with split-half noise
 * ceilings, the Kell-style condition-level comparison and the Feather-style
 * observer x stage ANOVA. Error consistency is in consistency.c, confusions
 * in confusion.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

void stream_rng(Rng *rng, uint64_t seed, uint64_t tag, uint64_t index) {
    /* An independent stream per statistic and cell: adding an analysis or a
     * cell never changes another one's random draws. */
    rng_seed(rng, seed ^ (tag * 0x9E3779B97F4A7C15ull) ^ (index * 0xD1B54A32D192ED03ull));
}

void obs_build(const Study *st, Obs *o) {
    int n = 0;
    for (int i = 0; i < st->n_trials; i++) n += st->trials[i].cell >= 0;
    o->n = n;
    o->subj = xmalloc((size_t)n * 7 * sizeof(int));
    o->cell = o->subj + n;
    o->item = o->cell + n;
    o->clip = o->item + n;
    o->label = o->clip + n;
    o->response = o->label + n;
    o->top1 = o->response + n;
    o->hc = xmalloc(2 * (size_t)n);
    o->mc = o->hc + n;
    o->mconf = xmalloc((size_t)n * sizeof(double));
    int k = 0;
    for (int i = 0; i < st->n_trials; i++) {
        const Trial *t = &st->trials[i];
        if (t->cell < 0) continue;
        const ModelRow *m = &st->model[t->model_row];
        o->subj[k] = st->subjects[t->subject].index;
        o->cell[k] = t->cell;
        o->item[k] = t->item;
        o->clip[k] = t->clip;
        o->label[k] = t->true_label;
        o->response[k] = t->response;
        o->top1[k] = m->top1;
        o->hc[k] = t->correct;
        o->mc[k] = m->correct;
        o->mconf[k] = m->p_top1;
        k++;
    }
}

void obs_free(Obs *o) {
    free(o->subj);
    free(o->hc);
    free(o->mconf);
    memset(o, 0, sizeof *o);
}

/* Per participant x cell accuracy of the human and of the model on the same
 * stimuli; NaN where the participant heard nothing of the cell. */
static void subject_cell_accuracy(const Study *st, Results *r) {
    const Obs *o = &r->obs;
    size_t n = (size_t)st->n_included * st->n_cells;
    double *cnt = xcalloc(n, sizeof *cnt);
    r->subj_cell_h = xcalloc(n, sizeof(double));
    r->subj_cell_m = xcalloc(n, sizeof(double));
    for (int i = 0; i < o->n; i++) {
        size_t k = (size_t)o->subj[i] * st->n_cells + o->cell[i];
        cnt[k]++;
        r->subj_cell_h[k] += o->hc[i];
        r->subj_cell_m[k] += o->mc[i];
    }
    for (size_t k = 0; k < n; k++) {
        r->subj_cell_h[k] = cnt[k] > 0 ? r->subj_cell_h[k] / cnt[k] : NAN;
        r->subj_cell_m[k] = cnt[k] > 0 ? r->subj_cell_m[k] / cnt[k] : NAN;
    }
    free(cnt);
}

static void item_accuracy(const Study *st, Results *r) {
    const Obs *o = &r->obs;
    r->item_human = xcalloc((size_t)st->n_items, sizeof(double));
    r->item_n = xcalloc((size_t)st->n_items, sizeof(int));
    for (int i = 0; i < o->n; i++) {
        r->item_human[o->item[i]] += o->hc[i];
        r->item_n[o->item[i]]++;
    }
    for (int it = 0; it < st->n_items; it++)
        r->item_human[it] = r->item_n[it] ? r->item_human[it] / r->item_n[it] : NAN;
}

/* Accuracy, CIs over participants and over clips, and the paired human -
 * model difference with its bootstrap CI and sign-flip permutation p. */
static void cell_accuracy(const Study *st, const AnalysisOptions *opt, Results *r, int c) {
    CellStats *cs = &r->cells[c];
    int ns = st->n_included, n = 0;
    double *h = xmalloc(3 * (size_t)(ns + st->n_items) * sizeof *h);
    double *m = h + ns + st->n_items, *d = m + ns + st->n_items;
    for (int s = 0; s < ns; s++) {
        double hv = r->subj_cell_h[(size_t)s * st->n_cells + c];
        if (isnan(hv)) continue;
        h[n] = hv;
        m[n] = r->subj_cell_m[(size_t)s * st->n_cells + c];
        d[n] = h[n] - m[n];
        n++;
    }
    cs->n_subj = n;
    Rng rng;
    stream_rng(&rng, opt->seed, 1, (uint64_t)c);
    cs->human = stat_mean(h, n);
    cs->human_ci = bootstrap_mean_ci(h, n, opt->bootstrap, 0.95, &rng);
    cs->model = stat_mean(m, n);
    cs->model_ci = bootstrap_mean_ci(m, n, opt->bootstrap, 0.95, &rng);
    cs->diff = stat_mean(d, n);
    cs->diff_ci = bootstrap_mean_ci(d, n, opt->bootstrap, 0.95, &rng);
    stream_rng(&rng, opt->seed, 2, (uint64_t)c);
    cs->diff_p = paired_permutation_p(d, n, opt->permutations, &rng);
    cs->low_accuracy = cs->human < opt->low_accuracy;
    /* Over clips: a clip's accuracy pools everyone who heard it in this
     * cell (several stimuli of one clip, e.g. seeds, pool too). */
    int nc = 0, ni = 0;
    double msum = 0;
    int *clip_slot = xmalloc((size_t)st->str.n * sizeof *clip_slot);
    double *csum = h, *ccnt = m; /* reuse: per distinct clip */
    for (int it = 0; it < st->n_items; it++) clip_slot[st->items[it].clip] = -1;
    for (int it = 0; it < st->n_items; it++) {
        const Item *item = &st->items[it];
        if (item->cell != c) continue;
        ni++;
        msum += st->model[item->model_row].correct;
        int *slot = &clip_slot[item->clip];
        if (*slot < 0) *slot = nc, csum[nc] = ccnt[nc] = 0, nc++;
        csum[*slot] += r->item_human[it] * r->item_n[it];
        ccnt[*slot] += r->item_n[it];
        cs->n_trials += r->item_n[it];
    }
    for (int k = 0; k < nc; k++) csum[k] /= ccnt[k];
    cs->n_items = ni;
    cs->n_clips = nc;
    cs->model_items = ni ? msum / ni : NAN;
    cs->human_clips = stat_mean(csum, nc);
    stream_rng(&rng, opt->seed, 3, (uint64_t)c);
    cs->human_clips_ci = bootstrap_mean_ci(csum, nc, opt->bootstrap, 0.95, &rng);
    free(clip_slot);
    free(h);
}

/* Human accuracy per item vs the model's correctness and confidence, over
 * the given items (cell < 0: all), with split-half ceilings over participants. */
static void clip_correlation(const Study *st, const AnalysisOptions *opt, Results *r, int cell,
                             ClipCorr *cc) {
    const Obs *o = &r->obs;
    double *h = xmalloc(3 * (size_t)st->n_items * sizeof *h), *mc = h + st->n_items;
    double *conf = mc + st->n_items;
    int n = 0;
    for (int it = 0; it < st->n_items; it++) {
        if (cell >= 0 && st->items[it].cell != cell) continue;
        if (!r->item_n[it]) continue;
        const ModelRow *m = &st->model[st->items[it].model_row];
        h[n] = r->item_human[it];
        mc[n] = m->correct;
        conf[n] = m->p_top1;
        n++;
    }
    cc->cell = cell;
    cc->scope = cell < 0 ? "all items" : st->cells[cell].label;
    cc->n_items = n;
    cc->r_correct = stat_pearson(h, mc, n);
    cc->rho_correct = stat_spearman(h, mc, n);
    cc->r_conf = stat_pearson(h, conf, n);
    cc->rho_conf = stat_spearman(h, conf, n);
    /* Split-half over participants on the same units (items), numbered
     * compactly within the scope so each split touches only its units. */
    int *subj = xmalloc(2 * (size_t)o->n * sizeof *subj), *unit = subj + o->n, k = 0, nu = 0;
    int *local = xmalloc((size_t)st->n_items * sizeof *local);
    for (int it = 0; it < st->n_items; it++)
        local[it] = cell < 0 || st->items[it].cell == cell ? nu++ : -1;
    double *v = xmalloc((size_t)o->n * sizeof *v);
    for (int i = 0; i < o->n; i++) {
        if (cell >= 0 && o->cell[i] != cell) continue;
        subj[k] = o->subj[i];
        unit[k] = local[o->item[i]];
        v[k++] = o->hc[i];
    }
    uint64_t seed = opt->seed ^ (0x5851F42D4C957F2Dull * (uint64_t)(cell + 2));
    split_half_reliability(subj, unit, v, k, st->n_included, nu, opt->splits, seed,
                           &cc->rel_pearson, &cc->rel_spearman);
    free(local);
    free(subj);
    free(v);
    free(h);
}

/* Kell et al. 2018: human vs model mean accuracy across condition cells;
 * r^2 corrected by the geometric mean of both split-half reliabilities (the
 * model's from the same participant splits: its cell means vary with the
 * stimuli each half heard). */
static void kell_comparison(const Study *st, const AnalysisOptions *opt, Results *r) {
    const Obs *o = &r->obs;
    int n = 0;
    double *h = xmalloc(2 * (size_t)st->n_cells * sizeof *h), *m = h + st->n_cells;
    for (int c = 0; c < st->n_cells; c++) {
        if (isnan(r->cells[c].human) || isnan(r->cells[c].model)) continue;
        h[n] = r->cells[c].human;
        m[n++] = r->cells[c].model;
    }
    r->kell_n_cells = n;
    r->kell_r = n >= 3 ? stat_pearson(h, m, n) : NAN;
    r->kell_r2 = r->kell_r * r->kell_r;
    double *vh = xmalloc(2 * (size_t)o->n * sizeof *vh), *vm = vh + o->n;
    for (int i = 0; i < o->n; i++) vh[i] = o->hc[i], vm[i] = o->mc[i];
    uint64_t seed = opt->seed ^ 0x2545F4914F6CDD1Dull;
    split_half_reliability(o->subj, o->cell, vh, o->n, st->n_included, st->n_cells, opt->splits,
                           seed, &r->kell_rel_human, NULL);
    split_half_reliability(o->subj, o->cell, vm, o->n, st->n_included, st->n_cells, opt->splits,
                           seed, &r->kell_rel_model, NULL);
    double gh = r->kell_rel_human.median, gm = r->kell_rel_model.median;
    r->kell_r2_corrected = gh > 0 && gm > 0 ? r->kell_r2 / sqrt(gh * gm) : NAN;
    free(vh);
    free(h);
}

/* Feather 2023: per (task, metamer model), proportion correct per
 * participant x stage for humans and for the model on the same stimuli;
 * mixed ANOVA observer (between) x stage (within) with permutation p. */
static void stage_anovas(const Study *st, const AnalysisOptions *opt, Results *r) {
    r->anovas = xcalloc((size_t)st->n_cells + 1, sizeof *r->anovas);
    for (int c0 = 0; c0 < st->n_cells; c0++) {
        const Cell *first = &st->cells[c0];
        if (!first->staged) continue;
        if (c0 > 0 && st->cells[c0 - 1].staged && st->cells[c0 - 1].task == first->task &&
            st->cells[c0 - 1].model == first->model)
            continue; /* not the first cell of its (task, model) group */
        StageAnova *a = &r->anovas[r->n_anovas++];
        a->task = first->task;
        a->model = first->model;
        a->cells = xmalloc((size_t)st->n_cells * sizeof *a->cells);
        for (int c = c0; c < st->n_cells && st->cells[c].staged &&
                         st->cells[c].task == first->task && st->cells[c].model == first->model;
             c++)
            a->cells[a->n_levels++] = c;
        int L = a->n_levels, ns = st->n_included;
        a->y = xmalloc(2 * (size_t)ns * (L > 0 ? L : 1) * sizeof *a->y);
        double *ym = xmalloc((size_t)ns * (L > 0 ? L : 1) * sizeof *ym);
        for (int s = 0; s < ns; s++) {
            bool complete = true;
            for (int l = 0; l < L; l++)
                complete &= !isnan(r->subj_cell_h[(size_t)s * st->n_cells + a->cells[l]]);
            if (!complete) {
                a->n_subj_dropped++;
                continue;
            }
            for (int l = 0; l < L; l++) {
                size_t k = (size_t)s * st->n_cells + a->cells[l];
                a->y[(size_t)a->n_subj_used * L + l] = r->subj_cell_h[k];
                ym[(size_t)a->n_subj_used * L + l] = r->subj_cell_m[k];
            }
            a->n_subj_used++;
        }
        int n = a->n_subj_used;
        memcpy(a->y + (size_t)n * L, ym, (size_t)n * L * sizeof *ym);
        free(ym);
        int *group = xmalloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *group);
        for (int s = 0; s < 2 * n; s++) group[s] = s >= n;
        a->ok = L >= 2 && n >= 2 && mixed_anova(a->y, group, 2 * n, L, 2, &a->anova) == 0;
        if (a->ok) {
            Rng rng;
            stream_rng(&rng, opt->seed, 4, (uint64_t)c0);
            mixed_anova_permutation(a->y, group, 2 * n, L, 2, opt->permutations, &rng, &a->perm);
        }
        free(group);
    }
}

int results_compute(const Study *st, const AnalysisOptions *opt, Results *r, Error *err) {
    (void)err;
    memset(r, 0, sizeof *r);
    obs_build(st, &r->obs);
    r->included_ids = xmalloc((size_t)st->n_included * sizeof *r->included_ids);
    for (int k = 0; k < st->n_subjects; k++)
        if (st->subjects[k].index >= 0) r->included_ids[st->subjects[k].index] = st->subjects[k].id;
    subject_cell_accuracy(st, r);
    item_accuracy(st, r);
    r->cells = xcalloc((size_t)st->n_cells, sizeof *r->cells);
    for (int c = 0; c < st->n_cells; c++) {
        cell_accuracy(st, opt, r, c);
        cell_consistency(st, opt, r, c);
    }
    r->clip_corr = xcalloc((size_t)st->n_cells + 1, sizeof *r->clip_corr);
    clip_correlation(st, opt, r, -1, &r->clip_corr[r->n_clip_corr++]);
    for (int c = 0; st->n_cells > 1 && c < st->n_cells; c++)
        clip_correlation(st, opt, r, c, &r->clip_corr[r->n_clip_corr++]);
    kell_comparison(st, opt, r);
    compute_confusions(st, r);
    stage_anovas(st, opt, r);
    return 0;
}

void results_free(const Study *st, Results *r) {
    (void)st;
    obs_free(&r->obs);
    free(r->included_ids);
    free(r->cells);
    free(r->clip_corr);
    free(r->item_human);
    free(r->item_n);
    for (int i = 0; i < r->n_conf; i++) {
        free(r->conf[i].labels);
        free(r->conf[i].human);
        free(r->conf[i].model);
    }
    free(r->conf);
    for (int i = 0; i < r->n_anovas; i++) {
        free(r->anovas[i].cells);
        free(r->anovas[i].y);
    }
    free(r->anovas);
    buf_free(&r->kappa_pairs_csv);
    free(r->subj_cell_h);
    free(r->subj_cell_m);
    memset(r, 0, sizeof *r);
}
