/* `metamers stimuli import`: a lab's own recordings into a stimulus set
 * with the same manifest and clip format as `stimuli build`.
 *
 * labels.csv (one row per recording):
 *   file              path relative to --dir                      (required)
 *   label             the word or class                           (required)
 *   centre_s          where the clip is centred, in seconds
 *                     (default: the middle of the recording; also "center_s")
 *   task              default "word"
 *   speaker_or_style  the split unit (talker, song); default empty
 *   split             default "test"
 *   clip_id           default: the file name without extension
 *   snr_db, noise     default "inf", "none" (for recordings made in noise)
 * Each recording is read (any format libsndfile reads), mixed to mono,
 * resampled to 20 kHz, cut or zero-padded to the 2 s around centre_s
 * (5 ms fades where the cut falls inside the recording), scaled to RMS
 * 0.1 and peak-limited to +-0.99 like built clips (stimuli/mix.c). A recording that cannot be used is reported on one line naming the
 * file and the problem and left out; the rest are imported. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "stim_internal.h"

enum { COL_FILE, COL_LABEL, COL_CENTRE, COL_TASK, COL_SPEAKER, COL_SPLIT, COL_ID, COL_SNR,
       COL_NOISE, N_COLS };

typedef struct {
    const char *dir, *labels, *out;
    int jobs;
} ImportOptions;

typedef struct {
    const ImportOptions *opt;
    const Table *t;
    int col[N_COLS];
    char **ids;     /* clip id per row */
    char **problem; /* NULL when imported */
    char clips_dir[1024];
} Import;

static const char *field(const Import *im, int row, int c, const char *dflt) {
    if (im->col[c] < 0) return dflt;
    const char *s = im->t->rows[row][im->col[c]];
    return *s ? s : dflt;
}

