/* Hand-written SVG figures: no plotting library, so every element is placed
 * explicitly. Sizes are in CSS pixels with fonts large enough to read at
 * 100% zoom; numbers behind each figure are written to a CSV beside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

#define FONT "font-family=\"Helvetica, Arial, sans-serif\""

static void svg_begin(Buf *b, double w, double h) {
    buf_printf(b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" " FONT " font-size=\"13\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
               w, h, w, h);
}

static void svg_end(Buf *b) { buf_puts(b, "</svg>\n"); }

/* anchor: start|middle|end; rotate in degrees about (x, y). */
static void svg_text(Buf *b, double x, double y, double size, const char *anchor, bool bold,
                     double rotate, const char *text) {
    buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%s\"%s", x, y,
               size, anchor, bold ? " font-weight=\"bold\"" : "");
    if (rotate != 0) buf_printf(b, " transform=\"rotate(%.0f %.1f %.1f)\"", rotate, x, y);
    buf_puts(b, ">");
    buf_xml(b, text);
    buf_puts(b, "</text>\n");
}

static void svg_line(Buf *b, double x1, double y1, double x2, double y2, const char *color,
                     double width, const char *dash) {
    buf_printf(b,
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"%.1f\"%s%s%s/>\n",
               x1, y1, x2, y2, color, width, dash ? " stroke-dasharray=\"" : "",
               dash ? dash : "", dash ? "\"" : "");
}

