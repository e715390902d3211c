/* Report sections: participants and exclusions, accuracy per condition, the
 * recognition-by-stage curve with its ANOVA; and report_write, which runs
 * every section. Each table the report shows is also written as CSV with
 * full precision and more columns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

static const char *reason_name[N_EXCL] = {"included", "failed headphone screen",
                                          "failed practice gate", "excluded flag",
                                          "catch-trial accuracy below threshold"};

void report_exclusions(Doc *d, const Study *st, const AnalysisOptions *opt) {
    doc_heading(d, 2, "Participants and exclusions");
    Buf csv = {0};
    buf_puts(&csv, "participant_id,headphone_check,practice,excluded_flag,n_rows,n_main,"
                   "main_accuracy,n_catch,catch_accuracy,included,reason\n");
    for (int k = 0; k < st->n_subjects; k++) {
        const Participant *p = &st->subjects[k];
        buf_printf(&csv, "sub-%s,%s,%s,%s,%d,%d,", p->id,
                   p->headphone < 0 ? "n/a" : p->headphone ? "pass" : "fail",
                   p->practice < 0 ? "n/a" : p->practice ? "pass" : "fail",
                   p->excluded_flag ? "true" : "false", p->n_rows, p->n_main);
        buf_num(&csv, p->n_main ? (double)p->n_main_correct / p->n_main : NAN, 10);
        buf_printf(&csv, ",%d,", p->n_catch);
        buf_num(&csv, p->n_catch ? (double)p->n_catch_correct / p->n_catch : NAN, 10);
        buf_printf(&csv, ",%s,%s\n", p->reason == EXCL_NONE ? "true" : "false",
                   reason_name[p->reason]);
    }
    doc_csv(d, "exclusions.csv", &csv);
    buf_free(&csv);
    int analysed = 0;
    for (int i = 0; i < st->n_trials; i++) analysed += st->trials[i].cell >= 0;
    doc_para(d,
             "%d participants in %s; %d included. Exclusions are applied in the order below; "
             "a participant failing several criteria is counted at the first. %d main trials "
             "of included participants are analysed.",
             st->n_subjects, opt->participants, st->n_included, analysed);
    const char *head[] = {"criterion", "participants failing it", "excluded at this step"};
    doc_table_begin(d, 3, head);
    for (int r = EXCL_NONE + 1; r < N_EXCL; r++) {
        char crit[96];
        if (r == EXCL_CATCH)
            snprintf(crit, sizeof crit, "catch-trial accuracy < %.2f", opt->catch_threshold);
        const char *row[] = {r == EXCL_CATCH ? crit : reason_name[r],
                             fmt_num(st->n_failing[r], 0), fmt_num(st->n_excluded_by[r], 0)};
        doc_row(d, row);
    }
    const char *inc[] = {"included", "", fmt_num(st->n_included, 0)};
    doc_row(d, inc);
    doc_table_end(d);
    if (st->n_metamer_stages) {
        doc_para(d,
                 "Metamer synthesis success (Feather 2023 criterion, from metamers.csv). Trials "
                 "of metamers that failed it are not analysed: %d trials dropped.",
                 st->n_dropped_trials);
        const char *h2[] = {"stage", "metamers", "passed", "success rate"};
        doc_table_begin(d, 4, h2);
        Buf m = {0};
        buf_puts(&m, "stage,n_metamers,n_passed,success_rate\n");
        for (int s = 0; s < st->n_metamer_stages; s++) {
            double rate = st->metamer_n[s] ? (double)st->metamer_passed[s] / st->metamer_n[s] : NAN;
            const char *row[] = {study_str(st, st->metamer_stage[s]), fmt_num(st->metamer_n[s], 0),
                                 fmt_num(st->metamer_passed[s], 0), fmt_pct(rate)};
            doc_row(d, row);
            buf_csv_field(&m, study_str(st, st->metamer_stage[s]));
            buf_printf(&m, ",%d,%d,", st->metamer_n[s], st->metamer_passed[s]);
            buf_num(&m, rate, 10);
            buf_puts(&m, "\n");
        }
        doc_table_end(d);
        doc_csv(d, "metamer_success.csv", &m);
        buf_free(&m);
    }
}

void report_conditions(Doc *d, const Study *st, const Results *r) {
    doc_heading(d, 2, "Accuracy per condition");
    doc_para(d, "Human accuracy is the mean over participants of each participant's proportion "
                "correct, with 95%% percentile-bootstrap CIs over participants and over clips. "
                "The model is scored on exactly the stimuli each participant heard; the "
                "difference is paired within participants (bootstrap CI, sign-flip "
                "permutation p).");
    const char *head[] = {"condition", "participants", "clips", "humans", "CI (participants)",
                          "CI (clips)", "model", "CI", "humans - model", "CI", "p"};
    doc_table_begin(d, 11, head);
    Buf csv = {0};
    buf_puts(&csv, "condition,task,condition_name,model,stage,n_participants,n_clips,n_stimuli,"
                   "n_trials,human_acc,human_ci_lo,human_ci_hi,human_acc_by_clip,"
                   "human_clip_ci_lo,human_clip_ci_hi,model_acc,model_ci_lo,model_ci_hi,"
                   "model_acc_by_stimulus,diff,diff_ci_lo,diff_ci_hi,diff_perm_p\n");
    for (int c = 0; c < st->n_cells; c++) {
        const CellStats *s = &r->cells[c];
        const Cell *cl = &st->cells[c];
        const char *row[] = {cl->label,           fmt_num(s->n_subj, 0), fmt_num(s->n_clips, 0),
                             fmt_num(s->human, 3), fmt_ci(s->human_ci), fmt_ci(s->human_clips_ci),
                             fmt_num(s->model, 3), fmt_ci(s->model_ci), fmt_num(s->diff, 3),
                             fmt_ci(s->diff_ci),  fmt_p(s->diff_p)};
        doc_row(d, row);
        buf_csv_field(&csv, cl->label);
        const int ids[] = {cl->task, cl->condition, cl->model, cl->stage};
        for (int i = 0; i < 4; i++) {
            buf_puts(&csv, ",");
            buf_csv_field(&csv, study_str(st, ids[i]));
        }
        buf_printf(&csv, ",%d,%d,%d,%d", s->n_subj, s->n_clips, s->n_items, s->n_trials);
        double v[] = {s->human,        s->human_ci.lo, s->human_ci.hi,  s->human_clips,
                      s->human_clips_ci.lo, s->human_clips_ci.hi, s->model, s->model_ci.lo,
                      s->model_ci.hi,  s->model_items, s->diff,        s->diff_ci.lo,
                      s->diff_ci.hi,   s->diff_p};
        csv_nums(&csv, v, (int)(sizeof v / sizeof *v));
        buf_puts(&csv, "\n");
    }
    doc_table_end(d);
    doc_csv(d, "conditions.csv", &csv);
    buf_free(&csv);
}

/* Groups for the recognition curve: per task, its natural-like cells, then
 * the staged cells of one metamer model (one group per model). */