static char *problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *problem(const char *fmt, ...) {
    char buf[2400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return xstrdup(buf);
}

/* Copies the 2 s window centred at `centre` samples, zero-padded outside
 * the recording, fading 5 ms in and out where the window cuts sound. */
static void take_window(const Audio *a, int64_t centre, float *out) {
    int64_t start = centre - STIM_SAMPLES / 2, fade = STIM_RATE / 200;
    for (int64_t i = 0; i < STIM_SAMPLES; i++) {
        int64_t j = start + i;
        out[i] = j >= 0 && j < a->n ? a->samples[j] : 0.0f;
    }
    for (int64_t i = 0; i < fade; i++) {
        float g = 0.5f - 0.5f * cosf((float)M_PI * (float)i / (float)fade);
        if (start > 0) out[i] *= g;
        if (start + STIM_SAMPLES < a->n) out[STIM_SAMPLES - 1 - i] *= g;
    }
}

static char *import_one(Import *im, int row) {
    char path[2048], out_path[1200];
    const char *file = field(im, row, COL_FILE, "");
    snprintf(path, sizeof path, "%s/%s", im->opt->dir, file);
    if (!*file) return problem("%s:%ld: empty file name", im->opt->labels, im->t->lines[row]);
    Error pe;
    if (path_check_inside(file, "--dir", &pe) != 0)
        return problem("%s:%ld: %s", im->opt->labels, im->t->lines[row], pe.msg);
    if (!*field(im, row, COL_LABEL, "")) return problem("%s: no label", path);
    Audio a;
    Error e;
    if (audio_read(path, STIM_RATE, 0, &a, &e) != 0) return xstrdup(e.msg);
    double dur = (double)a.n / STIM_RATE, centre = dur / 2;
    const char *cs = field(im, row, COL_CENTRE, NULL);
    char *end = NULL;
    if (cs) centre = strtod(cs, &end);
    char *bad = NULL;
    if (cs && (end == cs || *end || !isfinite(centre)))
        bad = problem("%s: centre_s '%s' is not a number", path, cs);
    else if (centre < 0 || centre > dur)
        bad = problem("%s: centre %.3f s is outside the recording (%.3f s long)", path, centre, dur);
    float *clip = xmalloc(STIM_SAMPLES * sizeof *clip);
    if (!bad) {
        take_window(&a, (int64_t)llround(centre * STIM_RATE), clip);
        if (!(audio_rms(clip, STIM_SAMPLES) > 1e-7))
            bad = problem("%s: silent in the 2 s around %.3f s", path, centre);
    }
    if (!bad) {
        audio_scale_to_rms(clip, STIM_SAMPLES, STIM_RMS);
        float *limited = xmalloc(STIM_SAMPLES * sizeof *limited);
        memcpy(limited, clip, STIM_SAMPLES * sizeof *clip);
        limit_peaks(clip, NULL, INFINITY, limited); /* same +-0.99 bound as built clips */
        memcpy(clip, limited, STIM_SAMPLES * sizeof *clip);
        free(limited);
        snprintf(out_path, sizeof out_path, "%s/%s.wav", im->clips_dir, im->ids[row]);
        if (audio_write_wav(out_path, clip, STIM_SAMPLES, 1, STIM_RATE, AUDIO_FLOAT32, NULL, &e) != 0)
            bad = xstrdup(e.msg);
    }
    free(clip);
    audio_free(&a);
    return bad;
}

static void import_task(void *ctx, int row, int worker) {
    (void)worker;
    Import *im = ctx;
    if (!im->problem[row]) im->problem[row] = import_one(im, row);
}

/* ------------------------------------------------------------- clip ids */

static void make_ids(Import *im) {
    int n = im->t->n_rows;
    im->ids = xcalloc((size_t)n + 1, sizeof *im->ids);
    for (int r = 0; r < n; r++) {
        const char *given = field(im, r, COL_ID, NULL), *file = field(im, r, COL_FILE, "x");
        char base[200];
        if (given) {
            snprintf(base, sizeof base, "%s", given);
        } else {
            const char *slash = strrchr(file, '/');
            snprintf(base, sizeof base, "%s", slash ? slash + 1 : file);
            char *dot = strrchr(base, '.');
            if (dot && dot != base) *dot = 0;
        }
        for (char *c = base; *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr("._-", *c)) *c = '_';
        if (!base[0] || base[0] == '.') base[0] = 'x', base[1] = 0;
        char id[256];
        snprintf(id, sizeof id, "%s", base);
        for (int k = 2;; k++) { /* unique: name, name-2, name-3, ... */
            int dup = 0;
            for (int q = 0; q < r && !dup; q++) dup = !strcmp(im->ids[q], id);
            if (!dup) break;
            snprintf(id, sizeof id, "%s-%d", base, k);
        }
        im->ids[r] = xstrdup(id);
    }
}

static int map_columns(Import *im, Error *err) {
    static const char *names[N_COLS] = {"file",  "label",    "centre_s",  "task", "speaker_or_style",
                                        "split", "clip_id",  "snr_db",    "noise"};
    for (int c = 0; c < N_COLS; c++) im->col[c] = table_column(im->t, names[c]);
    if (im->col[COL_CENTRE] < 0) im->col[COL_CENTRE] = table_column(im->t, "center_s");
    for (int c = 0; c < 2; c++)
        if (im->col[c] < 0)
            return error_set(err, "%s:1: missing column '%s' (need file,label; optional "
                             "centre_s,task,speaker_or_style,split,clip_id,snr_db,noise)",
                             im->opt->labels, names[c]);
    return 0;
}

/* Recordings in --dir that labels.csv does not mention are worth a note:
 * usually a typo in a file name. */
static void note_unlisted(const Import *im) {
    DIR *d = opendir(im->opt->dir);
    if (!d) return;
    int unlisted = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        int listed = 0;
        for (int r = 0; r < im->t->n_rows && !listed; r++)
            listed = !strcmp(field(im, r, COL_FILE, ""), e->d_name);
        unlisted += !listed;
    }
    closedir(d);
    if (unlisted)
        fprintf(stderr, "metamers: note: %d entries in %s are not in %s\n", unlisted,
                im->opt->dir, im->opt->labels);
}

static int write_result(Import *im, int *imported, Error *err) {
    Manifest m;
    manifest_init(&m);
    for (int r = 0; r < im->t->n_rows; r++) {
        if (im->problem[r]) {
            fprintf(stderr, "metamers: skipped %s\n", im->problem[r]);
            continue;
        }
        char path[300], snr_text[64];
        snprintf(path, sizeof path, "clips/%s.wav", im->ids[r]);
        ManifestRow row = {.clip_id = im->ids[r], .path = path,
                           .task = (char *)field(im, r, COL_TASK, "word"),
                           .label = (char *)field(im, r, COL_LABEL, ""), .source = "import",
                           .speaker_or_style = (char *)field(im, r, COL_SPEAKER, ""),
                           .noise = (char *)field(im, r, COL_NOISE, "none"),
                           .split = (char *)field(im, r, COL_SPLIT, "test"), .seed = -1};
        snprintf(snr_text, sizeof snr_text, "%s", field(im, r, COL_SNR, "inf"));
        char *end;
        row.snr_db = strcmp(snr_text, "inf") ? strtod(snr_text, &end) : INFINITY;
        manifest_add(&m, &row);
    }
    *imported = m.n;
    char mpath[1100];
    snprintf(mpath, sizeof mpath, "%s/manifest.csv", im->opt->out);
    int rc = manifest_write(mpath, &m, err);
    manifest_free(&m);
    return rc;
}

