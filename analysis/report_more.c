/* Report sections: per-stimulus correlations with noise ceilings, error
 * consistency, the condition-level (Kell 2018) comparison, confusions and
 * most common errors per clip, and the methods paragraph. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

static void rel_cells(Buf *csv, const Reliability *r) {
    double v[] = {r->median, r->lo, r->hi};
    csv_nums(csv, v, 3);
}

/* r^2 over the reliability (a Spearman-Brown reliability is already a
 * variance ratio: it is not squared again). */
static double corrected(double r, const Reliability *rel) {
    return rel->median > 0 ? r * r / rel->median : NAN;
}

void report_clips(Doc *d, const Study *st, const Results *r) {
    doc_heading(d, 2, "Per-stimulus comparison");
    Buf items = {0}, corr = {0};
    buf_puts(&items, "task,clip_id,condition,model,stage,true_label,n_trials,human_acc,"
                     "model_top1,model_correct,model_p_top1\n");
    for (int it = 0; it < st->n_items; it++) {
        const Item *item = &st->items[it];
        const Cell *cl = &st->cells[item->cell];
        const ModelRow *m = &st->model[item->model_row];
        const int ids[] = {cl->task, item->clip, cl->condition, cl->model, cl->stage, m->label};
        for (int i = 0; i < 6; i++) {
            if (i) buf_puts(&items, ",");
            buf_csv_field(&items, study_str(st, ids[i]));
        }
        buf_printf(&items, ",%d,", r->item_n[it]);
        buf_num(&items, r->item_human[it], 10);
        buf_puts(&items, ",");
        buf_csv_field(&items, study_str(st, m->top1));
        buf_printf(&items, ",%d,", m->correct);
        buf_num(&items, m->p_top1, 10);
        buf_puts(&items, "\n");
    }
    doc_csv(d, "per_clip.csv", &items);
    buf_puts(&corr, "scope,n_stimuli,r_confidence,rho_confidence,r_correct,rho_correct,"
                    "reliability_pearson,reliability_pearson_lo,reliability_pearson_hi,"
                    "reliability_spearman,reliability_spearman_lo,reliability_spearman_hi,"
                    "n_splits,r2_confidence_corrected,rho2_confidence_corrected,"
                    "r2_correct_corrected,rho2_correct_corrected\n");
    doc_para(d, "Each stimulus's human accuracy (over the participants who heard it) against the "
                "model's confidence in its answer (p top-1) and its correctness. The noise "
                "ceiling is the split-half reliability of human accuracy over participants "
                "(random halves, Spearman-Brown 2r/(1+r)); corrected r^2 = r^2 / reliability "
                "(not squared again). With few listeners per stimulus the reliability is low "
                "and noisy: a corrected value whose reliability interval reaches 0 is marked "
                "unreliable, and values above 1 only mean the ceiling is poorly estimated.");
    const char *head[] = {"stimuli", "n", "r (conf.)", "rho (conf.)", "r (correct)",
                          "rho (correct)", "reliability [2.5%, 97.5%]", "r^2/rel. (conf.)"};
    doc_table_begin(d, 8, head);
    for (int k = 0; k < r->n_clip_corr; k++) {
        const ClipCorr *c = &r->clip_corr[k];
        char rel[96];
        snprintf(rel, sizeof rel, "%s %s", fmt_num(c->rel_pearson.median, 2),
                 fmt_ci((Ci){c->rel_pearson.lo, c->rel_pearson.hi}));
        char corr_txt[64];
        snprintf(corr_txt, sizeof corr_txt, "%s%s",
                 fmt_num(corrected(c->r_conf, &c->rel_pearson), 3),
                 c->rel_pearson.median > 0 && !(c->rel_pearson.lo > 0) ? " (unreliable)" : "");
        const char *row[] = {c->scope, fmt_num(c->n_items, 0), fmt_num(c->r_conf, 3),
                             fmt_num(c->rho_conf, 3), fmt_num(c->r_correct, 3),
                             fmt_num(c->rho_correct, 3), rel, corr_txt};
        doc_row(d, row);
        buf_csv_field(&corr, c->scope);
        buf_printf(&corr, ",%d", c->n_items);
        double v[] = {c->r_conf, c->rho_conf, c->r_correct, c->rho_correct};
        csv_nums(&corr, v, 4);
        rel_cells(&corr, &c->rel_pearson);
        rel_cells(&corr, &c->rel_spearman);
        buf_printf(&corr, ",%d", c->rel_pearson.n_splits);
        double w[] = {corrected(c->r_conf, &c->rel_pearson), corrected(c->rho_conf, &c->rel_spearman),
                      corrected(c->r_correct, &c->rel_pearson),
                      corrected(c->rho_correct, &c->rel_spearman)};
        csv_nums(&corr, w, 4);
        buf_puts(&corr, "\n");
    }
    doc_table_end(d);
    doc_csv(d, "per_clip_correlations.csv", &corr);
    Buf svg = {0};
    svg_clip_scatter(&svg, st, r);
    doc_figure(d, "per_clip.svg", &svg,
               "Per-stimulus human accuracy vs model confidence (left) and the correlations "
               "with their noise ceiling (right). Numbers in per_clip.csv and "
               "per_clip_correlations.csv");
    buf_free(&svg);
    buf_free(&items);
    buf_free(&corr);
}

