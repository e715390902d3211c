/* `metamers show`: the natural clip's cochleagram beside its metamers' at
 * each stage, one row per clip, like the figures of Feather et al. 2019/2023.
 *
 * SVG with each cochleagram embedded as an 8-bit palette PNG (base64), or a
 * label-free PNG grid when --out ends in .png. The PNG writer uses stored
 * (uncompressed) deflate blocks, so it needs no zlib; a 211 x 390
 * cochleagram is ~80 kB. Color scale per row: the natural clip's range, so
 * a metamer that is too quiet or too loud shows as such. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "synth_internal.h"

/* ----------------------------------------------------------------- PNG */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put32(Buf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    put(b, x, 4);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 255] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void chunk(Buf *b, const char *type, const unsigned char *data, size_t n) {
    put32(b, (uint32_t)n);
    size_t start = b->n;
    put(b, type, 4);
    if (n) put(b, data, n);
    put32(b, crc32_of(b->p + start, n + 4));
}

/* Palette: 0..254 viridis-like, 255 white (gaps). */
static void palette(unsigned char pal[768]) {
    static const double anchor[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    for (int i = 0; i < 255; i++) {
        double t = i / 254.0 * 4;
        int k = t >= 4 ? 3 : (int)t;
        double f = t - k;
        for (int c = 0; c < 3; c++)
            pal[3 * i + c] = (unsigned char)lround(anchor[k][c] * (1 - f) + anchor[k + 1][c] * f);
    }
    pal[765] = pal[766] = pal[767] = 255;
}

/* idx: h rows of w palette indices, top row first. */
static void png_encode(const unsigned char *idx, int w, int h, Buf *out) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put(out, sig, 8);
    unsigned char ihdr[13] = {0};
    for (int i = 0; i < 4; i++) ihdr[i] = (unsigned char)(w >> (24 - 8 * i)), ihdr[4 + i] = (unsigned char)(h >> (24 - 8 * i));
    ihdr[8] = 8, ihdr[9] = 3; /* 8-bit palette */
    chunk(out, "IHDR", ihdr, 13);
    unsigned char pal[768];
    palette(pal);
    chunk(out, "PLTE", pal, 768);
    /* zlib stream of stored blocks over the filtered (filter 0) scanlines. */
    size_t raw_n = (size_t)h * (w + 1);
    unsigned char *raw = xmalloc(raw_n);
    for (int y = 0; y < h; y++) raw[(size_t)y * (w + 1)] = 0, memcpy(raw + (size_t)y * (w + 1) + 1, idx + (size_t)y * w, (size_t)w);
    Buf z = {0};
    unsigned char hdr[2] = {0x78, 0x01};
    put(&z, hdr, 2);
    for (size_t pos = 0; pos < raw_n || raw_n == 0;) {
        size_t len = raw_n - pos > 65535 ? 65535 : raw_n - pos;
        unsigned char bh[5] = {(unsigned char)(pos + len == raw_n), (unsigned char)len, (unsigned char)(len >> 8),
                               (unsigned char)~len, (unsigned char)(~len >> 8)};
        put(&z, bh, 5);
        put(&z, raw + pos, len);
        pos += len;
        if (raw_n == 0) break;
    }
    uint32_t a = 1, b2 = 0;
    for (size_t i = 0; i < raw_n; i++) a = (a + raw[i]) % 65521, b2 = (b2 + a) % 65521;
    put32(&z, b2 << 16 | a);
    chunk(out, "IDAT", z.p, z.n);
    chunk(out, "IEND", NULL, 0);
    free(z.p);
    free(raw);
}

static char *base64(const unsigned char *p, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = xmalloc(4 * ((n + 2) / 3) + 1), *o = s;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = t[v >> 18 & 63], *o++ = t[v >> 12 & 63];
        *o++ = i + 1 < n ? t[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? t[v & 63] : '=';
    }
    *o = 0;
    return s;
}

/* ------------------------------------------------------------- figure */

typedef struct {
    const char *clip;
    int n_panels;
    float **coch;      /* panel 0 natural, then one per stage (NULL = missing) */
    const Row **rows;  /* per stage panel */
} FigRow;

/* Cochleagram -> palette indices, low frequencies at the bottom. */
static void to_indices(const float *c, int ch, int fr, double lo, double hi, unsigned char *idx) {
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < fr; x++) {
            double v = (c[(size_t)(ch - 1 - y) * fr + x] - lo) / (hi - lo + 1e-12);
            idx[(size_t)y * fr + x] = (unsigned char)(v <= 0 ? 0 : v >= 1 ? 254 : lround(v * 254));
        }
}

