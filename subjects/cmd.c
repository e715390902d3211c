/* `metamers subjects add|list|exclude`: the experimenter's view of
 * participants.tsv. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subjects.h"

static const char subjects_usage[] =
    "usage: metamers subjects add [--id ID] [--data-dir DIR]\n"
    "       metamers subjects list [--data-dir DIR]\n"
    "       metamers subjects exclude ID --reason TEXT [--undo] [--data-dir DIR]\n"
    "\n"
    "The participant registry of the data set (DIR/participants.tsv, BIDS).\n"
    "IDs are pseudonymous labels: `add` without --id takes the next number (01, 02,\n"
    "...), which is also the number of the participant's trial list. Never enter a\n"
    "name or anything else that identifies a person.\n"
    "\n"
    "  add        register a participant and print its ID\n"
    "  list       one line per participant: sessions, screening, practice, exclusion\n"
    "  exclude    mark a participant as excluded from analysis (--undo clears it)\n"
    "  --data-dir DIR  BIDS data set root (default: subjects)\n";

typedef struct {
    const char *data_dir, *id, *reason;
    int undo;
    int nargs;
    char **args;
} SubjectsArgs;

static int parse(int argc, char **argv, SubjectsArgs *a) {
    static const struct option opts[] = {
        {"data-dir", required_argument, 0, 'd'}, {"id", required_argument, 0, 'i'},
        {"reason", required_argument, 0, 'r'},   {"undo", no_argument, 0, 'u'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    *a = (SubjectsArgs){.data_dir = "subjects"};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data_dir = optarg; break;
        case 'i': a->id = optarg; break;
        case 'r': a->reason = optarg; break;
        case 'u': a->undo = 1; break;
        case 'h': fputs(subjects_usage, stdout); return 1;
        default:
            fprintf(stderr,
                    "metamers subjects: unknown or incomplete option '%s' (see "
                    "--help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    a->nargs = argc - optind;
    a->args = argv + optind;
    return 0;
}

static int cmd_add(const SubjectsArgs *a, Error *err) {
    if (a->nargs != 0) return error_set(err, "add takes no arguments (use --id ID)");
    char id[SUBJECT_ID_MAX];
    if (subjects_add(a->data_dir, a->id, NULL, id, err) != 0) return -1;
    printf("sub-%s\n", id);
    return 0;
}

static int cmd_list(const SubjectsArgs *a, Error *err) {
    if (a->nargs != 0) return error_set(err, "list takes no arguments");
    SubjectsTable t;
    if (subjects_load(a->data_dir, &t, err) != 0) return -1;
    printf("%-10s %-9s %-10s %-9s %-9s %s\n", "id", "sessions", "screening", "practice", "excluded",
           "observer");
    for (int r = 0; r < t.nrows; r++) {
        Participant p;
        subjects_row_get(&t, r, &p);
        char scr[32];
        snprintf(scr, sizeof scr, "%s%s%s%s", p.screening,
                 strcmp(p.screening_score, "n/a") ? " (" : "",
                 strcmp(p.screening_score, "n/a") ? p.screening_score : "",
                 strcmp(p.screening_score, "n/a") ? ")" : "");
        printf("sub-%-6s %-9d %-10s %-9s %-9s %s\n", p.id, p.sessions, scr, p.practice,
               p.excluded ? "yes" : "no", p.observer);
        if (p.excluded) printf("           reason: %s\n", p.exclusion_reason);
    }
    if (t.nrows == 0) printf("(no participants in %s yet)\n", a->data_dir);
    subjects_table_free(&t);
    return 0;
}

static int cmd_exclude(const SubjectsArgs *a, Error *err) {
    if (a->nargs != 1) return error_set(err, "exclude needs one participant ID");
    if (!a->undo && !a->reason) return error_set(err, "exclude needs --reason TEXT");
    if (subjects_set_excluded(a->data_dir, a->args[0], !a->undo, a->reason, err) != 0) return -1;
    char id[SUBJECT_ID_MAX];
    subject_id_normalize(a->args[0], id, err);
    printf("sub-%s %s\n", id, a->undo ? "included again" : "excluded");
    return 0;
}

int subjects_cmd(int argc, char **argv) {
    /* Accept argv[0] = "subjects" (then argv[1] is the action) or the action. */
    if (argc > 0 && strcmp(argv[0], "subjects") == 0) argc--, argv++;
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(subjects_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *action = argv[0];
    int (*fn)(const SubjectsArgs *, Error *) = NULL;
    if (strcmp(action, "add") == 0) fn = cmd_add;
    if (strcmp(action, "list") == 0) fn = cmd_list;
    if (strcmp(action, "exclude") == 0) fn = cmd_exclude;
    if (!fn) {
        fprintf(stderr, "metamers subjects: unknown action '%s' (add, list, exclude)\n", action);
        return 2;
    }
    SubjectsArgs a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    if (fn(&a, &err) != 0) {
        fprintf(stderr, "metamers subjects %s: %s\n", action, err.msg);
        return 1;
    }
    return 0;
}
