/* Paths named inside files stay in their folder (core's path_check_inside):
 * manifests, designs, trial lists and what `experiment build` reaches
 * through them, unless the user passes --allow-outside. And the
 * participant data a session writes is owner-only (0600 files, 0700
 * folders) whatever the umask. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../experiment/internal.h"
#include "../stimuli/stimuli.h"
#include "experiment_fixture.h"
#include "test.h"

TEST(paths_inside_their_folder_by_text) {
    static const struct {
        const char *rel;
        bool inside;
    } cases[] = {
        {"a.wav", true},       {"clips/a.wav", true},    {"./a.wav", true},
        {"a/../b.wav", true},  {"a/..", true},           {"..a/b.wav", true},
        {"a/b/../../c", true}, {"../a.wav", false},      {"a/../../b.wav", false},
        {"/etc/passwd", false}, {"a//..//../b", false},  {"./../a", false},
        {"..", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Error err = {{0}};
        int rc = path_check_inside(cases[i].rel, "the test's folder", &err);
        CHECK(t, (rc == 0) == cases[i].inside, "%s: %s", cases[i].rel, rc ? err.msg : "accepted");
        if (rc)
            CHECK(t, strstr(err.msg, cases[i].rel) && strstr(err.msg, "--allow-outside"),
                  "message: %s", err.msg);
    }
    Error err = {{0}};
    paths_allow_outside(true);
    CHECK(t, path_check_inside("../a", "x", &err) == 0, "allowed by the flag");
    paths_allow_outside(false);
    setenv("METAMERS_ALLOW_OUTSIDE", "1", 1);
    CHECK(t, path_check_inside("/a", "x", &err) == 0, "allowed by the environment");
    unsetenv("METAMERS_ALLOW_OUTSIDE");
    CHECK(t, path_check_inside("/a", "x", &err) != 0, "refused again");
}

static const char *write_in_tmp(TestCtx *t, const char *name, const char *text) {
    static char path[8][700];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", test_tmpdir(t), name);
    Error err = {{0}};
    if (atomic_write_file(p, text, strlen(text), 0644, &err) != 0) CHECK(t, 0, "%s", err.msg);
    return p;
}

TEST(paths_manifest_rows_stay_in_the_manifest_folder) {
    static const char *header = "clip_id,path,task,label,source,speaker_or_style,snr_db,noise,split,seed\n";
    const char *bad[] = {"../elsewhere/a.wav", "/home/someone/a.wav"};
    for (int k = 0; k < 2; k++) {
        char text[512];
        snprintf(text, sizeof text, "%sa,clips/a.wav,word,x,import,s,inf,none,test,\n"
                                    "b,%s,word,y,import,s,inf,none,test,\n", header, bad[k]);
        const char *path = write_in_tmp(t, "manifest.csv", text);
        Manifest m;
        Error err = {{0}};
        CHECK(t, manifest_read(path, &m, &err) != 0 && strstr(err.msg, path) &&
                     strstr(err.msg, "clip b") && strstr(err.msg, bad[k]),
              "message: %s", err.msg);
        paths_allow_outside(true);
        CHECK(t, manifest_read(path, &m, &err) == 0 && m.n == 2, "allowed: %s", err.msg);
        paths_allow_outside(false);
        manifest_free(&m);
    }
}

TEST(paths_design_files_stay_in_the_design_folder) {
    static const char *tmpl =
        "{\"task\": \"word\", \"manifests\": \"%s\", \"seed\": 1, \"trials_per_condition\": 1,"
        " \"metamers\": [{\"model\": \"m\", \"csv\": \"%s\"}],"
        " \"conditions\": [{\"name\": \"natural\"}], \"response\": {\"vocabulary\": \"%s\"}}";
    const char *fields[3][3] = {{"../m.csv", "met.csv", "words.txt"},
                                {"m.csv", "/tmp/met.csv", "words.txt"},
                                {"m.csv", "met.csv", "../../words.txt"}};
    const char *key[3] = {"\"manifests\"", "\"metamers\" csv", "vocabulary file"};
    char path[700];
    snprintf(path, sizeof path, "%s/design.json", test_tmpdir(t));
    write_in_tmp(t, "words.txt", "apple\npear\n"); /* read while parsing */
    for (int k = 0; k < 3; k++) {
        char json[1024];
        snprintf(json, sizeof json, tmpl, fields[k][0], fields[k][1], fields[k][2]);
        Design d;
        Error err = {{0}};
        CHECK(t, exp_design_parse(json, strlen(json), path, &d, &err) != 0 && strstr(err.msg, path) &&
                     strstr(err.msg, key[k]) && strstr(err.msg, "design's folder"),
              "case %d: %s", k, err.msg);
    }
}

