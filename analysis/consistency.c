/* Error consistency per condition cell (Geirhos et al. 2020, DESIGN.md):
 * each participant against the model on exactly the trials they heard, and
 * each pair of participants on the stimuli both heard (the ceiling), averaged
 * over pairs with a bootstrap CI that resamples trials jointly. Also the
 * confusion matrices of humans and model per task. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

/* Observer pairs collected as parallel correctness arrays. */
typedef struct {
    unsigned char *a, *b;
    int *off, n_pairs, n, cap, cap_pairs;
    int *who1, *who2; /* participant indices; who2 = -1 for the model */
} Pairs;

static void pairs_add(Pairs *p, int who1, int who2, const unsigned char *a,
                      const unsigned char *b, int n) {
    if (p->n + n > p->cap) {
        while (p->n + n > p->cap) p->cap = p->cap ? 2 * p->cap : 1024;
        p->a = realloc(p->a, (size_t)p->cap);
        p->b = realloc(p->b, (size_t)p->cap);
        if (!p->a || !p->b) abort();
    }
    if (p->n_pairs + 2 > p->cap_pairs) {
        p->cap_pairs = p->cap_pairs ? 2 * p->cap_pairs : 64;
        p->off = realloc(p->off, (size_t)p->cap_pairs * sizeof *p->off);
        p->who1 = realloc(p->who1, (size_t)p->cap_pairs * sizeof *p->who1);
        p->who2 = realloc(p->who2, (size_t)p->cap_pairs * sizeof *p->who2);
        if (!p->off || !p->who1 || !p->who2) abort();
    }
    memcpy(p->a + p->n, a, (size_t)n);
    memcpy(p->b + p->n, b, (size_t)n);
    p->off[p->n_pairs] = p->n;
    p->who1[p->n_pairs] = who1;
    p->who2[p->n_pairs] = who2;
    p->n += n;
    p->n_pairs++;
    p->off[p->n_pairs] = p->n;
}

static void pairs_free(Pairs *p) {
    free(p->a);
    free(p->b);
    free(p->off);
    free(p->who1);
    free(p->who2);
}

/* Summarizes pairs into the cell's statistics and appends one CSV row per
 * pair (with the pair's own bootstrap CI). */
static void summarize(const Study *st, const AnalysisOptions *opt, Results *r, int c,
                      const Pairs *p, bool human_model) {
    CellStats *cs = &r->cells[c];
    Rng rng;
    stream_rng(&rng, opt->seed, human_model ? 5 : 6, (uint64_t)c);
    int n_def = 0;
    double mean = kappa_pairs_mean(p->a, p->b, p->off, p->n_pairs, &n_def);
    Ci *pair_ci = xmalloc(((size_t)p->n_pairs + 1) * sizeof *pair_ci);
    Ci ci = kappa_pairs_bootstrap(p->a, p->b, p->off, p->n_pairs, opt->bootstrap, 0.95, &rng,
                                  NULL, pair_ci);
    double s[4] = {0}; /* c_obs, c_exp over all pairs; bounds over defined pairs */
    Buf *csv = &r->kappa_pairs_csv;
    if (!csv->len)
        buf_puts(csv, "condition,observer_1,observer_2,n_trials,p1,p2,c_obs,c_exp,kappa,"
                      "kappa_min,kappa_max,kappa_ci_lo,kappa_ci_hi\n");
    for (int k = 0; k < p->n_pairs; k++) {
        int o = p->off[k], n = p->off[k + 1] - o;
        ErrorConsistency e = error_consistency(p->a + o, p->b + o, n);
        Ci pci = pair_ci[k];
        s[0] += e.c_obs;
        s[1] += e.c_exp;
        if (!isnan(e.kappa)) s[2] += e.kappa_min, s[3] += e.kappa_max;
        buf_csv_field(csv, st->cells[c].label);
        buf_printf(csv, ",sub-%s,", r->included_ids[p->who1[k]]);
        if (p->who2[k] < 0)
            buf_puts(csv, "model,");
        else
            buf_printf(csv, "sub-%s,", r->included_ids[p->who2[k]]);
        buf_printf(csv, "%d", n);
        double v[] = {e.p1, e.p2, e.c_obs, e.c_exp, e.kappa, e.kappa_min, e.kappa_max, pci.lo,
                      pci.hi};
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            buf_puts(csv, ",");
            buf_num(csv, v[i], 10);
        }
        buf_puts(csv, "\n");
    }
    free(pair_ci);
    double np = p->n_pairs, nd = n_def;
    if (human_model) {
        cs->n_hm_pairs = p->n_pairs, cs->n_hm_defined = n_def, cs->k_hm = mean, cs->k_hm_ci = ci;
        cs->hm_c_obs = np ? s[0] / np : NAN, cs->hm_c_exp = np ? s[1] / np : NAN;
        cs->hm_kmin = nd ? s[2] / nd : NAN, cs->hm_kmax = nd ? s[3] / nd : NAN;
    } else {
        cs->n_hh_pairs = p->n_pairs, cs->n_hh_defined = n_def, cs->k_hh = mean, cs->k_hh_ci = ci;
        cs->hh_c_obs = np ? s[0] / np : NAN, cs->hh_c_exp = np ? s[1] / np : NAN;
        cs->hh_kmin = nd ? s[2] / nd : NAN, cs->hh_kmax = nd ? s[3] / nd : NAN;
    }
}