static float *cochleagram_of(Cochleagram *co, CochleagramWork *w, const Network *net, const char *path,
                             Error *err) {
    Audio a;
    if (audio_read(path, net->front_end.sr, net->front_end.signal_size, &a, err) != 0) return NULL;
    float *out = alloc_floats((size_t)cochleagram_channels(co) * cochleagram_frames(co));
    cochleagram_forward(co, w, NULL, a.samples, out);
    audio_free(&a);
    return out;
}

static void svg_text(FILE *f, double x, double y, const char *anchor, const char *color, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\">", x, y, anchor, color);
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '>') fputs("&gt;", f);
        else fputc(*s, f);
    }
    fputs("</text>\n", f);
}

static void panel_range(const float *c, size_t n, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) *lo = fmin(*lo, c[i]), *hi = fmax(*hi, c[i]);
}

static int write_svg(const char *path, FigRow *fr, int n_rows, const char **stages, int n_stages,
                     int ch, int frames, Error *err) {
    const double pw = 220, ph = 130, gap = 12, left = 150, top = 40;
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) return -1;
    FILE *f = af.f;
    double W = left + (n_stages + 1) * (pw + gap), H = top + n_rows * (ph + 34) + 10;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    svg_text(f, left + pw / 2, top - 12, "middle", "black", "natural");
    for (int s = 0; s < n_stages; s++) svg_text(f, left + (s + 1) * (pw + gap) + pw / 2, top - 12, "middle", "black", stages[s]);
    unsigned char *idx = xmalloc((size_t)ch * frames);
    for (int r = 0; r < n_rows; r++) {
        double y = top + r * (ph + 34), lo, hi;
        svg_text(f, left - 8, y + ph / 2, "end", "black", fr[r].clip);
        panel_range(fr[r].coch[0], (size_t)ch * frames, &lo, &hi);
        for (int p = 0; p <= n_stages; p++) {
            double x = left + p * (pw + gap);
            if (!fr[r].coch[p]) {
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" fill=\"#eee\"/>\n", x, y, pw, ph);
                continue;
            }
            to_indices(fr[r].coch[p], ch, frames, lo, hi, idx);
            Buf png = {0};
            png_encode(idx, frames, ch, &png);
            char *b64 = base64(png.p, png.n);
            fprintf(f, "<image x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" preserveAspectRatio=\"none\" "
                       "href=\"data:image/png;base64,%s\"/>\n", x, y, pw, ph, b64);
            free(b64), free(png.p);
            if (p > 0 && fr[r].rows[p - 1]) {
                const Row *row = fr[r].rows[p - 1];
                char t[200];
                bool ok = !strcmp(row->f[COL_PASSED], "true");
                snprintf(t, sizeof t, "%s  rho %.3f  r %.3f  %.1f dB", ok ? "pass" : "FAIL",
                         atof(row->f[COL_SPEARMAN]), atof(row->f[COL_PEARSON]), atof(row->f[COL_SNR_DB]));
                svg_text(f, x + pw / 2, y + ph + 15, "middle", ok ? "#1a7f37" : "#cf222e", t);
            }
        }
    }
    fputs("</svg>\n", f);
    free(idx);
    return atomic_commit(&af, err);
}

/* The same grid as pixels, no labels; 4-pixel white gaps. */
static int write_png(const char *path, FigRow *fr, int n_rows, int n_stages, int ch, int frames, Error *err) {
    int g = 4, W = (n_stages + 1) * (frames + g) - g, H = n_rows * (ch + g) - g;
    unsigned char *img = xmalloc((size_t)W * H), *idx = xmalloc((size_t)ch * frames);
    memset(img, 255, (size_t)W * H);
    for (int r = 0; r < n_rows; r++) {
        double lo, hi;
        panel_range(fr[r].coch[0], (size_t)ch * frames, &lo, &hi);
        for (int p = 0; p <= n_stages; p++) {
            if (!fr[r].coch[p]) continue;
            to_indices(fr[r].coch[p], ch, frames, lo, hi, idx);
            for (int y = 0; y < ch; y++)
                memcpy(img + (size_t)(r * (ch + g) + y) * W + p * (frames + g), idx + (size_t)y * frames, (size_t)frames);
        }
    }
    Buf png = {0};
    png_encode(img, W, H, &png);
    int rc = atomic_write_file(path, png.p, png.n, 0644, err);
    free(png.p), free(img), free(idx);
    return rc;
}

static bool listed(const char *list, const char *item) { return !list || synth_in_list(list, item); }