void report_consistency(Doc *d, const Study *st, const Results *r, const AnalysisOptions *opt) {
    doc_heading(d, 2, "Error consistency");
    doc_para(d,
             "Cohen's kappa over trials (Geirhos et al. 2020): c_exp = p1 p2 + (1-p1)(1-p2), "
             "kappa = (c_obs - c_exp)/(1 - c_exp), NaN when c_exp = 1. Human-model: each "
             "participant against the model on exactly their trials; human-human (the ceiling): "
             "pairs of participants on the stimuli both heard (at least %d). Means over pairs "
             "with 95%% bootstrap CIs (trials resampled jointly for both observers). Conditions "
             "with mean human accuracy below %.2f are flagged: kappa is not meaningful there.",
             opt->min_shared, opt->low_accuracy);
    const char *head[] = {"condition", "humans", "kappa human-model", "CI", "pairs",
                          "reachable range", "kappa human-human", "CI", "pairs", "flag"};
    doc_table_begin(d, 10, head);
    Buf csv = {0};
    buf_puts(&csv, "condition,human_acc,low_accuracy_flag,n_hm_pairs,n_hm_defined,kappa_hm,"
                   "kappa_hm_ci_lo,kappa_hm_ci_hi,c_obs_hm,c_exp_hm,kappa_min_hm,kappa_max_hm,"
                   "n_hh_pairs,n_hh_defined,kappa_hh,kappa_hh_ci_lo,kappa_hh_ci_hi,c_obs_hh,"
                   "c_exp_hh,kappa_min_hh,kappa_max_hh\n");
    int n = st->n_cells;
    double *v = xmalloc(7 * (size_t)n * sizeof *v);
    const char **labels = xmalloc((size_t)n * sizeof *labels);
    char (*flagged)[170] = xmalloc((size_t)n * sizeof *flagged);
    double ymin = -0.2;
    for (int c = 0; c < n; c++) {
        const CellStats *s = &r->cells[c];
        char pairs_hm[32], pairs_hh[32], range[64];
        snprintf(pairs_hm, sizeof pairs_hm, "%d/%d", s->n_hm_defined, s->n_hm_pairs);
        snprintf(pairs_hh, sizeof pairs_hh, "%d/%d", s->n_hh_defined, s->n_hh_pairs);
        snprintf(range, sizeof range, "%s to %s", fmt_num(s->hm_kmin, 2), fmt_num(s->hm_kmax, 2));
        const char *row[] = {st->cells[c].label, fmt_num(s->human, 3), fmt_num(s->k_hm, 3),
                             fmt_ci(s->k_hm_ci), pairs_hm, range, fmt_num(s->k_hh, 3),
                             fmt_ci(s->k_hh_ci), pairs_hh, s->low_accuracy ? "low accuracy" : ""};
        doc_row(d, row);
        buf_csv_field(&csv, st->cells[c].label);
        buf_puts(&csv, ",");
        buf_num(&csv, s->human, 10);
        buf_printf(&csv, ",%s,%d,%d", s->low_accuracy ? "true" : "false", s->n_hm_pairs,
                   s->n_hm_defined);
        double a[] = {s->k_hm, s->k_hm_ci.lo, s->k_hm_ci.hi, s->hm_c_obs, s->hm_c_exp,
                      s->hm_kmin, s->hm_kmax};
        csv_nums(&csv, a, 7);
        buf_printf(&csv, ",%d,%d", s->n_hh_pairs, s->n_hh_defined);
        double b[] = {s->k_hh, s->k_hh_ci.lo, s->k_hh_ci.hi, s->hh_c_obs, s->hh_c_exp,
                      s->hh_kmin, s->hh_kmax};
        csv_nums(&csv, b, 7);
        buf_puts(&csv, "\n");
        double f[] = {s->k_hm, s->k_hm_ci.lo, s->k_hm_ci.hi, s->k_hh, s->k_hh_ci.lo,
                      s->k_hh_ci.hi, s->hm_kmax};
        for (int k = 0; k < 7; k++) v[(size_t)k * n + c] = f[k];
        snprintf(flagged[c], sizeof flagged[c], "%s%s", st->cells[c].label,
                 s->low_accuracy ? " (!)" : "");
        labels[c] = flagged[c];
        if (!isnan(s->k_hm_ci.lo) && s->k_hm_ci.lo < ymin) ymin = s->k_hm_ci.lo;
        if (!isnan(s->k_hh_ci.lo) && s->k_hh_ci.lo < ymin) ymin = s->k_hh_ci.lo;
    }
    doc_table_end(d);
    doc_csv(d, "error_consistency.csv", &csv);
    doc_csv(d, "error_consistency_pairs.csv", &r->kappa_pairs_csv);
    Series ser[3] = {
        {"Human-model", "#d95f02", v, v + n, v + 2 * n, false, true},
        {"Human-human (ceiling)", "#555555", v + 3 * n, v + 4 * n, v + 5 * n, false, false},
        {"Max. reachable, human-model", "#d95f02", v + 6 * n, NULL, NULL, true, false},
    };
    double zero = 0;
    Buf svg = {0};
    CategoryPlot plot = {.title = "Error consistency (Cohen's kappa)",
                         .xlabel = "Condition",
                         .ylabel = "kappa",
                         .n_x = n,
                         .xlabels = labels,
                         .series = ser,
                         .n_series = 3,
                         .ymin = floor(ymin * 5) / 5,
                         .ymax = 1,
                         .hline = &zero,
                         .hline_label = "chance (kappa = 0)"};
    svg_category_plot(&svg, &plot);
    doc_figure(d, "error_consistency.svg", &svg,
               "Error consistency per condition: mean kappa over pairs with 95% bootstrap CIs; "
               "(!) marks conditions with mean human accuracy below the threshold. Numbers in "
               "error_consistency.csv, per pair in error_consistency_pairs.csv");
    buf_free(&svg);
    buf_free(&csv);
    free(v);
    free(labels);
    free(flagged);
}