void cell_consistency(const Study *st, const AnalysisOptions *opt, Results *r, int c) {
    const Obs *o = &r->obs;
    int ns = st->n_included;
    /* Local item numbers of this cell, and each participant's first answer
     * to each (255: not heard). */
    int *loc = xmalloc((size_t)st->n_items * sizeof *loc), ni = 0;
    for (int it = 0; it < st->n_items; it++) loc[it] = st->items[it].cell == c ? ni++ : -1;
    unsigned char *resp = xmalloc((size_t)ns * (ni > 0 ? ni : 1));
    memset(resp, 255, (size_t)ns * (ni > 0 ? ni : 1));
    unsigned char *ha = xmalloc(2 * (size_t)(o->n + ni + 1)), *mb = ha + o->n + ni + 1;
    Pairs hm = {0}, hh = {0};
    /* Human-model: one pair per participant, over all their trials here. */
    int *by_subj = xcalloc((size_t)ns + 1, sizeof *by_subj);
    for (int i = 0; i < o->n; i++)
        if (o->cell[i] == c) by_subj[o->subj[i] + 1]++;
    for (int s = 0; s < ns; s++) by_subj[s + 1] += by_subj[s];
    int *order = xmalloc((size_t)(by_subj[ns] + 1) * sizeof *order), *fill = xcalloc((size_t)ns, sizeof *fill);
    for (int i = 0; i < o->n; i++)
        if (o->cell[i] == c) order[by_subj[o->subj[i]] + fill[o->subj[i]]++] = i;
    for (int s = 0; s < ns; s++) {
        int n = by_subj[s + 1] - by_subj[s];
        for (int k = 0; k < n; k++) {
            int i = order[by_subj[s] + k];
            ha[k] = o->hc[i];
            mb[k] = o->mc[i];
            unsigned char *slot = &resp[(size_t)s * ni + loc[o->item[i]]];
            if (*slot == 255) *slot = o->hc[i];
        }
        if (n > 0) pairs_add(&hm, s, -1, ha, mb, n);
    }
    /* Human-human: every pair of participants on the stimuli both heard. */
    for (int s = 0; s < ns; s++)
        for (int u = s + 1; u < ns; u++) {
            int n = 0;
            const unsigned char *rs = resp + (size_t)s * ni, *ru = resp + (size_t)u * ni;
            for (int l = 0; l < ni; l++)
                if (rs[l] != 255 && ru[l] != 255) ha[n] = rs[l], mb[n] = ru[l], n++;
            if (n >= opt->min_shared && n > 0) pairs_add(&hh, s, u, ha, mb, n);
        }
    summarize(st, opt, r, c, &hm, true);
    summarize(st, opt, r, c, &hh, false);
    pairs_free(&hm);
    pairs_free(&hh);
    free(loc);
    free(resp);
    free(ha);
    free(by_subj);
    free(order);
    free(fill);
}
