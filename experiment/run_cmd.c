/* Command line of `metamers experiment run` and what it tells the
 * experimenter after the session (the participant's screen is gone by
 * then). */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char run_usage[] =
    "usage: metamers experiment run --design D.json --subject ID [options]\n"
    "\n"
    "Runs (or resumes) one participant's session in this terminal: instructions,\n"
    "volume setting, headphone check, practice, main blocks with breaks. Each answer\n"
    "is saved (fsync) before the next sound, to\n"
    "  DATA/sub-ID/beh/sub-ID_task-TASK_run-N_beh.tsv  (+ .json sidecar)\n"
    "Running the same command again continues after the last saved trial.\n"
    "Register participants first with `metamers subjects add`. Ctrl-C stops safely.\n"
    "\n"
    "  --design D        the design file (its lists must be built: experiment build)\n"
    "  --subject ID      participant ID, e.g. 07 (plays list sub-07)\n"
    "  --lists DIR       trial lists (default: D without .json + \"_trials\")\n"
    "  --data-dir DIR    BIDS data set root (default: subjects)\n"
    "  --run N           BIDS run number (default 1)\n"
    "  --device DEV      audio output: number or part of the name (see `devices`)\n"
    "  --rate HZ         output sample rate (default: the device's)\n"
    "  --audio file:PATH[,rate=HZ]\n"
    "                    no device: write what would be played to a stereo WAV\n"
    "  --observer SPEC   simulated observer instead of a person (no keyboard, no\n"
    "                    audio unless --audio/--device): oracle[,lapse=P][,seed=S],\n"
    "                    table:PREDICTIONS.csv[,lapse=P], model:M (when available);\n"
    "                    also delay_ms=MS. Unregistered IDs are added for them.\n";