static int show(const char *model, const char *dir, const char *clips, const char *stage_list, int seed,
                const char *out, Error *err) {
    Network net;
    if (network_open(&net, model, err) != 0) return error_prefix(err, "%s", model);
    Row *rows = NULL;
    int n = 0, rc = rows_scan_dir(dir, &rows, &n, err);
    rows_sort(rows, n);
    /* Stages (model order) and clips present after the filters. */
    const char **stages = xcalloc((size_t)n + 1, sizeof *stages), **clipv = xcalloc((size_t)n + 1, sizeof *clipv);
    int ns = 0, nc = 0;
    char seed_s[16];
    snprintf(seed_s, sizeof seed_s, "%d", seed);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (strcmp(rows[i].f[COL_SEED], seed_s) || !listed(clips, rows[i].f[COL_CLIP_ID]) ||
            !listed(stage_list, rows[i].f[COL_STAGE]))
            continue;
        int s = 0, c = 0;
        while (s < ns && strcmp(stages[s], rows[i].f[COL_STAGE])) s++;
        if (s == ns) stages[ns++] = rows[i].f[COL_STAGE];
        while (c < nc && strcmp(clipv[c], rows[i].f[COL_CLIP_ID])) c++;
        if (c == nc) clipv[nc++] = rows[i].f[COL_CLIP_ID];
    }
    if (rc == 0 && nc == 0) rc = error_set(err, "%s: no metamers (seed %d) match the filters", dir, seed);
    Cochleagram *co = rc == 0 ? cochleagram_create(&net.front_end, err) : NULL;
    if (rc == 0 && !co) rc = -1;
    CochleagramWork *w = co ? cochleagram_work_create(co, 1) : NULL;
    FigRow *fr = xcalloc((size_t)nc + 1, sizeof *fr);
    for (int c = 0; rc == 0 && c < nc; c++) {
        fr[c].clip = clipv[c];
        fr[c].coch = xcalloc((size_t)ns + 1, sizeof *fr[c].coch);
        fr[c].rows = xcalloc((size_t)ns + 1, sizeof *fr[c].rows);
        char rel[600];
        snprintf(rel, sizeof rel, "natural/%s.wav", clipv[c]);
        char *p = synth_join(dir, rel);
        if (!(fr[c].coch[0] = cochleagram_of(co, w, &net, p, err))) rc = -1;
        free(p);
        for (int i = 0; rc == 0 && i < n; i++) {
            if (strcmp(rows[i].f[COL_CLIP_ID], clipv[c]) || strcmp(rows[i].f[COL_SEED], seed_s)) continue;
            for (int s = 0; s < ns; s++)
                if (!strcmp(stages[s], rows[i].f[COL_STAGE])) {
                    char *wp = synth_join(dir, rows[i].f[COL_PATH]);
                    fr[c].rows[s] = &rows[i];
                    if (!(fr[c].coch[s + 1] = cochleagram_of(co, w, &net, wp, err))) rc = -1;
                    free(wp);
                }
        }
    }
    size_t len = strlen(out);
    if (rc == 0) {
        int ch = cochleagram_channels(co), frames = cochleagram_frames(co);
        rc = len > 4 && !strcmp(out + len - 4, ".png") ? write_png(out, fr, nc, ns, ch, frames, err)
                                                       : write_svg(out, fr, nc, stages, ns, ch, frames, err);
    }
    for (int c = 0; c < nc; c++) {
        for (int s = 0; fr[c].coch && s <= ns; s++) free(fr[c].coch[s]);
        free(fr[c].coch), free(fr[c].rows);
    }
    free(fr), free(stages), free(clipv);
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    free(rows);
    if (w) cochleagram_work_free(w);
    if (co) cochleagram_free(co);
    network_free(&net);
    return rc;
}

int synth_cmd_show(int argc, char **argv) {
    const char *model = NULL, *dir = NULL, *clips = NULL, *stages = NULL, *out = NULL;
    int seed = 0;
    static const struct option opts[] = {{"model", 1, 0, 'm'}, {"dir", 1, 0, 'd'}, {"clips", 1, 0, 'c'},
                                         {"stages", 1, 0, 's'}, {"seed", 1, 0, 'e'}, {"out", 1, 0, 'o'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 0, opterr = 0; /* 0: full reset, commands may run twice */
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': dir = optarg; break;
        case 'c': clips = optarg; break;
        case 's': stages = optarg; break;
        case 'e': seed = atoi(optarg); break;
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: metamers show --model M --dir SYNTH_OUT --out FIG.svg|FIG.png\n"
                   "         [--clips A,B] [--stages S1,S2] [--seed N]\n"
                   "  Cochleagrams of each natural clip (first column) and of its metamers at\n"
                   "  each stage, one row per clip; SVG with labels and verdicts, or a PNG grid.\n");
            return 0;
        default: fprintf(stderr, "metamers show: bad option '%s' (see --help)\n", argv[optind - 1]); return 2;
        }
    }
    if (!model || !dir || !out) {
        fprintf(stderr, "metamers show: %s is required (see --help)\n", !model ? "--model" : !dir ? "--dir" : "--out");
        return 2;
    }
    Error err = {0};
    if (show(model, dir, clips, stages, seed, out, &err) != 0) {
        fprintf(stderr, "metamers show: %s\n", err.msg);
        return 1;
    }
    return 0;
}
