/* The report is written twice at once, as Markdown and as self-contained
 * HTML, through these helpers (report_doc.c); report.c and report_more.c
 * write the sections. */
#ifndef REPORT_INTERNAL_H
#define REPORT_INTERNAL_H

#include "ana_internal.h"

typedef struct {
    Buf md, html;
    const char *dir;
    Error *err;
    int rc; /* first error: later writes are skipped */
    int ncols;
} Doc;

void doc_heading(Doc *d, int level, const char *text);
void doc_para(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void doc_table_begin(Doc *d, int ncols, const char *const *head);
void doc_row(Doc *d, const char *const *cells);
void doc_table_end(Doc *d);
/* Writes the SVG to dir/name and shows it: a link in Markdown, inline in
 * HTML (so report.html stands alone). */
void doc_figure(Doc *d, const char *name, const Buf *svg, const char *caption);
/* Writes a table (CSV) to dir/name; errors go into d. */
void doc_csv(Doc *d, const char *name, const Buf *csv);
int doc_finish(Doc *d, const char *title);

/* Number as text in one of 32 rotating static buffers (for table cells). */
const char *fmt_num(double x, int digits);
const char *fmt_pct(double x);                 /* 0.734 -> "73.4%" */
const char *fmt_ci(Ci ci);                     /* "[0.61, 0.80]" */
const char *fmt_p(double p);                   /* "0.0012", "< 1e-04" style */
/* A file-name-safe version of s (rotating buffer). */
const char *fmt_slug(const char *s);
/* Appends ",v" for each value. */
void csv_nums(Buf *b, const double *v, int n);

void report_exclusions(Doc *d, const Study *st, const AnalysisOptions *opt);
void report_conditions(Doc *d, const Study *st, const Results *r);
void report_recognition(Doc *d, const Study *st, const Results *r);
void report_clips(Doc *d, const Study *st, const Results *r);
void report_consistency(Doc *d, const Study *st, const Results *r, const AnalysisOptions *opt);
void report_kell(Doc *d, const Study *st, const Results *r);
void report_confusions(Doc *d, const Study *st, const Results *r);
void report_methods(Doc *d, const AnalysisOptions *opt);

#endif