static int parse_args(int argc, char **argv, RunArgs *a) {
    static const struct option opts[] = {{"design", required_argument, 0, 'D'},
                                         {"subject", required_argument, 0, 's'},
                                         {"lists", required_argument, 0, 'l'},
                                         {"data-dir", required_argument, 0, 'd'},
                                         {"run", required_argument, 0, 'r'},
                                         {"device", required_argument, 0, 'v'},
                                         {"rate", required_argument, 0, 'R'},
                                         {"audio", required_argument, 0, 'a'},
                                         {"observer", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (RunArgs){.data_dir = "subjects", .run = 1};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': a->design = optarg; break;
        case 's': a->subject = optarg; break;
        case 'l': a->lists = optarg; break;
        case 'd': a->data_dir = optarg; break;
        case 'r': a->run = atoi(optarg); break;
        case 'v': a->device = optarg; break;
        case 'R': a->rate = atoi(optarg); break;
        case 'a': a->audio = optarg; break;
        case 'o': a->observer = optarg; break;
        case 'h': fputs(run_usage, stdout); return 1;
        default:
            fprintf(stderr,
                    "metamers experiment run: unknown or incomplete option '%s' (see "
                    "--help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    const char *bad = !a->design                        ? "need --design D"
                      : !a->subject                     ? "need --subject ID"
                      : a->run < 1 || a->run > 999      ? "--run must be 1..999"
                      : a->rate < 0 || a->rate > 384000 ? "--rate must be 1..384000"
                      : optind != argc                  ? "unexpected argument"
                                                        : NULL;
    if (bad) {
        fprintf(stderr, "metamers experiment run: %s (see --help)\n", bad);
        return 2;
    }
    return 0;
}

static int write_sidecar(Session *s, Error *err) {
    char start[40];
    exp_iso8601_now(start, 0);
    SessionInfo info = {s->session,
                        s->log.n_done + 1,
                        start,
                        s->human ? "human" : s->a.observer,
                        s->audio ? exp_audio_out_name(s->audio) : NULL,
                        s->audio ? exp_audio_out_rate(s->audio) : 0,
                        s->audio ? exp_audio_out_latency(s->audio) : 0,
                        s->a.design,
                        s->d.sha256,
                        s->list_path,
                        s->list.sha256,
                        s->d.task,
                        s->log.repaired_bytes};
    return exp_sidecar_write(s->json_path, &info, err);
}

static void report(Session *s, int outcome, const Error *err) {
    int saved = s->log.n_done, n = s->list.n;
    if (outcome == KEY_SIGNAL || outcome == KEY_EOF) {
        fprintf(stderr,
                "metamers experiment run: %s; %d of %d trials of sub-%s are saved in "
                "%s. Run the same command to resume.\n",
                outcome == KEY_EOF            ? "the terminal closed"
                : exp_term_signal() == SIGINT ? "stopped with Ctrl-C"
                : exp_term_signal() == SIGHUP ? "the terminal hung up (SIGHUP)"
                                              : "stopped by SIGTERM",
                saved, n, s->id, s->log_path);
    } else if (outcome < 0) {
        fprintf(stderr, "metamers experiment run: %s (%d of %d trials saved in %s)\n", err->msg,
                saved, n, s->log_path);
    } else if (saved < n) {
        printf("sub-%s: session ended at the %s gate (%d of %d trials; see participants.tsv)\n",
               s->id, strcmp(s->p.screening, "fail") == 0 ? "headphone-check" : "practice", saved,
               n);
    } else {
        int main_n = 0, main_ok = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(s->list.rows[i].phase, "main") == 0) main_n++, main_ok += s->log.correct[i];
        printf("sub-%s run %d complete: %d trials, main accuracy %.3f (%d/%d); log %s\n", s->id,
               s->a.run, n, main_n ? (double)main_ok / main_n : 0.0, main_ok, main_n, s->log_path);
    }
    if (s->log.repaired_bytes)
        fprintf(stderr,
                "metamers experiment run: note: a half-written last row (%ld bytes, "
                "from a crash) was removed from %s before resuming\n",
                s->log.repaired_bytes, s->log_path);
}

int experiment_cmd_run(int argc, char **argv) {
    Session s;
    memset(&s, 0, sizeof s);
    s.log.fd = -1;
    int rc = parse_args(argc, argv, &s.a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    rc = exp_session_open(&s, &err);
    if (rc == 0) rc = exp_session_count_start(&s, &err);
    if (rc == 0) rc = write_sidecar(&s, &err);
    int outcome = 0;
    if (rc == 0) {
        if (s.human)
            rc = exp_term_open(&err);
        else
            exp_term_catch_signals();
        if (rc == 0) outcome = exp_session_trials(&s, &err);
        exp_term_close();
    }
    Error aerr = {{0}};
    if (exp_audio_out_close(s.audio, &aerr) != 0 && rc == 0 && outcome >= 0)
        outcome = -1, err = aerr;
    s.audio = NULL;
    if (rc != 0)
        fprintf(stderr, "metamers experiment run: %s\n", err.msg);
    else
        report(&s, outcome, &err);
    exp_session_close(&s);
    if (rc != 0 || outcome == -1 || outcome == KEY_EOF) return 1;
    if (outcome == KEY_SIGNAL) return 128 + exp_term_signal();
    return 0;
}

int experiment_cmd(int argc, char **argv) {
    if (argc > 0 && strcmp(argv[0], "experiment") == 0) argc--, argv++;
    const char *action = argc > 0 ? argv[0] : "";
    if (strcmp(action, "build") == 0) return experiment_cmd_build(argc, argv);
    if (strcmp(action, "run") == 0) return experiment_cmd_run(argc, argv);
    if (strcmp(action, "devices") == 0) return experiment_cmd_devices(argc, argv);
    FILE *out = strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0 ? stdout : stderr;
    fprintf(out, "usage: metamers experiment build|run|devices [options]   (--help on each)\n"
                 "  build    counterbalanced trial lists from a design file\n"
                 "  run      one participant's session (resumes), or a simulated observer\n"
                 "  devices  list audio outputs\n");
    return out == stdout ? 0 : 2;
}
