/* Analysis benchmarks: reading (and matching) 100 000 trials must take under
 * 2 s. Generates a study of 100 participants x 1000 trials (BIDS TSV logs,
 * participants.tsv, 10 000 model responses with stimulus paths), then times
 * study_load (parse, validate, match every trial to its model response) and,
 * once, the whole analysis with the default options. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../analysis/ana_internal.h"
#include "bench.h"

enum { B_SUBJ = 100, B_CLIPS = 1000, B_CONDS = 10, B_LABELS = 50 };

static const char *cond_stage(int k) {
    static const char *stages[B_CONDS] = {"n/a",   "cochleagram", "relu0", "relu1", "relu2",
                                          "relu3", "relu4",       "avgpool", "relufc", "final"};
    return stages[k];
}

static int generate(const char *dir) {
    char path[1024];
    Rng rng;
    rng_seed(&rng, 99);
    snprintf(path, sizeof path, "%s/participants.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "participant_id\theadphone_check\texcluded\n");
    for (int s = 1; s <= B_SUBJ; s++) fprintf(f, "sub-%03d\tpass\tfalse\n", s);
    fclose(f);
    snprintf(path, sizeof path, "%s/model.csv", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "clip_id,task,label,top1,p_top1,correct,stimulus_path,condition,stage,model\n");
    for (int c = 0; c < B_CLIPS; c++)
        for (int k = 0; k < B_CONDS; k++) {
            int ok = rng_uniform(&rng) < 0.8, label = c % B_LABELS;
            fprintf(f, "clip%04d,word,w%02d,w%02d,%.4f,%d,/data/%s/clip%04d_s0.wav,%s,%s,%s\n", c,
                    label, ok ? label : (label + 1) % B_LABELS, 0.5 + 0.5 * rng_uniform(&rng), ok,
                    k ? cond_stage(k) : "clips", c, k ? "metamer" : "natural", cond_stage(k),
                    k ? "default" : "n/a");
        }
    fclose(f);
    for (int s = 1; s <= B_SUBJ; s++) {
        snprintf(path, sizeof path, "%s/sub-%03d_task-word_run-1_beh.tsv", dir, s);
        if (!(f = fopen(path, "w"))) return -1;
        fprintf(f, "trial\tblock\ttrial_type\tclip_id\tstimulus_path\tcondition\tstage\tmodel\t"
                   "true_label\tresponse\tcorrect\trt_ms\tonset_iso8601\treplays\n");
        for (int c = 0; c < B_CLIPS; c++) {
            int k = (c + s) % B_CONDS, label = c % B_LABELS, ok = rng_uniform(&rng) < 0.9 - 0.07 * k;
            fprintf(f, "%d\t%d\tmain\tclip%04d\t%s/clip%04d_s0.wav\t%s\t%s\t%s\tw%02d\tw%02d\t%d\t%d\t"
                       "2024-05-01T10:%02d:%02dZ\t0\n",
                    c + 1, c / 250 + 1, c, k ? cond_stage(k) : "clips", c,
                    k ? "metamer" : "natural", cond_stage(k), k ? "default" : "n/a", label,
                    ok ? label : (label + 3) % B_LABELS, ok, 800 + c % 700, c / 60 % 60, c % 60);
        }
        fclose(f);
    }
    return 0;
}

BENCH(bench_analysis_read_100k_trials) {
    char dir[] = "/tmp/metamers-bench-XXXXXX", glob[1100], parts[1100], model[1100], out[1100];
    if (!mkdtemp(dir)) return;
    if (generate(dir) != 0) {
        printf("  could not write the study under %s\n", dir);
        bench_remove_tree(dir);
        return;
    }
    snprintf(glob, sizeof glob, "%s/sub-*_beh.tsv", dir);
    snprintf(parts, sizeof parts, "%s/participants.tsv", dir);
    snprintf(model, sizeof model, "%s/model.csv", dir);
    snprintf(out, sizeof out, "%s/report", dir);
    const char *globs[] = {glob};
    AnalysisOptions o;
    analysis_options_default(&o);
    o.trial_globs = globs;
    o.n_trial_globs = 1;
    o.participants = parts;
    o.model_responses = model;
    o.out = out;
    double sec[5];
    int runs = 0, n_trials = 0;
    for (; runs < 5; runs++) {
        Study st;
        Error err = {{0}};
        double t0 = now_seconds();
        int rc = study_load(&st, &o, &err);
        sec[runs] = now_seconds() - t0;
        n_trials = st.n_trials;
        study_free(&st);
        if (rc != 0) {
            printf("  study_load failed: %s\n", err.msg);
            break;
        }
    }
    if (runs == 5) {
        char note[128];
        snprintf(note, sizeof note, "%d trials, 100 logs + 10k model rows; target < 2 s", n_trials);
        bench_report("read + validate + match 100k trials", bench_median(sec, runs), "s", note);
        Error err = {{0}};
        /* analysis_run prints a summary: keep the benchmark table clean. */
        fflush(stdout);
        int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        double t0 = now_seconds();
        int rc = analysis_run(&o, &err);
        double t = now_seconds() - t0;
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        close(devnull);
        if (rc == 0)
            bench_report("whole analysis + report, 100k trials", t, "s",
                         "defaults: 2000 bootstraps, 10000 permutations, 1000 splits");
        else
            printf("  analysis failed: %s\n", err.msg);
    }
    bench_remove_tree(dir);
}