static int recognition_group(const Study *st, int task, int model, int *cells) {
    int n = 0;
    for (int c = 0; c < st->n_cells; c++) {
        const Cell *cl = &st->cells[c];
        if (cl->task == task && (!cl->staged || cl->model == model)) cells[n++] = c;
    }
    return n;
}

static void recognition_figure(Doc *d, const Study *st, const Results *r, int task, int model,
                               Buf *csv, int n_groups) {
    int *cells = xmalloc((size_t)st->n_cells * sizeof *cells);
    int n = recognition_group(st, task, model, cells);
    double *v = xmalloc(6 * (size_t)n * sizeof *v);
    const char **labels = xmalloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) {
        const CellStats *s = &r->cells[cells[i]];
        const Cell *cl = &st->cells[cells[i]];
        labels[i] = cl->staged ? study_str(st, cl->stage) : study_str(st, cl->condition);
        double row[] = {s->human, s->human_ci.lo, s->human_ci.hi, s->model, s->model_ci.lo,
                        s->model_ci.hi};
        for (int k = 0; k < 6; k++) v[(size_t)k * n + i] = row[k];
        buf_csv_field(csv, study_str(st, task));
        buf_puts(csv, ",");
        buf_csv_field(csv, study_str(st, model));
        buf_puts(csv, ",");
        buf_csv_field(csv, labels[i]);
        buf_printf(csv, ",%s,%d", cl->staged ? "metamer" : "natural", s->n_subj);
        csv_nums(csv, row, 6);
        buf_puts(csv, "\n");
    }
    Series ser[2] = {
        {"Humans", "#222222", v, v + n, v + 2 * n, false, false},
        {"Model (same stimuli)", "#d95f02", v + 3 * n, v + 4 * n, v + 5 * n, false, true},
    };
    char title[256], name[160], caption[512];
    const char *mname = study_str(st, model);
    if (mname[0])
        snprintf(title, sizeof title, "Recognition of %s metamers by stage (task %s)", mname,
                 study_str(st, task));
    else
        snprintf(title, sizeof title, "Recognition by condition (task %s)", study_str(st, task));
    if (n_groups == 1)
        snprintf(name, sizeof name, "recognition.svg");
    else
        snprintf(name, sizeof name, "recognition_%s_%s.svg", fmt_slug(study_str(st, task)),
                 fmt_slug(mname));
    snprintf(caption, sizeof caption,
             "%s. Proportion correct, mean over participants with 95%% bootstrap CIs over "
             "participants; the model is scored on the stimuli each participant heard. Numbers "
             "in recognition.csv.",
             title);
    Buf svg = {0};
    int n_natural = 0;
    while (n_natural < n && !st->cells[cells[n_natural]].staged) n_natural++;
    CategoryPlot plot = {.title = title,
                         .xlabel = mname[0] ? "Condition: natural, or metamers matched at stage"
                                            : "Condition",
                         .ylabel = "Proportion correct",
                         .n_x = n,
                         .xlabels = labels,
                         .series = ser,
                         .n_series = 2,
                         .ymin = 0,
                         .ymax = 1,
                         .n_separate = n_natural < n ? n_natural : 0};
    svg_category_plot(&svg, &plot);
    doc_figure(d, name, &svg, caption);
    buf_free(&svg);
    free(cells);
    free(v);
    free(labels);
}