void report_kell(Doc *d, const Study *st, const Results *r) {
    doc_heading(d, 2, "Condition-level comparison");
    Buf csv = {0};
    buf_puts(&csv, "condition,human_acc,model_acc\n");
    for (int c = 0; c < st->n_cells; c++) {
        buf_csv_field(&csv, st->cells[c].label);
        double v[] = {r->cells[c].human, r->cells[c].model};
        csv_nums(&csv, v, 2);
        buf_puts(&csv, "\n");
    }
    buf_puts(&csv, "\nsummary,value\n");
    const char *names[] = {"n_cells", "pearson_r", "r2", "reliability_human",
                           "reliability_human_lo", "reliability_human_hi", "reliability_model",
                           "reliability_model_lo", "reliability_model_hi", "r2_noise_corrected"};
    double vals[] = {r->kell_n_cells, r->kell_r, r->kell_r2, r->kell_rel_human.median,
                     r->kell_rel_human.lo, r->kell_rel_human.hi, r->kell_rel_model.median,
                     r->kell_rel_model.lo, r->kell_rel_model.hi, r->kell_r2_corrected};
    for (int i = 0; i < 10; i++) {
        buf_printf(&csv, "%s,", names[i]);
        buf_num(&csv, vals[i], 10);
        buf_puts(&csv, "\n");
    }
    doc_csv(d, "condition_comparison.csv", &csv);
    buf_free(&csv);
    if (r->kell_n_cells < 3) {
        doc_para(d, "Kell et al. 2018-style correlation across conditions needs at least three "
                    "conditions (%d here).", r->kell_n_cells);
        return;
    }
    doc_para(d,
             "Kell et al. 2018 style: across %d conditions, Pearson r between human and model "
             "mean accuracy = %s (r^2 = %s). Split-half reliability of the condition means "
             "(participants split at random, Spearman-Brown): humans %s %s, model on the same "
             "stimuli %s %s. Noise-corrected r^2 = r^2 / sqrt(rel_h rel_m) = %s.",
             r->kell_n_cells, fmt_num(r->kell_r, 3), fmt_num(r->kell_r2, 3),
             fmt_num(r->kell_rel_human.median, 3),
             fmt_ci((Ci){r->kell_rel_human.lo, r->kell_rel_human.hi}),
             fmt_num(r->kell_rel_model.median, 3),
             fmt_ci((Ci){r->kell_rel_model.lo, r->kell_rel_model.hi}),
             fmt_num(r->kell_r2_corrected, 3));
}

