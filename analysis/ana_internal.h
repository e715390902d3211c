/* Internals of the analysis module shared between its .c files (and its
 * tests): text buffers, string interning, the loaded study
 * and the computed results. Not part of the public interface. */
#ifndef ANA_INTERNAL_H
#define ANA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "analysis.h"

/* ------------------------------------------------------------ text buffer */

/* Growable NUL-terminated text; every output file is built in one and then
 * written with atomic_write_file. */
typedef struct {
    char *s;
    size_t len, cap;
} Buf;

void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(Buf *b, const char *fmt, va_list ap);
void buf_put(Buf *b, const char *s, size_t n);
void buf_puts(Buf *b, const char *s);
/* A CSV field: quoted (RFC 4180) when table_field_needs_quotes says so. */
void buf_csv_field(Buf *b, const char *s);
/* A number for a CSV/Markdown cell: %.*g, "NaN" for NaN (empty never). */
void buf_num(Buf *b, double x, int digits);
/* Text escaped for HTML/SVG (& < > "). */
void buf_xml(Buf *b, const char *s);
void buf_free(Buf *b);
/* Writes b atomically to dir/name (mode 0644). */
int buf_write(const Buf *b, const char *dir, const char *name, Error *err);

/* ------------------------------------------------------- string interning */

/* Labels, clip ids, conditions... repeat on every trial; interning turns
 * them into small ints so grouping is array indexing, not string compares. */
typedef struct {
    char **str;
    int n, cap;
    int *slots; /* open addressing: id + 1, 0 = empty */
    int n_slots;
} StrPool;

int strpool_intern(StrPool *p, const char *s);
int strpool_intern_n(StrPool *p, const char *s, size_t len);
/* -1 if absent. */
int strpool_find(const StrPool *p, const char *s);
const char *strpool_get(const StrPool *p, int id);
void strpool_free(StrPool *p);

/* "", "n/a", "N/A", "NA": BIDS spells a missing value "n/a". */
bool is_na(const char *s);

/* Table reading is core's table_read (TableRow, TableRowFn, table_col). */

/* ------------------------------------------------------------- the study */

typedef enum { TRIAL_MAIN, TRIAL_PRACTICE, TRIAL_CATCH, TRIAL_SCREENING } TrialType;

typedef struct {
    int subject;                       /* index into Study.subjects */
    int task;                          /* interned: resolved model task */
    int clip, condition, model, stage; /* interned (NA stage: natural-like) */
    int stim;                          /* interned normalized stimulus_path (may be NA) */
    int true_label, response;          /* interned */
    int cell;                          /* index into Study.cells; -1 unless main */
    int item;                          /* index into Study.items; -1 unless main */
    int model_row;                     /* index into Study.model; -1 unless main */
    int file;                          /* index into Study.files */
    int line;
    TrialType type;
    unsigned char correct;
    bool dropped; /* main trial of a metamer that failed the success criterion */
} Trial;

/* Exclusion criteria, applied in this order. */
typedef enum {
    EXCL_NONE,
    EXCL_HEADPHONE, /* headphone_check (or screening) = fail */
    EXCL_PRACTICE,  /* practice (the runner's scored-practice gate) = fail */
    EXCL_FLAG,      /* excluded = true */
    EXCL_CATCH,     /* catch-trial accuracy below the threshold */
    N_EXCL
} ExclusionReason;

typedef struct {
    char *id;      /* without the "sub-" prefix */
    int tsv_line;  /* participants.tsv line, 0 if only in trial logs */
    int headphone; /* 1 pass, 0 fail, -1 not recorded */
    int practice;  /* 1 pass, 0 fail, -1 not recorded */
    bool excluded_flag;
    int n_rows, n_main, n_main_correct, n_catch, n_catch_correct;
    bool fail[N_EXCL]; /* each criterion, whether or not an earlier one applied */
    ExclusionReason reason; /* the first criterion failed, in the order above */
    int index;              /* among included participants, -1 if excluded */
} Participant;

/* A condition cell: task x condition x model x stage. */
typedef struct {
    int task, condition, model, stage;
    bool staged; /* stage not NA: a metamer condition */
    int stage_rank; /* position in the stage order (staged cells) */
    int orig;       /* creation order (for sorting) */
    char label[160]; /* short display label */
} Cell;

/* One stimulus heard in the main block: cell x clip (x stimulus path). */
typedef struct {
    int cell, clip, model_row;
} Item;

typedef struct {
    int clip, task, label, top1;
    double p_top1;
    unsigned char correct;
    int line;
} ModelRow;