static void anova_table(Doc *d, const Study *st, const StageAnova *a, Buf *csv, Buf *data) {
    const char *model = study_str(st, a->model), *task = study_str(st, a->task);
    if (!a->ok) {
        doc_para(d, "Mixed ANOVA for %s metamers (task %s) not computed: it needs at least two "
                    "stages and two participants with data at every stage (%d usable, %d "
                    "dropped).",
                 model, task, a->n_subj_used, a->n_subj_dropped);
        return;
    }
    doc_para(d,
             "Mixed ANOVA of proportion correct, %s metamers (task %s): observer (humans vs "
             "model, between) x stage (within, %d levels), %d participants and their %d "
             "model-scored copies%s. Permutation p from %d permutations (floored at 1/N).",
             model, task, a->n_levels, a->n_subj_used, a->n_subj_used,
             a->n_subj_dropped ? " (participants missing a stage left out)" : "", a->perm.n_perm);
    const char *head[] = {"effect", "F", "df", "p (F test)", "p (permutation)", "partial eta^2"};
    doc_table_begin(d, 6, head);
    const AnovaTerm *terms[] = {&a->anova.group, &a->anova.level, &a->anova.interaction};
    const AnovaTerm *errs[] = {&a->anova.subjects, &a->anova.residual, &a->anova.residual};
    const char *names[] = {"observer", "stage", "observer x stage"};
    double pp[] = {a->perm.p_group, a->perm.p_level, a->perm.p_interaction};
    for (int i = 0; i < 3; i++) {
        char df[64];
        snprintf(df, sizeof df, "%g, %g", terms[i]->df, errs[i]->df);
        const char *row[] = {names[i], fmt_num(terms[i]->F, 2), df, fmt_p(terms[i]->p),
                             fmt_p(pp[i]), fmt_num(terms[i]->eta_p2, 3)};
        doc_row(d, row);
        buf_csv_field(csv, task);
        buf_puts(csv, ",");
        buf_csv_field(csv, model);
        buf_printf(csv, ",%s", names[i]);
        double v[] = {terms[i]->ss, terms[i]->df, errs[i]->ss, errs[i]->df, terms[i]->F,
                      terms[i]->p,  pp[i],        terms[i]->eta_p2};
        csv_nums(csv, v, 8);
        buf_printf(csv, ",%d,%d\n", a->n_subj_used, a->perm.n_perm);
    }
    doc_table_end(d);
    for (int s = 0; s < 2 * a->n_subj_used; s++)
        for (int l = 0; l < a->n_levels; l++) {
            buf_csv_field(data, task);
            buf_puts(data, ",");
            buf_csv_field(data, model);
            buf_printf(data, ",%d,%s,", s % a->n_subj_used, s < a->n_subj_used ? "human" : "model");
            buf_csv_field(data, study_str(st, st->cells[a->cells[l]].stage));
            buf_puts(data, ",");
            buf_num(data, a->y[(size_t)s * a->n_levels + l], 10);
            buf_puts(data, "\n");
        }
}