/* ------------------------------------------------------------ confusions */

typedef struct {
    int task, clip, answer;
} ErrKey;

static int cmp_err(const void *x, const void *y) {
    const ErrKey *a = x, *b = y;
    if (a->task != b->task) return a->task - b->task;
    if (a->clip != b->clip) return a->clip - b->clip;
    return a->answer - b->answer;
}

/* Most common answer among errors of each (task, clip): *best/n_best. */
typedef struct {
    int task, clip, n, errors, best, n_best;
} ClipErr;

static int tally(ErrKey *e, int n, ClipErr *out) {
    qsort(e, (size_t)n, sizeof *e, cmp_err);
    int m = 0;
    for (int i = 0; i < n;) {
        int j = i, run = 0;
        ClipErr *c = &out[m++];
        *c = (ClipErr){e[i].task, e[i].clip, 0, 0, -1, 0};
        for (; j < n && e[j].task == e[i].task && e[j].clip == e[i].clip; j++) {
            c->n++;
            if (e[j].answer < 0) continue; /* a correct answer */
            c->errors++;
            run = j > i && e[j - 1].answer == e[j].answer ? run + 1 : 1;
            if (run > c->n_best) c->n_best = run, c->best = e[j].answer;
        }
        i = j;
    }
    return m;
}

static void clip_errors(Doc *d, const Study *st, const Results *r) {
    const Obs *o = &r->obs;
    ErrKey *h = xmalloc(((size_t)o->n + st->n_items + 1) * sizeof *h), *m = h + o->n;
    for (int i = 0; i < o->n; i++)
        h[i] = (ErrKey){st->cells[o->cell[i]].task, o->clip[i], o->hc[i] ? -1 : o->response[i]};
    for (int it = 0; it < st->n_items; it++) {
        const ModelRow *mr = &st->model[st->items[it].model_row];
        m[it] = (ErrKey){st->cells[st->items[it].cell].task, st->items[it].clip,
                         mr->correct ? -1 : mr->top1};
    }
    ClipErr *ch = xmalloc(((size_t)o->n + st->n_items + 1) * sizeof *ch), *cm = ch + o->n;
    int nh = tally(h, o->n, ch), nm = tally(m, st->n_items, cm);
    Buf csv = {0};
    buf_puts(&csv, "task,clip_id,human_trials,human_errors,human_top_error,human_top_error_n,"
                   "model_stimuli,model_errors,model_top_error,model_top_error_n,same_top_error\n");
    for (int i = 0, j = 0; i < nh; i++) { /* both sorted by (task, clip) */
        while (j < nm && (cm[j].task < ch[i].task ||
                          (cm[j].task == ch[i].task && cm[j].clip < ch[i].clip)))
            j++;
        const ClipErr *mc = j < nm && cm[j].task == ch[i].task && cm[j].clip == ch[i].clip ? &cm[j] : NULL;
        buf_csv_field(&csv, study_str(st, ch[i].task));
        buf_puts(&csv, ",");
        buf_csv_field(&csv, study_str(st, ch[i].clip));
        buf_printf(&csv, ",%d,%d,", ch[i].n, ch[i].errors);
        buf_csv_field(&csv, ch[i].best >= 0 ? study_str(st, ch[i].best) : "");
        buf_printf(&csv, ",%d,%d,%d,", ch[i].n_best, mc ? mc->n : 0, mc ? mc->errors : 0);
        buf_csv_field(&csv, mc && mc->best >= 0 ? study_str(st, mc->best) : "");
        buf_printf(&csv, ",%d,%s\n", mc ? mc->n_best : 0,
                   mc && mc->best >= 0 && mc->best == ch[i].best ? "true" : "false");
    }
    doc_csv(d, "clip_errors.csv", &csv);
    int shared = 0, both = 0;
    for (int i = 0, j = 0; i < nh; i++) {
        while (j < nm && (cm[j].task < ch[i].task || (cm[j].task == ch[i].task && cm[j].clip < ch[i].clip))) j++;
        if (j < nm && cm[j].clip == ch[i].clip && cm[j].task == ch[i].task && ch[i].best >= 0 &&
            cm[j].best >= 0) {
            both++;
            shared += cm[j].best == ch[i].best;
        }
    }
    doc_para(d,
             "Most common errors per clip are in clip_errors.csv. Of %d clips on which both "
             "humans and the model made errors, the most common human error equals the model's "
             "in %d.",
             both, shared);
    buf_free(&csv);
    free(h);
    free(ch);
}

