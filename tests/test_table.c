/* core: the CSV/TSV table reader and writer. The streaming reader's line
 * numbers are also covered by analysis_table_reader_lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "test.h"

static const char *write_tmp(TestCtx *t, const char *name, const char *text) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(t), name);
    Error err = {{0}};
    if (atomic_write_file(path, text, strlen(text), 0644, &err) != 0)
        test_fail(t, __FILE__, __LINE__, "%s", err.msg);
    return path;
}

TEST(core_table_load_quoting_lines_and_blanks) {
    /* BOM, CRLF, a quoted field across lines, an empty field, a line of only
     * "" (skipped), and no newline at the end. */
    const char *path = write_tmp(t, "a.csv",
                                 "\xEF\xBB\xBFid,text,n\r\n1,\"a, \"\"b\"\"\",\r\n\"\"\r\n"
                                 "2,\"two\nlines\", 3 \n3,last,x");
    Table tb;
    Error err = {{0}};
    REQUIRE(t, table_load(path, ',', 0, &tb, &err) == 0, "%s", err.msg);
    CHECK(t, tb.n_cols == 3 && tb.n_rows == 3, "%d cols, %d rows", tb.n_cols, tb.n_rows);
    CHECK(t, table_column(&tb, "id") == 0 && table_column(&tb, "n") == 2, "BOM kept out of 'id'");
    CHECK(t, table_column(&tb, "missing") < 0 && !*table_cell(&tb, 0, -1), "absent column");
    CHECK(t, !strcmp(tb.rows[0][1], "a, \"b\"") && !*tb.rows[0][2], "quotes: [%s] [%s]",
          tb.rows[0][1], tb.rows[0][2]);
    CHECK(t, !strcmp(tb.rows[1][1], "two\nlines") && !strcmp(tb.rows[1][2], "3"),
          "multi-line field and trimmed blanks: [%s] [%s]", tb.rows[1][1], tb.rows[1][2]);
    CHECK(t, !strcmp(tb.rows[2][1], "last"), "row without a final newline");
    CHECK(t, tb.lines[0] == 2 && tb.lines[1] == 4 && tb.lines[2] == 6, "lines %ld %ld %ld",
          tb.lines[0], tb.lines[1], tb.lines[2]);
    table_free(&tb);
}

TEST(core_table_errors_name_file_and_line) {
    struct {
        const char *text, *want;
        int flags;
    } cases[] = {
        {"a,b,c\n1,2,3\n4,5\n", "w.csv:3: 2 fields, the header has 3", 0},
        {"a,b\n1,2,3\n", "w.csv:2: 3 fields, the header has 2", 0},
        {"a,b\n1,2\n3,x\"y\n", "w.csv:3: malformed quoting", 0},
        {"a,b\n1,\"open\n2,3\n", "w.csv:2: unterminated quoted field", 0},
        {"", "w.csv: empty file (no header row)", 0},
        {"a,b\n1,\"x\"y\n", "w.csv:2: malformed quoting", TABLE_RAGGED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_tmp(t, "w.csv", cases[i].text);
        Table tb;
        Error err = {{0}};
        CHECK(t, table_load(path, ',', cases[i].flags, &tb, &err) != 0, "case %zu accepted", i);
        CHECK(t, strstr(err.msg, cases[i].want) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg,
              cases[i].want);
        CHECK(t, tb.n_rows == 0 && !tb.rows && !tb.path, "case %zu: table not left empty", i);
    }
}

TEST(core_table_ragged_pads_and_drops) {
    const char *path = write_tmp(t, "r.tsv", "a\tb\tc\n1\n2\t\t3\t4\n");
    Table tb;
    Error err = {{0}};
    REQUIRE(t, table_load(path, '\t', TABLE_RAGGED, &tb, &err) == 0, "%s", err.msg);
    REQUIRE(t, tb.n_rows == 2, "%d rows", tb.n_rows);
    CHECK(t, !strcmp(tb.rows[0][0], "1") && !*tb.rows[0][1] && !*tb.rows[0][2], "padded");
    CHECK(t, !*tb.rows[1][1] && !strcmp(tb.rows[1][2], "3"), "tab-separated empty field kept");
    table_free(&tb);
}

static int stop_at_two(void *ctx, const TableRow *row, bool header, Error *err) {
    int *seen = ctx;
    if (header) return 0;
    ++*seen;
    return strcmp(row->fields[0], "2") ? 0 : error_set(err, "no twos");
}

TEST(core_table_read_callback_error_gets_file_and_line) {
    const char *path = write_tmp(t, "s.csv", "x\n1\n\n2\n3\n");
    int seen = 0;
    Error err = {{0}};
    CHECK(t, table_read(path, ',', stop_at_two, &seen, &err) != 0, "error not passed on");
    CHECK(t, strstr(err.msg, "s.csv:4: no twos") != NULL, "%s", err.msg);
    CHECK(t, seen == 2, "stopped after %d records", seen);
}

TEST(core_table_write_field_round_trip) {
    const char *fields[] = {"plain", "a,b", "say \"hi\"", "two\nlines", " lead", "trail\t",
                            "", "cr\rhere"};
    enum { N = sizeof fields / sizeof *fields };
    char path[700];
    snprintf(path, sizeof path, "%s/w.csv", test_tmpdir(t));
    AtomicFile af;
    Error err = {{0}};
    REQUIRE(t, atomic_open(&af, path, 0644, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) fprintf(af.f, "c%d%s", i, i + 1 < N ? "," : "\n");
    for (int i = 0; i < N; i++) {
        table_write_field(af.f, fields[i]);
        fputc(i + 1 < N ? ',' : '\n', af.f);
    }
    REQUIRE(t, atomic_commit(&af, &err) == 0, "%s", err.msg);
    Table tb;
    REQUIRE(t, table_load(path, ',', 0, &tb, &err) == 0, "%s", err.msg);
    REQUIRE(t, tb.n_rows == 1 && tb.n_cols == N, "%d rows, %d cols", tb.n_rows, tb.n_cols);
    for (int i = 0; i < N; i++)
        CHECK(t, !strcmp(tb.rows[0][i], fields[i]), "field %d: [%s] vs [%s]", i, tb.rows[0][i],
              fields[i]);
    table_free(&tb);
}