/* A figure per (task, metamer model); a task without metamers gets one. */
static bool starts_group(const Study *st, int c) {
    const Cell *cl = &st->cells[c], *prev = c > 0 ? &st->cells[c - 1] : NULL;
    if (cl->staged)
        return !prev || !prev->staged || prev->model != cl->model || prev->task != cl->task;
    bool task_has_staged = false;
    for (int k = c; k < st->n_cells && st->cells[k].task == cl->task; k++)
        task_has_staged |= st->cells[k].staged;
    return (!prev || prev->task != cl->task) && !task_has_staged;
}

void report_recognition(Doc *d, const Study *st, const Results *r) {
    doc_heading(d, 2, r->n_anovas ? "Metamer recognition by stage" : "Recognition by condition");
    Buf csv = {0}, an = {0}, data = {0};
    buf_puts(&csv, "task,model,stage_or_condition,kind,n_participants,human_acc,human_ci_lo,"
                   "human_ci_hi,model_acc,model_ci_lo,model_ci_hi\n");
    int groups = 0;
    for (int c = 0; c < st->n_cells; c++) groups += starts_group(st, c);
    for (int c = 0; c < st->n_cells; c++) {
        const Cell *cl = &st->cells[c];
        if (starts_group(st, c))
            recognition_figure(d, st, r, cl->task, cl->staged ? cl->model : -1, &csv, groups);
    }
    doc_csv(d, "recognition.csv", &csv);
    buf_puts(&an, "task,model,effect,ss,df,ss_error,df_error,F,p,p_permutation,partial_eta2,"
                  "n_participants,n_permutations\n");
    buf_puts(&data, "task,model,participant,observer,stage,accuracy\n");
    for (int i = 0; i < r->n_anovas; i++) anova_table(d, st, &r->anovas[i], &an, &data);
    if (r->n_anovas) {
        doc_csv(d, "anova.csv", &an);
        doc_csv(d, "participant_stage_accuracy.csv", &data);
    }
    buf_free(&csv);
    buf_free(&an);
    buf_free(&data);
}

int report_write(const Study *st, const Results *r, const AnalysisOptions *opt, Error *err) {
    if (make_dirs(opt->out, 0755, err) != 0) return -1;
    Doc d = {.dir = opt->out, .err = err};
    int n_globs = opt->n_trial_globs;
    doc_para(&d, "Generated by `metamers analyze` from %d trial log%s (%s%s), %s and %s%s%s. "
                 "Seed %llu, %d bootstrap resamples, %d permutations, %d split halves: the "
                 "same inputs and options give the same numbers.",
             st->n_files, st->n_files == 1 ? "" : "s", opt->trial_globs[0],
             n_globs > 1 ? ", ..." : "", opt->participants, opt->model_responses,
             opt->metamers ? " and " : "", opt->metamers ? opt->metamers : "",
             (unsigned long long)opt->seed, opt->bootstrap, opt->permutations, opt->splits);
    report_exclusions(&d, st, opt);
    report_conditions(&d, st, r);
    report_recognition(&d, st, r);
    report_clips(&d, st, r);
    report_consistency(&d, st, r, opt);
    report_kell(&d, st, r);
    report_confusions(&d, st, r);
    report_methods(&d, opt);
    return doc_finish(&d, "Humans vs model: error patterns per clip and per stage");
}