static void svg_marker(Buf *b, double x, double y, const char *color, bool square, bool filled) {
    const char *fill = filled ? color : "white";
    if (square)
        buf_printf(b,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\" "
                   "stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                   x - 4.5, y - 4.5, fill, color);
    else
        buf_printf(b,
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"%s\" "
                   "stroke-width=\"1.5\"/>\n",
                   x, y, fill, color);
}

/* Tick step of 1, 2, 2.5 or 5 x 10^k giving 4-8 ticks over [lo, hi]. */
static double nice_step(double lo, double hi) {
    double span = hi - lo > 0 ? hi - lo : 1, mag = pow(10, floor(log10(span / 5)));
    static const double m[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (span / (m[i] * mag) <= 8) return m[i] * mag;
    return 10 * mag;
}

typedef struct {
    double x0, y0, w, h, ymin, ymax; /* plot area (y0 = top) */
} Frame;

static double fy(const Frame *f, double v) {
    if (v < f->ymin) v = f->ymin;
    if (v > f->ymax) v = f->ymax;
    return f->y0 + f->h * (f->ymax - v) / (f->ymax - f->ymin);
}

/* Y axis with ticks, horizontal grid lines and a rotated label. */
static void y_axis(Buf *b, const Frame *f, const char *label) {
    double step = nice_step(f->ymin, f->ymax);
    for (double v = ceil(f->ymin / step - 1e-9) * step; v <= f->ymax + 1e-9; v += step) {
        double y = fy(f, v);
        svg_line(b, f->x0, y, f->x0 + f->w, y, "#e6e6e6", 1, NULL);
        svg_line(b, f->x0 - 5, y, f->x0, y, "#333", 1, NULL);
        char t[32];
        snprintf(t, sizeof t, "%g", fabs(v) < 1e-12 ? 0 : v);
        svg_text(b, f->x0 - 8, y + 4, 12, "end", false, 0, t);
    }
    svg_line(b, f->x0, f->y0, f->x0, f->y0 + f->h, "#333", 1.2, NULL);
    svg_line(b, f->x0, f->y0 + f->h, f->x0 + f->w, f->y0 + f->h, "#333", 1.2, NULL);
    svg_text(b, f->x0 - 46, f->y0 + f->h / 2, 14, "middle", false, -90, label);
}

static void legend(Buf *b, double x, double y, const CategoryPlot *p) {
    for (int k = 0; k < p->n_series; k++) {
        const Series *s = &p->series[k];
        svg_line(b, x, y, x + 26, y, s->color, 2, s->dashed ? "6 4" : NULL);
        svg_marker(b, x + 13, y, s->color, s->square, !s->dashed);
        svg_text(b, x + 34, y + 4.5, 13, "start", false, 0, s->name);
        x += 48 + 7.2 * (double)strlen(s->name);
    }
    if (p->hline && p->hline_label) {
        svg_line(b, x, y, x + 26, y, "#888", 1.2, "4 4");
        svg_text(b, x + 34, y + 4.5, 13, "start", false, 0, p->hline_label);
    }
}

static double legend_width(const CategoryPlot *p) {
    double w = 0;
    for (int k = 0; k < p->n_series; k++) w += 48 + 7.2 * (double)strlen(p->series[k].name);
    if (p->hline && p->hline_label) w += 48 + 7.2 * (double)strlen(p->hline_label);
    return w;
}

/* One series: polyline segments (broken at NaN and at the divider), error
 * bars, markers; dx shifts series apart so their bars do not overlap. */
static void draw_series(Buf *b, const Frame *f, const CategoryPlot *p, const Series *s,
                        double step, double dx) {
    Buf path = {0};
    for (int i = 0; i <= p->n_x; i++) {
        bool gap = i == p->n_x || isnan(s->y[i]) || (i == p->n_separate && i > 0);
        if (gap && path.len) {
            buf_puts(&path, "\"/>\n");
            buf_puts(b, path.s);
            path.len = 0;
        }
        if (i == p->n_x || isnan(s->y[i])) continue;
        if (!path.len)
            buf_printf(&path, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                       s->color, s->dashed ? " stroke-dasharray=\"6 4\"" : "");
        buf_printf(&path, "%.1f,%.1f ", f->x0 + step * (i + 0.5) + dx, fy(f, s->y[i]));
    }
    buf_free(&path);
    for (int i = 0; i < p->n_x; i++) {
        if (isnan(s->y[i])) continue;
        double x = f->x0 + step * (i + 0.5) + dx;
        if (s->lo && s->hi && !isnan(s->lo[i]) && !isnan(s->hi[i])) {
            double y1 = fy(f, s->lo[i]), y2 = fy(f, s->hi[i]);
            svg_line(b, x, y1, x, y2, s->color, 1.5, NULL);
            svg_line(b, x - 4, y1, x + 4, y1, s->color, 1.5, NULL);
            svg_line(b, x - 4, y2, x + 4, y2, s->color, 1.5, NULL);
        }
        svg_marker(b, x, fy(f, s->y[i]), s->color, s->square, !s->dashed);
    }
}

void svg_category_plot(Buf *b, const CategoryPlot *p) {
    size_t longest = 0;
    for (int i = 0; i < p->n_x; i++)
        if (strlen(p->xlabels[i]) > longest) longest = strlen(p->xlabels[i]);
    double step = p->n_x > 8 ? 62 : 84;
    bool rotate = longest * 7.0 > step - 6;
    double below = (rotate ? 24 + 5.2 * (double)(longest < 40 ? longest : 40) : 34) + 26;
    Frame f = {78, 78, step * p->n_x, 300, p->ymin, p->ymax};
    double w = f.x0 + f.w + 30, lw = legend_width(p) + f.x0 + 20;
    if (w < lw) w = lw, f.w = w - f.x0 - 30, step = f.w / p->n_x;
    if (w < 520) w = 520, f.w = w - f.x0 - 30, step = f.w / p->n_x;
    double h = f.y0 + f.h + below + 8;
    svg_begin(b, w, h);
    svg_text(b, w / 2, 26, 16, "middle", true, 0, p->title);
    legend(b, f.x0, 54, p);
    y_axis(b, &f, p->ylabel);
    if (p->hline)
        svg_line(b, f.x0, fy(&f, *p->hline), f.x0 + f.w, fy(&f, *p->hline), "#888", 1.2, "4 4");
    if (p->n_separate > 0 && p->n_separate < p->n_x) {
        double x = f.x0 + step * p->n_separate;
        svg_line(b, x, f.y0, x, f.y0 + f.h, "#bbb", 1, "2 3");
    }
    for (int i = 0; i < p->n_x; i++) {
        double x = f.x0 + step * (i + 0.5), y = f.y0 + f.h;
        svg_line(b, x, y, x, y + 5, "#333", 1, NULL);
        if (rotate)
            svg_text(b, x + 4, y + 16, 12, "end", false, -35, p->xlabels[i]);
        else
            svg_text(b, x, y + 20, 12, "middle", false, 0, p->xlabels[i]);
    }
    if (p->xlabel) svg_text(b, f.x0 + f.w / 2, h - 10, 14, "middle", false, 0, p->xlabel);
    for (int k = 0; k < p->n_series; k++)
        draw_series(b, &f, p, &p->series[k], step, (k - (p->n_series - 1) / 2.0) * 9);
    svg_end(b);
}

/* ------------------------------------------------------- per-clip scatter */

static void bar(Buf *b, const Frame *f, double x, double w, double v, const char *color) {
    if (isnan(v)) return;
    double y0 = fy(f, 0), y1 = fy(f, v);
    buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
               x, y1 < y0 ? y1 : y0, w, fabs(y0 - y1), color);
}

/* Gray band for sqrt(reliability) from the split-half spread, line at the
 * median: the highest correlation a noiseless model could reach. */
static void ceiling(Buf *b, const Frame *f, double x, double w, const Reliability *r) {
    if (isnan(r->median) || r->median <= 0) return;
    double lo = r->lo > 0 ? sqrt(r->lo) : 0, hi = r->hi > 0 ? sqrt(r->hi) : 0;
    buf_printf(b,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#999\" "
               "fill-opacity=\"0.35\"/>\n",
               x, fy(f, hi > 1 ? 1 : hi), w, fabs(fy(f, lo) - fy(f, hi > 1 ? 1 : hi)));
    svg_line(b, x, fy(f, sqrt(r->median)), x + w, fy(f, sqrt(r->median)), "#444", 2, NULL);
}

static int cmp_pair(const void *x, const void *y) {
    const double *a = x, *b = y;
    return (a[0] > b[0]) - (a[0] < b[0]);
}

/* Mean human accuracy (+- SE) in ten equal-count bins of model confidence:
 * the trend the cloud of points hides. */
static void binned_means(Buf *b, const Frame *f, const Study *st, const Results *r) {
    double *v = xmalloc(2 * (size_t)(st->n_items + 1) * sizeof *v);
    int n = 0;
    for (int it = 0; it < st->n_items; it++) {
        if (!r->item_n[it]) continue;
        v[2 * n] = st->model[st->items[it].model_row].p_top1;
        v[2 * n + 1] = r->item_human[it];
        n++;
    }
    qsort(v, (size_t)n, 2 * sizeof *v, cmp_pair);
    int bins = n >= 50 ? 10 : n / 5;
    Buf path = {0};
    for (int k = 0; k < bins; k++) {
        int i0 = n * k / bins, i1 = n * (k + 1) / bins;
        double sx = 0, sy = 0, syy = 0, m = i1 - i0;
        for (int i = i0; i < i1; i++) sx += v[2 * i], sy += v[2 * i + 1], syy += v[2 * i + 1] * v[2 * i + 1];
        double mx = sx / m, my = sy / m, sd = m > 1 ? sqrt(fmax(0, (syy - m * my * my) / (m - 1))) : 0;
        double x = f->x0 + f->w * mx, se = sd / sqrt(m);
        svg_line(b, x, fy(f, my - se), x, fy(f, my + se), "#111", 1.5, NULL);
        buf_printf(&path, "%s%.1f,%.1f", k ? " " : "", x, fy(f, my));
    }
    if (path.len)
        buf_printf(b, "<polyline fill=\"none\" stroke=\"#111\" stroke-width=\"2\" points=\"%s\"/>\n",
                   path.s);
    buf_free(&path);
    free(v);
}

void svg_clip_scatter(Buf *b, const Study *st, const Results *r) {
    const ClipCorr *cc = &r->clip_corr[0];
    Frame f = {78, 70, 400, 330, 0, 1};
    svg_begin(b, 860, 470);
    svg_text(b, 430, 26, 16, "middle", true, 0, "Per-stimulus accuracy: humans vs model");
    y_axis(b, &f, "Human proportion correct");
    for (int i = 0; i <= 10; i += 2) {
        double x = f.x0 + f.w * i / 10.0;
        char t[16];
        snprintf(t, sizeof t, "%g", i / 10.0);
        svg_line(b, x, f.y0 + f.h, x, f.y0 + f.h + 5, "#333", 1, NULL);
        svg_text(b, x, f.y0 + f.h + 20, 12, "middle", false, 0, t);
    }
    svg_text(b, f.x0 + f.w / 2, f.y0 + f.h + 42, 14, "middle", false, 0,
             "Model confidence in its answer (p top-1)");
    for (int it = 0; it < st->n_items; it++) {
        if (!r->item_n[it]) continue;
        const ModelRow *m = &st->model[st->items[it].model_row];
        /* Human accuracy per stimulus takes few values (k of n listeners):
         * a small deterministic vertical jitter keeps the points apart. */
        uint64_t hsh = (uint64_t)(it + 1) * 0x9E3779B97F4A7C15ull;
        double jitter = ((double)(hsh >> 11) * 0x1.0p-53 - 0.5) * 0.04;
        double x = f.x0 + f.w * m->p_top1, y = fy(&f, r->item_human[it] + jitter);
        buf_printf(b,
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" fill-opacity=\"%s\" "
                   "stroke=\"%s\" stroke-opacity=\"0.6\"/>\n",
                   x, y, m->correct ? "#1f77b4" : "white", m->correct ? "0.35" : "0",
                   m->correct ? "#1f77b4" : "#d62728");
    }
    binned_means(b, &f, st, r);
    svg_marker(b, f.x0 + 10, 52, "#1f77b4", false, true);
    svg_text(b, f.x0 + 20, 56, 13, "start", false, 0, "model correct");
    svg_marker(b, f.x0 + 140, 52, "#d62728", false, false);
    svg_text(b, f.x0 + 150, 56, 13, "start", false, 0, "model wrong");
    svg_line(b, f.x0 + 250, 52, f.x0 + 276, 52, "#111", 2, NULL);
    svg_text(b, f.x0 + 282, 56, 13, "start", false, 0, "decile means \xC2\xB1 SE");
    /* Right panel: correlations with the noise ceiling. */
    Frame g = {590, 70, 240, 330, -0.2, 1};
    double lo = fmin(fmin(cc->r_conf, cc->rho_conf), fmin(cc->r_correct, cc->rho_correct));
    if (!isnan(lo) && lo < -0.2) g.ymin = floor(lo * 5) / 5;
    y_axis(b, &g, "Correlation with human accuracy");
    svg_line(b, g.x0, fy(&g, 0), g.x0 + g.w, fy(&g, 0), "#333", 1, NULL);
    const char *names[] = {"r conf", "\xCF\x81 conf", "r correct", "\xCF\x81 correct"};
    double vals[] = {cc->r_conf, cc->rho_conf, cc->r_correct, cc->rho_correct};
    for (int k = 0; k < 4; k++) {
        double x = g.x0 + 10 + k * 57;
        ceiling(b, &g, x - 4, 46, k % 2 ? &cc->rel_spearman : &cc->rel_pearson);
        bar(b, &g, x + 5, 28, vals[k], k < 2 ? "#1f77b4" : "#6baed6");
        svg_text(b, x + 19, g.y0 + g.h + 20, 12, "middle", false, 0, names[k]);
    }
    svg_text(b, g.x0 + g.w / 2, g.y0 + g.h + 42, 12, "middle", false, 0,
             "gray: noise ceiling \xE2\x88\x9A(split-half reliability)");
    char t[96];
    snprintf(t, sizeof t, "%d stimuli; ceiling from %d random splits", cc->n_items,
             cc->rel_pearson.n_splits);
    svg_text(b, g.x0 + g.w / 2, 56, 12, "middle", false, 0, t);
    svg_end(b);
}

/* ------------------------------------------------------ confusion matrices */

/* White to dark blue (ColorBrewer Blues end points) by proportion. */
static void blue(double v, char out[8]) {
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    int r = (int)lround(255 + (8 - 255) * v), g = (int)lround(255 + (48 - 255) * v),
        bl = (int)lround(255 + (107 - 255) * v);
    snprintf(out, 8, "#%02x%02x%02x", r, g, bl);
}

static int cmp_desc(const void *x, const void *y) {
    const double *a = x, *b = y;
    return (a[0] < b[0]) - (a[0] > b[0]);
}

/* Longest shown label, in characters. */
static double side_chars(const Study *st, const Confusion *c, const double *order, int k,
                         bool other) {
    double n = other ? 7 : 0;
    for (int i = 0; i < k; i++) {
        double len = (double)strlen(study_str(st, c->labels[(int)order[2 * i + 1]]));
        if (len > n) n = len;
    }
    return n;
}

void svg_confusion(Buf *b, const Study *st, const Confusion *c, int max_labels) {
    /* Rows shown: the most frequent true labels, at most max_labels. */
    int nr = c->n_rows, nl = c->n_labels, k = nr < max_labels ? nr : max_labels;
    double *order = xmalloc(2 * (size_t)(nr > 0 ? nr : 1) * sizeof *order);
    for (int i = 0; i < nr; i++) {
        double s = 0;
        for (int j = 0; j < nl; j++) s += c->human[(size_t)i * nl + j];
        order[2 * i] = s, order[2 * i + 1] = i;
    }
    if (nr > k) qsort(order, (size_t)nr, 2 * sizeof *order, cmp_desc);
    bool other = nl > k; /* answers outside the shown labels pool in one column */
    int cols = k + other;
    double cell = k > 0 ? fmin(30, fmax(9, 420.0 / cols)) : 10;
    /* Row labels take ~7 px per character; column labels are rotated 60
     * degrees: ~5.8 px of height per character. */
    double side = 14 + 7 * fmin(side_chars(st, c, order, k, false), 24);
    double col_h = 12 + 5.8 * fmin(side_chars(st, c, order, k, other), 24);
    double mw = cell * cols, top = 74, gap = 60, x1 = side + 20, x2 = x1 + mw + gap;
    double w = x2 + mw + 110, h = top + cell * k + col_h + 34;
    if (w < 560) w = 560;
    svg_begin(b, w, h);
    char title[256];
    snprintf(title, sizeof title, "Confusions, task '%s' (r = %.2f; off-diagonal r = %.2f)",
             study_str(st, c->task), c->r_all, c->r_offdiag);
    svg_text(b, w / 2, 26, 16, "middle", true, 0, title);
    if (nr > k) {
        char note[128];
        snprintf(note, sizeof note, "%d most frequent of %d labels shown", k, nr);
        svg_text(b, w / 2, 46, 12, "middle", false, 0, note);
    }
    for (int panel = 0; panel < 2; panel++) {
        const double *m = panel ? c->model : c->human;
        double x0 = panel ? x2 : x1;
        svg_text(b, x0 + mw / 2, top - 10, 14, "middle", true, 0, panel ? "Model" : "Humans");
        for (int i = 0; i < k; i++) {
            int row = (int)order[2 * i + 1];
            double s = 0, shown = 0;
            for (int j = 0; j < nl; j++) s += m[(size_t)row * nl + j];
            for (int j = 0; j < cols; j++) {
                double v;
                if (j < k) {
                    v = m[(size_t)row * nl + (int)order[2 * j + 1]];
                    shown += v;
                } else {
                    v = s - shown;
                }
                char col[8];
                blue(s > 0 ? v / s : 0, col);
                double x = x0 + j * cell, y = top + i * cell;
                buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\" stroke=\"#f0f0f0\" stroke-width=\"0.5\"/>\n",
                           x, y, cell, cell, col);
                if (cell >= 26 && s > 0 && v > 0) {
                    char t[16];
                    snprintf(t, sizeof t, "%.0f", 100 * v / s);
                    buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                                  "text-anchor=\"middle\" fill=\"%s\">%s</text>\n",
                               x + cell / 2, y + cell / 2 + 3.5, v / s > 0.5 ? "white" : "#222", t);
                }
            }
            if (panel == 0)
                svg_text(b, x0 - 6, top + (i + 0.5) * cell + 4, 11, "end", false, 0,
                         study_str(st, c->labels[row]));
        }
        for (int j = 0; j < cols; j++) {
            const char *name = j < k ? study_str(st, c->labels[(int)order[2 * j + 1]]) : "(other)";
            svg_text(b, x0 + (j + 0.5) * cell + 4, top + k * cell + 10, 11, "end", false, -60, name);
        }
        svg_text(b, x0 + mw / 2, top + k * cell + col_h + 22, 13, "middle", false, 0, "answer");
    }
    svg_text(b, 16, top + k * cell / 2, 13, "middle", false, -90, "true label");
    /* Color bar. */
    double cbx = x2 + mw + 30;
    for (int i = 0; i < 50; i++) {
        char col[8];
        blue(1 - i / 49.0, col);
        buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4.2\" fill=\"%s\"/>\n",
                   cbx, top + i * 4, col);
    }
    svg_text(b, cbx + 20, top + 8, 11, "start", false, 0, "1");
    svg_text(b, cbx + 20, top + 200, 11, "start", false, 0, "0");
    svg_text(b, cbx + 7, top + 222, 11, "middle", false, 0, "row prop.");
    svg_end(b);
    free(order);
}