/* A bad snr_db is a row problem, found before any audio is read. */
static void check_rows(Import *im) {
    for (int r = 0; r < im->t->n_rows; r++) {
        const char *snr = field(im, r, COL_SNR, "inf");
        char *end;
        errno = 0;
        double v = strcmp(snr, "inf") ? strtod(snr, &end) : 0;
        if (strcmp(snr, "inf") && (*end || errno || !isfinite(v))) {
            char buf[600];
            snprintf(buf, sizeof buf, "%s:%ld: snr_db '%s' is not a number or \"inf\"",
                     im->opt->labels, im->t->lines[r], snr);
            im->problem[r] = xstrdup(buf);
        }
    }
}

static int run_import(const ImportOptions *opt, Error *err) {
    Table t;
    if (table_load(opt->labels, ',', 0, &t, err) != 0) return -1;
    Import im = {.opt = opt, .t = &t};
    int rc = map_columns(&im, err);
    if (rc == 0) {
        snprintf(im.clips_dir, sizeof im.clips_dir, "%s/clips", opt->out);
        rc = make_dirs(im.clips_dir, 0755, err);
    }
    int imported = 0;
    if (rc == 0) {
        make_ids(&im);
        im.problem = xcalloc((size_t)t.n_rows + 1, sizeof *im.problem);
        check_rows(&im);
        note_unlisted(&im);
        Pool *pool = pool_create(opt->jobs);
        pool_run(pool, import_task, &im, t.n_rows);
        pool_free(pool);
        rc = write_result(&im, &imported, err);
        fprintf(stderr, "metamers: imported %d of %d recordings into %s/manifest.csv\n", imported,
                t.n_rows, opt->out);
        if (rc == 0 && imported == 0) rc = error_set(err, "no recording could be imported");
    }
    for (int r = 0; im.ids && r < t.n_rows; r++) free(im.ids[r]), free(im.problem[r]);
    free(im.ids), free(im.problem);
    table_free(&t);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: metamers stimuli import --dir D --labels labels.csv --out DIR [--jobs N]\n\n"
            "Turns recordings into a stimulus set like `stimuli build` makes: each file is\n"
            "resampled to 20 kHz mono, cut or zero-padded to the 2 s around centre_s and\n"
            "scaled to RMS 0.1, into DIR/clips/ and DIR/manifest.csv. Files that cannot be\n"
            "used are listed on stderr, one line each, and left out.\n\n"
            "labels.csv columns: file,label (required); centre_s (default: middle of the\n"
            "file), task (word), speaker_or_style, split (test), clip_id (file name),\n"
            "snr_db (inf), noise (none).\n");
}

int stimuli_cmd_import(int argc, char **argv) {
    ImportOptions o = {.jobs = default_thread_count()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        const char **slot = !strcmp(a, "--dir") ? &o.dir : !strcmp(a, "--labels") ? &o.labels
                            : !strcmp(a, "--out") ? &o.out : NULL;
        if (!slot && strcmp(a, "--jobs")) {
            fprintf(stderr, "metamers: stimuli import: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "metamers: stimuli import: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (slot) {
            *slot = v;
        } else if ((o.jobs = atoi(v)) < 1 || o.jobs > 256) {
            fprintf(stderr, "metamers: stimuli import: bad --jobs '%s'\n", v);
            return 2;
        }
    }
    if (!o.dir || !o.labels || !o.out) {
        fprintf(stderr, "metamers: stimuli import: --dir, --labels and --out are required\n");
        return 2;
    }
    Error err;
    if (run_import(&o, &err) != 0) {
        fprintf(stderr, "metamers: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* `metamers stimuli build|import ...`: argv[0] is "stimuli". */
int stimuli_cmd(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "build")) return stimuli_cmd_build(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "import")) return stimuli_cmd_import(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr,
            "usage: metamers stimuli build --recipe tiny|demo|train|experiment --out DIR ...\n"
            "       metamers stimuli import --dir D --labels labels.csv --out DIR\n"
            "(metamers stimuli build --help, metamers stimuli import --help for details)\n");
    if (!help && argc >= 2)
        fprintf(stderr, "metamers: stimuli: unknown subcommand '%s'\n", argv[1]);
    return help ? 0 : 2;
}
