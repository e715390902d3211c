/* The stimuli a design can draw from: natural clips from the manifests
 * (clip_id, path, task, label, ..., split) and metamers from synthesis
 * outputs (metamers.csv). Read here with libcsv rather than through the
 * stimulus-set module so the experiment depends only on the file formats.
 *
 * Every stimulus path is stored relative to the design's folder: a manifest's
 * paths are relative to the manifest's folder, a metamers.csv's to its own,
 * and the design names both relative to itself. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const NaturalClip *g_sort_clips; /* qsort has no context argument */

static int cmp_clip_index(const void *a, const void *b) {
    return strcmp(g_sort_clips[*(const int *)a].clip_id, g_sort_clips[*(const int *)b].clip_id);
}

typedef struct {
    const NaturalClip *clips;
    int *order; /* clip indices sorted by clip_id */
    int n;
} ClipIndex;

static int find_clip(const ClipIndex *ix, const char *id) {
    int lo = 0, hi = ix->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(ix->clips[ix->order[mid]].clip_id, id);
        if (c == 0) return ix->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void add_label(StimPool *p, const char *label, int *cap) {
    for (int i = 0; i < p->n_labels; i++)
        if (strcmp(p->labels[i], label) == 0) return;
    if (p->n_labels == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        p->labels = realloc(p->labels, sizeof(char *) * *cap);
        if (!p->labels) abort();
    }
    p->labels[p->n_labels++] = xstrdup(label);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_manifest(const Design *d, const char *rel, StimPool *p, int *cap, int *lcap,
                         Error *err) {
    char *path = exp_path_join(d->dir, rel), *mdir = exp_path_dir(rel);
    Table t;
    int rc = table_load(path, ',', TABLE_RAGGED, &t, err);
    int c_id = -1, c_path = -1, c_label = -1, c_task = -1, c_split = -1;
    if (rc == 0) {
        c_id = table_column(&t, "clip_id"), c_path = table_column(&t, "path");
        c_label = table_column(&t, "label"), c_task = table_column(&t, "task");
        c_split = table_column(&t, "split");
        if (c_id < 0 || c_path < 0 || c_label < 0)
            rc = error_set(err, "%s: a manifest needs columns clip_id, path and label", path);
        else if (d->split && c_split < 0)
            rc = error_set(err,
                           "%s: the design selects split \"%s\" but the manifest has no "
                           "split column",
                           path, d->split);
    }
    for (int r = 0; rc == 0 && r < t.n_rows; r++) {
        if (c_task >= 0 && strcmp(table_cell(&t, r, c_task), d->task) != 0) continue;
        const char *id = table_cell(&t, r, c_id), *label = table_cell(&t, r, c_label);
        const char *clip_path = table_cell(&t, r, c_path);
        if (!*id || !*label || !*clip_path || strpbrk(id, "\t\n") || strpbrk(label, "\t\n") ||
            strpbrk(clip_path, "\t\n")) {
            rc = error_set(err, "%s:%ld: empty clip_id, path or label, or a tab/newline in one",
                           path, t.lines[r]);
            break;
        }
        add_label(p, label, lcap); /* every split: the answers a listener may give */
        if (d->split && strcmp(table_cell(&t, r, c_split), d->split) != 0) continue;
        if (p->n_clips == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            p->clips = realloc(p->clips, sizeof(NaturalClip) * *cap);
            if (!p->clips) abort();
        }
        NaturalClip *c = &p->clips[p->n_clips++];
        c->clip_id = xstrdup(id);
        c->label = xstrdup(label);
        c->path = exp_path_join(mdir, clip_path);
    }
    table_free(&t);
    free(path);
    free(mdir);
    return rc;
}

static int cond_of(const Design *d, const char *model, const char *stage) {
    for (int k = 0; k < d->n_conds; k++)
        if (d->conds[k].stage && strcmp(d->conds[k].model, model) == 0 &&
            strcmp(d->conds[k].stage, stage) == 0)
            return k;
    return -1;
}

static int truthy(const char *s) {
    return strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0;
}

static int read_metamers(const Design *d, const MetamerSource *m, const ClipIndex *ix, StimPool *p,
                         int *cap, Error *err) {
    char *path = exp_path_join(d->dir, m->csv), *mdir = exp_path_dir(m->csv);
    Table t;
    int rc = table_load(path, ',', TABLE_RAGGED, &t, err);
    int c_clip = -1, c_stage = -1, c_seed = -1, c_path = -1, c_pass = -1, c_model = -1;
    if (rc == 0) {
        c_clip = table_column(&t, "clip_id");
        if (c_clip < 0) c_clip = table_column(&t, "clip");
        c_stage = table_column(&t, "stage"), c_seed = table_column(&t, "seed");
        c_path = table_column(&t, "path");
        if (c_path < 0) c_path = table_column(&t, "wav");
        c_pass = table_column(&t, "passed"), c_model = table_column(&t, "model");
        if (c_clip < 0 || c_stage < 0)
            rc = error_set(err, "%s: metamers.csv needs columns clip (or clip_id) and stage", path);
        else if (m->passed_only && c_pass < 0)
            rc = error_set(err, "%s: passed_only is set but there is no passed column", path);
    }
    for (int r = 0; rc == 0 && r < t.n_rows; r++) {
        const char *model = table_cell(&t, r, c_model), *stage = table_cell(&t, r, c_stage);
        if (*model && strcmp(model, m->model)) continue;
        int k = cond_of(d, m->model, stage);
        int clip = find_clip(ix, table_cell(&t, r, c_clip));
        if (k < 0 || clip < 0) continue; /* a stage or clip the design does not use */
        if (m->passed_only && !truthy(table_cell(&t, r, c_pass))) continue;
        char *end;
        const char *seed_s = table_cell(&t, r, c_seed);
        long seed = *seed_s ? strtol(seed_s, &end, 10) : 0;
        if (*seed_s && (*end || seed < 0 || seed > 1000000000)) {
            rc = error_set(err, "%s:%ld: seed \"%s\" is not a non-negative integer", path,
                           t.lines[r], seed_s);
            break;
        }
        char rel[1024];
        if (*table_cell(&t, r, c_path)) {
            snprintf(rel, sizeof rel, "%s", table_cell(&t, r, c_path));
        } else { /* synth's layout: <out>/<stage>/<clip>_s<seed>.wav */
            snprintf(rel, sizeof rel, "%s/%s_s%ld.wav", stage, p->clips[clip].clip_id, seed);
        }
        if (strpbrk(rel, "\t\n")) {
            rc = error_set(err, "%s:%ld: tab or newline in the path", path, t.lines[r]);
            break;
        }
        if (p->n_mets == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            p->mets = realloc(p->mets, sizeof(MetamerStim) * *cap);
            if (!p->mets) abort();
        }
        p->mets[p->n_mets++] = (MetamerStim){clip, k, (int)seed, exp_path_join(mdir, rel)};
    }
    table_free(&t);
    free(path);
    free(mdir);
    return rc;
}

static int cmp_met(const void *a, const void *b) {
    const MetamerStim *x = a, *y = b;
    if (x->clip != y->clip) return x->clip < y->clip ? -1 : 1;
    if (x->cond != y->cond) return x->cond < y->cond ? -1 : 1;
    return (x->seed > y->seed) - (x->seed < y->seed);
}

static int index_metamers(const Design *d, StimPool *p, Error *err) {
    if (p->n_mets > 1) /* mets is NULL when there are none, which qsort must not get */
        qsort(p->mets, p->n_mets, sizeof(MetamerStim), cmp_met);
    p->n_conds = d->n_conds;
    p->first = xcalloc((size_t)p->n_clips * d->n_conds + 1, sizeof(int));
    p->count = xcalloc((size_t)p->n_clips * d->n_conds + 1, sizeof(int));
    for (int i = 0; i < p->n_mets; i++) {
        const MetamerStim *m = &p->mets[i];
        if (i && cmp_met(m, m - 1) == 0)
            return error_set(err, "metamer of clip %s, condition %s, seed %d is listed twice",
                             p->clips[m->clip].clip_id, d->conds[m->cond].name, m->seed);
        size_t at = (size_t)m->clip * d->n_conds + m->cond;
        if (p->count[at]++ == 0) p->first[at] = i;
    }
    return 0;
}

int exp_stimpool_load(const Design *d, StimPool *p, Error *err) {
    memset(p, 0, sizeof *p);
    int cap = 0, lcap = 0, mcap = 0, rc = 0;
    for (int i = 0; rc == 0 && i < d->n_manifests; i++)
        rc = read_manifest(d, d->manifests[i], p, &cap, &lcap, err);
    ClipIndex ix = {p->clips, xcalloc(p->n_clips + 1, sizeof(int)), p->n_clips};
    for (int i = 0; i < p->n_clips; i++) ix.order[i] = i;
    g_sort_clips = p->clips;
    qsort(ix.order, p->n_clips, sizeof(int), cmp_clip_index);
    for (int i = 1; rc == 0 && i < p->n_clips; i++)
        if (strcmp(p->clips[ix.order[i]].clip_id, p->clips[ix.order[i - 1]].clip_id) == 0)
            rc = error_set(err, "clip_id %s appears twice in the manifests",
                           p->clips[ix.order[i]].clip_id);
    if (rc == 0 && p->n_clips == 0)
        rc = error_set(err, "no clips of task \"%s\"%s%s in the manifests", d->task,
                       d->split ? " and split " : "", d->split ? d->split : "");
    for (int i = 0; rc == 0 && i < d->n_metamers; i++)
        rc = read_metamers(d, &d->metamers[i], &ix, p, &mcap, err);
    free(ix.order);
    if (rc == 0) rc = index_metamers(d, p, err);
    if (rc == 0 && p->n_labels > 1) qsort(p->labels, p->n_labels, sizeof(char *), cmp_str);
    if (rc != 0) exp_stimpool_free(p);
    return rc;
}

int exp_stimpool_available(const StimPool *p, const Design *d, int clip, int cond) {
    if (!d->conds[cond].stage) return 1;
    return p->count[(size_t)clip * p->n_conds + cond];
}

void exp_stimpool_free(StimPool *p) {
    for (int i = 0; i < p->n_clips; i++)
        free(p->clips[i].clip_id), free(p->clips[i].label), free(p->clips[i].path);
    for (int i = 0; i < p->n_mets; i++) free(p->mets[i].path);
    for (int i = 0; i < p->n_labels; i++) free(p->labels[i]);
    free(p->clips);
    free(p->mets);
    free(p->first);
    free(p->count);
    free(p->labels);
    memset(p, 0, sizeof *p);
}