typedef struct {
    StrPool str;
    char **files;
    int n_files;
    Trial *trials;
    int n_trials, cap_trials; /* capacity spans all trial files */
    Participant *subjects;
    int n_subjects, n_included;
    Cell *cells;
    int n_cells;
    Item *items;
    int n_items;
    ModelRow *model;
    int n_model;
    /* metamers.csv: success of synthesis per stage, in the file's order */
    int n_metamer_stages;
    int *metamer_stage, *metamer_n, *metamer_passed;
    int n_dropped_trials; /* main trials of metamers that failed the criterion */
    int n_failing[N_EXCL];     /* participants failing each criterion */
    int n_excluded_by[N_EXCL]; /* excluded at each step (first criterion failed) */
    int n_tasks;          /* distinct tasks among analysed trials */
} Study;

int study_load(Study *st, const AnalysisOptions *opt, Error *err);
void study_free(Study *st);
const char *study_str(const Study *st, int id);

/* -------------------------------------------------------------- analyses */

/* The analysed main trials of included participants, as parallel arrays. */
typedef struct {
    int n;
    int *subj, *cell, *item, *clip;
    int *label, *response, *top1;
    unsigned char *hc, *mc; /* human / model correct */
    double *mconf;          /* model p_top1 */
} Obs;

void obs_build(const Study *st, Obs *o);
void obs_free(Obs *o);

typedef struct {
    int n_subj, n_clips, n_trials, n_items;
    double human, human_clips, model, model_items;
    Ci human_ci, human_clips_ci, model_ci;
    double diff;
    Ci diff_ci;
    double diff_p;
    /* error consistency, means over pairs */
    double k_hm, k_hh;
    Ci k_hm_ci, k_hh_ci;
    int n_hm_pairs, n_hh_pairs, n_hm_defined, n_hh_defined;
    double hm_c_obs, hm_c_exp, hm_kmin, hm_kmax;
    double hh_c_obs, hh_c_exp, hh_kmin, hh_kmax;
    bool low_accuracy;
} CellStats;

typedef struct {
    const char *scope; /* "all items" or a cell label */
    int cell;          /* -1 for all */
    int n_items;
    double r_correct, rho_correct, r_conf, rho_conf;
    Reliability rel_pearson, rel_spearman;
} ClipCorr;

typedef struct {
    int task;
    int n_labels;               /* columns: true labels, then other answers */
    int *labels;                /* interned ids in column order */
    int n_rows;                 /* rows: the first n_rows labels (true labels) */
    double *human, *model;      /* counts, n_rows x n_labels */
    double r_all, r_offdiag;    /* Pearson of row-normalized matrices */
} Confusion;

typedef struct {
    int task, model; /* interned */
    int n_levels, *cells;
    int n_subj_used, n_subj_dropped;
    double *y; /* (2 n_subj_used) x n_levels: humans first, then model copies */
    MixedAnova anova;
    AnovaPermutation perm;
    bool ok;
} StageAnova;

typedef struct {
    Obs obs;
    const char **included_ids; /* participant id by included index */
    CellStats *cells;
    ClipCorr *clip_corr;
    int n_clip_corr;
    double *item_human; /* per item: human accuracy */
    int *item_n;
    Confusion *conf;
    int n_conf;
    StageAnova *anovas;
    int n_anovas;
    /* Kell-style condition-level comparison */
    int kell_n_cells;
    double kell_r, kell_r2, kell_r2_corrected;
    Reliability kell_rel_human, kell_rel_model;
    /* pair-level kappa rows (for the CSV) */
    Buf kappa_pairs_csv;
    /* per participant x cell accuracies (n_included x n_cells, NaN if none) */
    double *subj_cell_h, *subj_cell_m;
} Results;

int results_compute(const Study *st, const AnalysisOptions *opt, Results *r, Error *err);
/* Pieces of results_compute (compute.c, consistency.c, confusion.c). */
void stream_rng(Rng *rng, uint64_t seed, uint64_t tag, uint64_t index);
void cell_consistency(const Study *st, const AnalysisOptions *opt, Results *r, int c);
void compute_confusions(const Study *st, Results *r);
void results_free(const Study *st, Results *r);

/* Writes every table, figure and report into opt->out. */
int report_write(const Study *st, const Results *r, const AnalysisOptions *opt, Error *err);

/* ---------------------------------------------------------------- figures */

typedef struct {
    const char *name; /* series name for the legend */
    const char *color;
    const double *y, *lo, *hi; /* lo/hi may be NULL */
    bool dashed, square;       /* dashed series get hollow markers */
} Series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int n_x;
    const char *const *xlabels;
    const Series *series;
    int n_series;
    double ymin, ymax;
    const double *hline;     /* optional reference line, shown in the legend */
    const char *hline_label;
    int n_separate; /* the first n_separate categories stand apart (e.g. natural) */
} CategoryPlot;

/* Lines with error bars over categorical x. */
void svg_category_plot(Buf *b, const CategoryPlot *p);
/* Scatter with a side panel of correlation bars and noise-ceiling bands. */
void svg_clip_scatter(Buf *b, const Study *st, const Results *r);
/* Row-normalized confusion heat maps, human and model side by side. */
void svg_confusion(Buf *b, const Study *st, const Confusion *c, int max_labels);

#endif