void report_confusions(Doc *d, const Study *st, const Results *r) {
    doc_heading(d, 2, "Confusions");
    doc_para(d, "Confusion matrices of humans and of the model on the same trials, rows "
                "normalized; r is the Pearson correlation of the two normalized matrices, "
                "off-diagonal r leaves out correct answers.");
    const char *head[] = {"task", "labels", "r", "off-diagonal r"};
    doc_table_begin(d, 4, head);
    for (int k = 0; k < r->n_conf; k++) {
        const Confusion *c = &r->conf[k];
        const char *row[] = {study_str(st, c->task), fmt_num(c->n_rows, 0), fmt_num(c->r_all, 3),
                             fmt_num(c->r_offdiag, 3)};
        doc_row(d, row);
    }
    doc_table_end(d);
    for (int k = 0; k < r->n_conf; k++) {
        const Confusion *c = &r->conf[k];
        const char *task = fmt_slug(study_str(st, c->task));
        char svg_name[128], csv_name[128], caption[256];
        snprintf(svg_name, sizeof svg_name, "confusion_%s.svg", task);
        snprintf(csv_name, sizeof csv_name, "confusion_%s.csv", task);
        Buf csv = {0};
        buf_puts(&csv, "true_label,answer,human_count,human_row_prop,model_count,model_row_prop\n");
        int nl = c->n_labels;
        for (int i = 0; i < c->n_rows; i++) {
            double sh = 0, sm = 0;
            for (int j = 0; j < nl; j++) sh += c->human[(size_t)i * nl + j], sm += c->model[(size_t)i * nl + j];
            for (int j = 0; j < nl; j++) {
                double hv = c->human[(size_t)i * nl + j], mv = c->model[(size_t)i * nl + j];
                if (hv == 0 && mv == 0) continue;
                buf_csv_field(&csv, study_str(st, c->labels[i]));
                buf_puts(&csv, ",");
                buf_csv_field(&csv, study_str(st, c->labels[j]));
                double v[] = {hv, sh > 0 ? hv / sh : NAN, mv, sm > 0 ? mv / sm : NAN};
                csv_nums(&csv, v, 4);
                buf_puts(&csv, "\n");
            }
        }
        doc_csv(d, csv_name, &csv);
        buf_free(&csv);
        snprintf(caption, sizeof caption,
                 "Confusion matrices for task %s (row proportions; numbers in %s)",
                 study_str(st, c->task), csv_name);
        Buf svg = {0};
        svg_confusion(&svg, st, c, 30);
        doc_figure(d, svg_name, &svg, caption);
        buf_free(&svg);
    }
    clip_errors(d, st, r);
}

void report_methods(Doc *d, const AnalysisOptions *opt) {
    doc_heading(d, 2, "Methods");
    doc_para(d,
             "Bootstrap CIs are 95%% percentile intervals from %d resamples. Permutation "
             "p-values use %d permutations and are floored at 1/N. The mixed ANOVA treats the "
             "model scored on each participant's stimuli as one model observer per participant "
             "(Feather et al. 2023); its permutation tests shuffle observer labels across "
             "observers (main effect of observer), stage order within each observer (stage), "
             "or both (interaction). Split-half reliabilities use %d random splits of the "
             "participants; the spread is the 2.5-97.5 percentile range over splits. All "
             "random draws come from xoshiro256** seeded with %llu.",
             opt->bootstrap, opt->permutations, opt->splits, (unsigned long long)opt->seed);
}