TEST(paths_trial_list_stimuli_stay_in_the_design_folder) {
    char text[] = "trial\tblock\tphase\tcondition\tclip_id\tstimulus_path\tstage\tmodel\ttrue_label\t"
                  "metamer_seed\n"
                  "1\t0\tpractice\tnatural\tc1\tclips/c1.wav\tn/a\tn/a\tapple\tn/a\n"
                  "2\t1\tmain\tnatural\tc2\tclips/../../c2.wav\tn/a\tn/a\tpear\tn/a\n";
    TrialList l;
    Error err = {{0}};
    CHECK(t, exp_trials_parse(text, "sub-01_trials.tsv", &l, &err) != 0 &&
                 strstr(err.msg, "sub-01_trials.tsv:3") && strstr(err.msg, "clips/../../c2.wav"),
          "message: %s", err.msg);
}

static const FixtureSpec SMALL = {.clips = 12,
                                  .with_metamers = 0,
                                  .n_conds = 1,
                                  .seeds = 1,
                                  .trials_per_condition = 4,
                                  .practice_feedback = 1,
                                  .practice_scored = 2,
                                  .practice_pass = 0,
                                  .screening = "\"woods\""};

/* Manifest rows pointing out of the design's folder ("../../clips/..."
 * from a manifest at its root): build refuses them, naming a clip, unless
 * allowed. */
TEST(paths_experiment_build_refuses_stimuli_outside_the_design_folder) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &SMALL, "outside", &f) == 0, "fixture");
    char man[700], clips[700], moved[700];
    snprintf(man, sizeof man, "%s/manifest.csv", f.dir);
    snprintf(clips, sizeof clips, "%s/clips", f.dir);
    snprintf(moved, sizeof moved, "%s/../clips", f.dir);
    REQUIRE(t, rename(clips, moved) == 0, "move the clips out of the study folder");
    char *text = expfx_slurp(man, NULL);
    REQUIRE(t, text, "manifest");
    size_t cap = 2 * strlen(text) + 1, n = 0;
    char *out_text = xmalloc(cap);
    for (const char *p = text; *p;) /* clips/x.wav -> ../clips/x.wav */
        if (!strncmp(p, ",clips/", 7)) n += (size_t)snprintf(out_text + n, cap - n, ",../clips/"), p += 7;
        else out_text[n++] = *p++;
    out_text[n] = 0;
    Error err = {{0}};
    REQUIRE(t, atomic_write_file(man, out_text, n, 0644, &err) == 0, "%s", err.msg);
    free(text), free(out_text);
    char out[4096];
    char *argv[] = {"build", "--design", f.design, "--participants", "2", NULL};
    int rc = fx_quiet_cmd(experiment_cmd_build, 5, argv, out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "'../clips/c") && strstr(out, "stimulus of c") &&
                 strstr(out, "leads out of the design's folder"),
          "build: %s", out);
    paths_allow_outside(true);
    rc = fx_quiet_cmd(experiment_cmd_build, 5, argv, out, sizeof out);
    paths_allow_outside(false);
    CHECK(t, rc == 0, "allowed: %s", out);
}

/* Every file a session writes under the data folder is 0600 and every
 * folder 0700, even with umask 0: participant data on a shared machine. */
static void check_modes(TestCtx *t, const char *dir, int *files) {
    DIR *d = opendir(dir);
    REQUIRE(t, d, "%s unreadable", dir);
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        REQUIRE(t, lstat(p, &st) == 0, "%s", p);
        if (S_ISDIR(st.st_mode)) {
            CHECK(t, (st.st_mode & 0777) == 0700, "%s: folder mode %o", p, st.st_mode & 0777);
            check_modes(t, p, files);
        } else {
            CHECK(t, (st.st_mode & 0777) == 0600, "%s: mode %o", p, st.st_mode & 0777);
            ++*files;
        }
    }
    closedir(d);
}

TEST(subject_data_files_are_owner_only) {
    umask(0); /* the runner forks per test: this stays in this test */
    Fixture f;
    REQUIRE(t, expfx_make(t, &SMALL, "modes", &f) == 0 && expfx_build(&f, 2) == 0, "fixture");
    char out[4096];
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle", NULL, NULL, out, sizeof out) == 0, "%s", out);
    REQUIRE(t, expfx_run_observer(&f, "02", "oracle", NULL, NULL, out, sizeof out) == 0, "%s", out);
    struct stat st;
    REQUIRE(t, stat(f.data, &st) == 0, "no data folder");
    CHECK(t, (st.st_mode & 0777) == 0700, "data folder mode %o", st.st_mode & 0777);
    int files = 0;
    check_modes(t, f.data, &files);
    /* participants.tsv/.json, the lock, and per subject a log and its sidecar. */
    CHECK(t, files >= 7, "only %d files written", files);
}
