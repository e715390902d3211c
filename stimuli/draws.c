/* Extra draws of the training split (Recipe.train_draws, --train-draws).
 *
 * Why draws rather than a larger word_clips: the plan draws the training
 * clips before the test clips from one random stream, so a larger training
 * split would change the test split too, and every comparison with earlier
 * models would be on other clips. A draw is the training part of the plan
 * of the next seed, built as a set of its own in DIR/s<seed>/ (so it
 * resumes like any build); the joined manifest lists it after the seed's
 * own set. Its voices are training voices like the seed's (the split of a
 * voice design is fixed), but their styles, the songs, contexts and
 * backgrounds are drawn anew. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stim_internal.h"

/* "s2": the draw's folder name inside DIR and its clip-id prefix. */
static void draw_name(uint64_t seed, char *buf, size_t n) { snprintf(buf, n, "s%" PRIu64, seed); }

void draw_dir(const char *out, uint64_t seed, char *buf, size_t n) {
    char name[32];
    draw_name(seed, name, sizeof name);
    snprintf(buf, n, "%s/%s", out, name);
}

static int append_draw(Manifest *joined, const char *out, uint64_t seed, Error *err) {
    char path[1200], prefix[32];
    draw_name(seed, prefix, sizeof prefix);
    snprintf(path, sizeof path, "%s/%s/manifest.csv", out, prefix);
    Manifest m;
    if (manifest_read(path, &m, err) != 0) return -1;
    for (int i = 0; i < m.n; i++) {
        ManifestRow row = m.rows[i];
        char id[160], p[300], song[160];
        snprintf(id, sizeof id, "%s-%s", prefix, row.clip_id);
        snprintf(p, sizeof p, "%s/%s", prefix, row.path);
        row.clip_id = id, row.path = p;
        /* a voice is the same talker in every draw, but "song:jazz-train-03"
         * of another seed is another song */
        if (!strncmp(row.speaker_or_style, "song:", 5)) {
            snprintf(song, sizeof song, "song:%s-%s", prefix, row.speaker_or_style + 5);
            row.speaker_or_style = song;
        }
        manifest_add(joined, &row);
    }
    manifest_free(&m);
    return 0;
}

int draws_join(const char *out, uint64_t seed, int draws, int quiet, Error *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.csv", out);
    Manifest joined;
    if (manifest_read(path, &joined, err) != 0) return -1;
    int own = joined.n, rc = 0;
    for (int d = 1; d < draws && rc == 0; d++) rc = append_draw(&joined, out, seed + (uint64_t)d, err);
    if (rc == 0) rc = manifest_write(path, &joined, err);
    if (rc == 0 && !quiet)
        fprintf(stderr, "stimuli: %s joins seed %" PRIu64 "'s %d clips and %d training clips of %d more draw%s\n",
                path, seed, own, joined.n - own, draws - 1, draws > 2 ? "s" : "");
    manifest_free(&joined);
    return rc;
}
