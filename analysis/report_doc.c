/* Markdown + HTML document builder and number formatting for the report. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

static char *rotating(void) {
    static char bufs[32][96];
    static int next;
    next = (next + 1) % 32;
    return bufs[next];
}

const char *fmt_num(double x, int digits) {
    char *s = rotating();
    if (isnan(x))
        snprintf(s, 96, "n/a");
    else
        snprintf(s, 96, "%.*f", digits, x);
    return s;
}

const char *fmt_pct(double x) {
    char *s = rotating();
    if (isnan(x))
        snprintf(s, 96, "n/a");
    else
        snprintf(s, 96, "%.1f%%", 100 * x);
    return s;
}

const char *fmt_ci(Ci ci) {
    char *s = rotating();
    if (isnan(ci.lo) || isnan(ci.hi))
        snprintf(s, 96, "n/a");
    else
        snprintf(s, 96, "[%.2f, %.2f]", ci.lo, ci.hi);
    return s;
}

const char *fmt_p(double p) {
    char *s = rotating();
    if (isnan(p))
        snprintf(s, 96, "n/a");
    else if (p < 1e-16) /* below double rounding of 1 - CDF: say so, not "0" */
        snprintf(s, 96, "< 1e-16");
    else if (p < 1e-4)
        snprintf(s, 96, "%.1e", p);
    else
        snprintf(s, 96, "%.4f", p);
    return s;
}

const char *fmt_slug(const char *in) {
    char *s = rotating();
    size_t k = 0;
    for (; *in && k < 60; in++) {
        char c = *in;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        s[k++] = ok ? c : '_';
    }
    s[k] = 0;
    return k ? s : "none";
}

void csv_nums(Buf *b, const double *v, int n) {
    for (int i = 0; i < n; i++) {
        buf_puts(b, ",");
        buf_num(b, v[i], 10);
    }
}

/* Markdown table cells must not contain '|' or newlines. */
static void md_cell(Buf *b, const char *s) {
    for (; *s; s++) buf_puts(b, *s == '|' ? "\\|" : *s == '\n' ? " " : (char[2]){*s, 0});
}

void doc_heading(Doc *d, int level, const char *text) {
    buf_printf(&d->md, "\n%.*s %s\n\n", level, "######", text);
    /* An id from the text, so sections can be linked (report.html#confusions). */
    buf_printf(&d->html, "<h%d id=\"", level);
    for (const char *p = text; *p; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (ok || (d->html.len && d->html.s[d->html.len - 1] != '-' && d->html.s[d->html.len - 1] != '"'))
            buf_put(&d->html, ok ? &c : "-", 1);
    }
    buf_puts(&d->html, "\">");
    buf_xml(&d->html, text);
    buf_printf(&d->html, "</h%d>\n", level);
}

void doc_para(Doc *d, const char *fmt, ...) {
    Buf t = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&t, fmt, ap);
    va_end(ap);
    buf_printf(&d->md, "%s\n\n", t.s ? t.s : "");
    buf_puts(&d->html, "<p>");
    buf_xml(&d->html, t.s ? t.s : "");
    buf_puts(&d->html, "</p>\n");
    buf_free(&t);
}

void doc_table_begin(Doc *d, int ncols, const char *const *head) {
    d->ncols = ncols;
    buf_puts(&d->md, "|");
    buf_puts(&d->html, "<table>\n<thead><tr>");
    for (int i = 0; i < ncols; i++) {
        buf_puts(&d->md, " ");
        md_cell(&d->md, head[i]);
        buf_puts(&d->md, " |");
        buf_puts(&d->html, "<th>");
        buf_xml(&d->html, head[i]);
        buf_puts(&d->html, "</th>");
    }
    buf_puts(&d->md, "\n|");
    for (int i = 0; i < ncols; i++) buf_puts(&d->md, i ? "---:|" : "---|");
    buf_puts(&d->md, "\n");
    buf_puts(&d->html, "</tr></thead>\n<tbody>\n");
}

void doc_row(Doc *d, const char *const *cells) {
    buf_puts(&d->md, "|");
    buf_puts(&d->html, "<tr>");
    for (int i = 0; i < d->ncols; i++) {
        buf_puts(&d->md, " ");
        md_cell(&d->md, cells[i]);
        buf_puts(&d->md, " |");
        buf_puts(&d->html, i ? "<td class=\"n\">" : "<td>");
        buf_xml(&d->html, cells[i]);
        buf_puts(&d->html, "</td>");
    }
    buf_puts(&d->md, "\n");
    buf_puts(&d->html, "</tr>\n");
}

void doc_table_end(Doc *d) {
    buf_puts(&d->md, "\n");
    buf_puts(&d->html, "</tbody>\n</table>\n");
}

void doc_csv(Doc *d, const char *name, const Buf *csv) {
    if (d->rc == 0) d->rc = buf_write(csv, d->dir, name, d->err);
}

void doc_figure(Doc *d, const char *name, const Buf *svg, const char *caption) {
    if (d->rc == 0) d->rc = buf_write(svg, d->dir, name, d->err);
    buf_printf(&d->md, "![%s](%s)\n\n*%s* (`%s`)\n\n", caption, name, caption, name);
    buf_puts(&d->html, "<figure>\n");
    buf_puts(&d->html, svg->s ? svg->s : "");
    buf_puts(&d->html, "<figcaption>");
    buf_xml(&d->html, caption);
    buf_printf(&d->html, " (<a href=\"%s\">%s</a>)</figcaption>\n</figure>\n", name, name);
}

int doc_finish(Doc *d, const char *title) {
    Buf html = {0};
    buf_puts(&html, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    buf_xml(&html, title);
    buf_puts(&html,
             "</title>\n<style>\n"
             "body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;"
             "padding:0 1em;color:#222;line-height:1.45}\n"
             "h1{font-size:1.7em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}\n"
             "table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}\n"
             "th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}\n"
             "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
             "figure{margin:1em 0;overflow-x:auto}figcaption{font-size:0.9em;color:#555}\n"
             "svg{max-width:100%;height:auto}\n"
             "</style>\n</head>\n<body>\n<h1>");
    buf_xml(&html, title);
    buf_puts(&html, "</h1>\n");
    buf_puts(&html, d->html.s ? d->html.s : "");
    buf_puts(&html, "</body>\n</html>\n");
    Buf md = {0};
    buf_printf(&md, "# %s\n", title);
    buf_puts(&md, d->md.s ? d->md.s : "");
    if (d->rc == 0) d->rc = buf_write(&md, d->dir, "report.md", d->err);
    if (d->rc == 0) d->rc = buf_write(&html, d->dir, "report.html", d->err);
    buf_free(&md);
    buf_free(&html);
    buf_free(&d->md);
    buf_free(&d->html);
    return d->rc;
}
