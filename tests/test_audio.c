/* Tests for stimuli/audio.c: WAV/FLAC/OGG reading, mono mixing, resampling
 * quality, one-line errors naming the file, atomic writes on a full disk. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../stimuli/stimuli.h"
#include "test.h"

static const double PI = 3.14159265358979323846;

static const char *tmp_file(TestCtx *t, const char *name) {
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(t), name);
    return p;
}

/* Deterministic pseudo-random values in [-amp, amp] (no libc rand state). */
static void fill_noise(float *x, int64_t n, double amp, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(amp * ((seed >> 8) / 8388608.0 - 1.0));
    }
}

static void fill_sine(float *x, int64_t n, double freq, int rate, double amp) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * PI * freq * i / rate));
}

/* Writes a file with libsndfile directly, bypassing the code under test, so
 * the reader is tested on files it did not produce (and on invalid ones). */
static int write_sf(const char *path, int format, int channels, int rate, const float *x,
                    int64_t frames) {
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = channels;
    info.format = format;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) return -1;
    sf_count_t w = frames ? sf_writef_float(sf, x, frames) : 0;
    return (sf_close(sf) == 0 && w == frames) ? 0 : -1;
}

static char *slurp(const char *path, size_t *size) {
    char *data = NULL;
    Error err = {{0}};
    if (read_file(path, &data, size, &err) != 0) return NULL;
    return data;
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ round trips */

TEST(audio_float32_round_trip_exact) {
    enum { N = 5000 };
    float x[N];
    fill_noise(x, N, 1.5, 1); /* float32 keeps values beyond [-1, 1] */
    const char *path = tmp_file(t, "f.wav");
    Error err = {{0}};
    int64_t clipped = -1;
    REQUIRE(t, audio_write_wav(path, x, N, 1, 20000, AUDIO_FLOAT32, &clipped, &err) == 0,
            "write: %s", err.msg);
    CHECK(t, clipped == 0, "float32 clipped %lld", (long long)clipped);
    Audio a;
    REQUIRE(t, audio_read(path, 0, N, &a, &err) == 0, "read: %s", err.msg);
    CHECK(t, a.n == N && a.rate == 20000, "n %lld rate %d", (long long)a.n, a.rate);
    CHECK(t, memcmp(a.samples, x, sizeof x) == 0, "samples differ");
    audio_free(&a);
    CHECK(t, a.samples == NULL && a.n == 0, "audio_free zeroes");
    audio_free(&a); /* twice is harmless */
}

TEST(audio_write_is_deterministic) {
    enum { N = 1000 };
    float x[N];
    fill_noise(x, N, 0.5, 2);
    const char *p1 = tmp_file(t, "a.wav"), *p2 = tmp_file(t, "b.wav");
    Error err = {{0}};
    REQUIRE(t, audio_write_wav(p1, x, N, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s",
            err.msg);
    REQUIRE(t, audio_write_wav(p2, x, N, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s",
            err.msg);
    size_t n1 = 0, n2 = 0;
    char *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    REQUIRE(t, b1 && b2, "read back");
    CHECK(t, n1 == n2 && memcmp(b1, b2, n1) == 0, "same samples, different bytes");
    CHECK(t, !memmem(b1, n1, "PEAK", 4), "timestamped PEAK chunk present");
    CHECK(t, n1 < N * 4 + 100, "file size %zu", n1);
    free(b1);
    free(b2);
}

TEST(audio_pcm16_round_trip_and_clipping) {
    enum { N = 4000 };
    float x[N];
    fill_noise(x, N, 1.0, 3);
    x[0] = 1.0f, x[1] = -1.0f, x[2] = 0.5f, x[3] = 0.0f;
    const char *path = tmp_file(t, "p.wav");
    Error err = {{0}};
    int64_t clipped = -1;
    REQUIRE(t, audio_write_wav(path, x, N, 1, 16000, AUDIO_PCM16, &clipped, &err) == 0, "%s",
            err.msg);
    CHECK(t, clipped == 0, "clipped %lld in [-1, 1]", (long long)clipped);
    Audio a;
    REQUIRE(t, audio_read(path, 0, 0, &a, &err) == 0, "%s", err.msg);
    REQUIRE(t, a.n == N, "n %lld", (long long)a.n);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)a.samples[i] - x[i]));
    CHECK(t, worst <= 1.0 / 32768 + 1e-9, "max error %.3g > 1/32768", worst);
    CHECK(t, a.samples[1] == -1.0f && a.samples[2] == 0.5f && a.samples[3] == 0.0f,
          "exact values: %g %g %g", a.samples[1], a.samples[2], a.samples[3]);

    /* Re-saving a PCM16 clip must not change it (scale matches the reader). */
    const char *again = tmp_file(t, "p2.wav");
    REQUIRE(t, audio_write_wav(again, a.samples, a.n, 1, 16000, AUDIO_PCM16, NULL, &err) == 0,
            "%s", err.msg);
    size_t n1 = 0, n2 = 0;
    char *b1 = slurp(path, &n1), *b2 = slurp(again, &n2);
    CHECK(t, b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "PCM16 re-save changed bytes");
    free(b1);
    free(b2);
    audio_free(&a);

    const float loud[5] = {1.5f, -2.0f, 1.0f, -1.0f, 0.25f};
    REQUIRE(t, audio_write_wav(path, loud, 5, 1, 16000, AUDIO_PCM16, &clipped, &err) == 0,
            "%s", err.msg);
    CHECK(t, clipped == 2, "clipped %lld, expected 2", (long long)clipped);
    REQUIRE(t, audio_read(path, 0, 5, &a, &err) == 0, "%s", err.msg);
    CHECK(t, a.samples[0] == 32767.0f / 32768 && a.samples[1] == -1.0f,
          "clipped to %g %g", a.samples[0], a.samples[1]);
    audio_free(&a);
}

TEST(audio_stereo_mixed_to_mono_mean) {
    enum { N = 3000 };
    float x[2 * N];
    fill_noise(x, 2 * N, 0.9, 4);
    const char *path = tmp_file(t, "st.wav");
    Error err = {{0}};
    REQUIRE(t, audio_write_wav(path, x, N, 2, 22050, AUDIO_FLOAT32, NULL, &err) == 0, "%s",
            err.msg);
    Audio a;
    REQUIRE(t, audio_read(path, 0, N, &a, &err) == 0, "%s", err.msg);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (a.samples[i] != (float)(((double)x[2 * i] + x[2 * i + 1]) / 2)) bad++;
    CHECK(t, bad == 0, "%d frames are not the channel mean", bad);
    audio_free(&a);
}

TEST(audio_reads_flac_and_ogg) {
    enum { N = 8000, RATE = 16000 };
    float x[N];
    fill_sine(x, N, 440, RATE, 0.5);
    Error err = {{0}};
    Audio a;

    const char *flac = tmp_file(t, "s.flac");
    REQUIRE(t, write_sf(flac, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1, RATE, x, N) == 0,
            "libsndfile cannot write FLAC");
    REQUIRE(t, audio_read(flac, 0, N, &a, &err) == 0, "%s", err.msg);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)a.samples[i] - x[i]));
    CHECK(t, a.rate == RATE && worst <= 1.0 / 32768, "FLAC: rate %d, max error %.3g", a.rate,
          worst);
    audio_free(&a);

    const char *ogg = tmp_file(t, "s.ogg");
    REQUIRE(t, write_sf(ogg, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 1, RATE, x, N) == 0,
            "libsndfile cannot write OGG");
    REQUIRE(t, audio_read(ogg, 0, N, &a, &err) == 0, "%s", err.msg);
    /* Vorbis is lossy: only ask for the same tone, same length. */
    CHECK_REL_L2(t, a.samples, x, N, 0.1, "OGG sine");
    audio_free(&a);
}

/* ------------------------------------------------------------- resampling */

/* Least-squares fit of y ~ s*sin(wt) + c*cos(wt) over [lo, hi). */
static void fit_sine(const float *y, int64_t lo, int64_t hi, double freq, int rate, double *s,
                     double *c) {
    double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
    for (int64_t i = lo; i < hi; i++) {
        double a = sin(2 * PI * freq * i / rate), b = cos(2 * PI * freq * i / rate);
        ss += a * a, cc += b * b, sc += a * b, ys += y[i] * a, yc += y[i] * b;
    }
    double det = ss * cc - sc * sc;
    *s = (ys * cc - yc * sc) / det;
    *c = (yc * ss - ys * sc) / det;
}

TEST(audio_resample_sine_amplitude_and_length) {
    enum { N = 44100 };
    static float x[N];
    fill_sine(x, N, 1000, 44100, 0.5);
    Error err = {{0}};
    float *y;
    int64_t n;
    REQUIRE(t, audio_resample(x, N, 44100, 20000, &y, &n, &err) == 0, "%s", err.msg);
    CHECK(t, n == 20000, "length %lld", (long long)n);
    double s, c;
    fit_sine(y, 0, n, 1000, 20000, &s, &c);
    /* s carries the amplitude, c a time shift (soxr must remove its delay). */
    CHECK(t, fabs(s - 0.5) / 0.5 < 1e-3, "amplitude %.6f, expected 0.5", s);
    CHECK(t, fabs(c) / 0.5 < 1e-3, "phase term %.3g: output delayed", c);
    float *fit = alloc_floats((size_t)n);
    for (int64_t i = 0; i < n; i++)
        fit[i] = (float)(s * sin(2 * PI * 1000 * i / 20000) + c * cos(2 * PI * 1000 * i / 20000));
    CHECK_REL_L2(t, y, fit, (size_t)n, 1e-3, "resampled vs fitted sine");
    free(fit);
    free(y);
}

TEST(audio_resample_removes_alias_tone) {
    enum { N = 44100 };
    static float x[N];
    fill_sine(x, N, 15000, 44100, 0.5); /* above the 10 kHz Nyquist of 20 kHz */
    /* 10 ms raised-cosine ramps: an abrupt onset is broadband and would leak
     * below 10 kHz legitimately (-57 dB), hiding what the filter does. */
    for (int i = 0; i < 441; i++) {
        float g = (float)(0.5 - 0.5 * cos(PI * i / 441));
        x[i] *= g, x[N - 1 - i] *= g;
    }
    Error err = {{0}};
    float *y;
    int64_t n;
    REQUIRE(t, audio_resample(x, N, 44100, 20000, &y, &n, &err) == 0, "%s", err.msg);
    double db = 20 * log10(audio_rms(y, n) / audio_rms(x, N));
    CHECK(t, db < -90, "15 kHz tone only %.1f dB down", db);
    free(y);
}

TEST(audio_resample_lengths_and_errors) {
    static float x[1000];
    fill_noise(x, 1000, 0.5, 5);
    Error err = {{0}};
    float *y;
    int64_t n;
    const int64_t lens[] = {0, 1, 2, 3, 99, 1000};
    for (int k = 0; k < 6; k++) {
        int64_t want = (int64_t)floor(lens[k] * 20000.0 / 44100 + 0.5);
        REQUIRE(t, audio_resample(x, lens[k], 44100, 20000, &y, &n, &err) == 0, "%s", err.msg);
        CHECK(t, n == want && y, "n=%lld: got %lld, expected %lld", (long long)lens[k],
              (long long)n, (long long)want);
        free(y);
        want = (int64_t)floor(lens[k] * 48000.0 / 16000 + 0.5);
        REQUIRE(t, audio_resample(x, lens[k], 16000, 48000, &y, &n, &err) == 0, "%s", err.msg);
        CHECK(t, n == want, "up n=%lld: got %lld", (long long)lens[k], (long long)n);
        free(y);
    }
    REQUIRE(t, audio_resample(x, 1000, 20000, 20000, &y, &n, &err) == 0, "%s", err.msg);
    CHECK(t, n == 1000 && memcmp(x, y, sizeof x) == 0, "equal rates must copy");
    free(y);
    CHECK(t, audio_resample(x, 1000, 0, 20000, &y, &n, &err) == -1, "rate 0 accepted");
    CHECK(t, audio_resample(x, 1000, 20000, -5, &y, &n, &err) == -1, "rate -5 accepted");
}

TEST(audio_read_resamples_to_target_rate) {
    enum { N = 44100 };
    static float x[N];
    fill_sine(x, N, 1000, 44100, 0.25);
    const char *path = tmp_file(t, "cd.wav");
    Error err = {{0}};
    REQUIRE(t, write_sf(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 44100, x, N) == 0, "write");
    Audio a;
    REQUIRE(t, audio_read(path, 20000, 20000, &a, &err) == 0, "%s", err.msg);
    CHECK(t, a.rate == 20000 && a.n == 20000, "rate %d n %lld", a.rate, (long long)a.n);
    CHECK(t, fabs(audio_rms(a.samples, a.n) - 0.25 / sqrt(2)) < 1e-3, "rms %.5f",
          audio_rms(a.samples, a.n));
    audio_free(&a);
}

/* ----------------------------------------------------------------- errors */

/* Every read error is -1, a zeroed Audio and a message naming the file. */
static void expect_read_error(TestCtx *t, const char *path, int rate, int64_t expect,
                              const char *must_contain) {
    Error err = {{0}};
    Audio a = {(float *)1, 7, 7};
    int rc = audio_read(path, rate, expect, &a, &err);
    CHECK(t, rc == -1, "%s: read succeeded", path);
    CHECK(t, a.samples == NULL && a.n == 0, "%s: output not zeroed", path);
    CHECK(t, strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    CHECK(t, strstr(err.msg, must_contain) != NULL, "message lacks '%s': %s", must_contain,
          err.msg);
    CHECK(t, !strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
}

TEST(audio_read_errors_name_the_file) {
    Error err = {{0}};
    expect_read_error(t, tmp_file(t, "missing.wav"), 0, 0, "No such file");

    const char *text = tmp_file(t, "notes.wav");
    REQUIRE(t, atomic_write_file(text, "hello, not audio\n", 17, 0644, &err) == 0, "%s",
            err.msg);
    expect_read_error(t, text, 0, 0, "not a readable audio file");

    const char *empty = tmp_file(t, "empty.wav");
    REQUIRE(t, write_sf(empty, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 20000, NULL, 0) == 0,
            "write empty");
    expect_read_error(t, empty, 0, 0, "empty");
    const char *zero = tmp_file(t, "zero.wav");
    REQUIRE(t, atomic_write_file(zero, "", 0, 0644, &err) == 0, "%s", err.msg);
    expect_read_error(t, zero, 0, 0, "empty file (0 bytes)");

    float x[300];
    fill_noise(x, 300, 0.5, 6);
    x[123] = NAN;
    const char *nan = tmp_file(t, "nan.wav");
    REQUIRE(t, write_sf(nan, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 1000, x, 300) == 0, "write");
    expect_read_error(t, nan, 20000, 0, "sample 123 (0.123000 s) is NaN");

    x[123] = 0;
    x[2 * 50 + 1] = -INFINITY; /* as stereo: frame 50, second channel */
    const char *inf = tmp_file(t, "inf.wav");
    REQUIRE(t, write_sf(inf, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 1000, x, 150) == 0, "write");
    expect_read_error(t, inf, 0, 0, "sample 50 (channel 2, 0.050000 s) is -Inf");
}

TEST(audio_read_wrong_length) {
    static float x[39000];
    fill_noise(x, 39000, 0.5, 7);
    const char *path = tmp_file(t, "x.wav");
    Error err = {{0}};
    REQUIRE(t, audio_write_wav(path, x, 39000, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s",
            err.msg);
    expect_read_error(t, path, 0, 40000, "39000 samples at 20000 Hz, expected 40000 (2.000 s)");
    /* Checked after resampling: 39000 at 20 kHz is 78000 at 40 kHz. */
    Audio a;
    CHECK(t, audio_read(path, 40000, 78000, &a, &err) == 0, "%s", err.msg);
    audio_free(&a);
}

/* ---------------------------------------------------------- atomic writes */

TEST(audio_write_rejects_bad_input_without_creating_files) {
    float x[10] = {0};
    Error err = {{0}};
    const char *dir = test_tmpdir(t);
    const char *path = tmp_file(t, "bad.wav");
    x[7] = NAN;
    CHECK(t, audio_write_wav(path, x, 5, 2, 20000, AUDIO_PCM16, NULL, &err) == -1,
          "NaN written");
    CHECK(t, strstr(err.msg, path) && strstr(err.msg, "sample 3 (channel 2"), "%s", err.msg);
    x[7] = 0;
    CHECK(t, audio_write_wav(path, x, 10, 0, 20000, AUDIO_FLOAT32, NULL, &err) == -1,
          "0 channels");
    CHECK(t, audio_write_wav(path, x, 10, 1, 0, AUDIO_FLOAT32, NULL, &err) == -1, "rate 0");
    CHECK(t, count_dir_entries(dir) == 0, "files left in %s", dir);

    const char *nodir = tmp_file(t, "no/such/dir/x.wav");
    CHECK(t, audio_write_wav(nodir, x, 10, 1, 20000, AUDIO_FLOAT32, NULL, &err) == -1,
          "wrote into a missing directory");
    CHECK(t, strstr(err.msg, nodir) != NULL, "message does not name the file: %s", err.msg);
}

/* Writes 1 s of audio over `path` in a child whose file size limit is far
 * below that, as a full disk would: the write must fail cleanly. Exit code
 * 0 means "failed with a message naming the file". */
static int write_with_size_limit(const char *path, rlim_t limit) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        static float x[44100];
        fill_sine(x, 44100, 440, 44100, 0.5);
        Error err = {{0}};
        int rc = audio_write_wav(path, x, 44100, 1, 44100, AUDIO_FLOAT32, NULL, &err);
        if (rc == 0) _exit(1);
        _exit(strstr(err.msg, path) ? 0 : 2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(audio_write_full_disk_keeps_old_file) {
    float old[2000];
    fill_noise(old, 2000, 0.5, 8);
    const char *path = tmp_file(t, "keep.wav");
    Error err = {{0}};
    REQUIRE(t, audio_write_wav(path, old, 2000, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0,
            "%s", err.msg);
    size_t n0 = 0, n1 = 0;
    char *before = slurp(path, &n0);
    REQUIRE(t, before, "read old file");

    int code = write_with_size_limit(path, 64 * 1024);
    CHECK(t, code == 0, "child exit %d (1: write succeeded, 2: message lacks path)", code);

    char *after = slurp(path, &n1);
    CHECK(t, after && n1 == n0 && memcmp(before, after, n0) == 0, "old file changed");
    CHECK(t, count_dir_entries(test_tmpdir(t)) == 1, "temp file left behind");
    Audio a;
    CHECK(t, audio_read(path, 0, 2000, &a, &err) == 0, "old file unreadable: %s", err.msg);
    audio_free(&a);
    free(before);
    free(after);
}

/* Tries to overwrite path in a directory it may not write; as root, drops to
 * nobody in a child first, since root ignores permissions. 0 = failed cleanly. */
static int write_denied(const char *path) {
    float y[100] = {0};
    Error err = {{0}};
    if (geteuid() != 0) {
        int rc = audio_write_wav(path, y, 100, 1, 20000, AUDIO_FLOAT32, NULL, &err);
        return rc == -1 && strstr(err.msg, path) ? 0 : 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        int rc = audio_write_wav(path, y, 100, 1, 20000, AUDIO_FLOAT32, NULL, &err);
        _exit(rc == -1 && strstr(err.msg, path) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

TEST(audio_write_read_only_dir_keeps_old_file) {
    float x[100];
    fill_noise(x, 100, 0.5, 9);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ro", test_tmpdir(t));
    Error err = {{0}};
    REQUIRE(t, make_dirs(dir, 0755, &err) == 0, "%s", err.msg);
    char path[1100];
    snprintf(path, sizeof path, "%s/keep.wav", dir);
    REQUIRE(t, audio_write_wav(path, x, 100, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s",
            err.msg);
    REQUIRE(t, chmod(test_tmpdir(t), 0755) == 0 && chmod(dir, 0555) == 0, "chmod");
    int rc = write_denied(path);
    chmod(dir, 0755); /* so the runner can remove it */
    CHECK(t, rc == 0, "write into a read-only directory: child status %d", rc);
    Audio a;
    REQUIRE(t, audio_read(path, 0, 100, &a, &err) == 0, "%s", err.msg);
    CHECK(t, memcmp(a.samples, x, sizeof x) == 0, "old file changed");
    audio_free(&a);
}

/* ----------------------------------------------------------------- levels */

TEST(audio_rms_and_scaling) {
    float x[4] = {1, -1, 1, -1};
    CHECK(t, audio_rms(x, 4) == 1.0, "rms %g", audio_rms(x, 4));
    CHECK(t, audio_rms(x, 0) == 0.0, "empty rms");
    static float y[20000];
    fill_noise(y, 20000, 0.3, 10);
    audio_scale_to_rms(y, 20000, 0.05);
    CHECK(t, fabs(audio_rms(y, 20000) - 0.05) < 1e-6, "rms after scaling %.8f",
          audio_rms(y, 20000));
    float z[8] = {0};
    audio_scale_to_rms(z, 8, 0.1);
    int nonzero = 0;
    for (int i = 0; i < 8; i++) nonzero += z[i] != 0;
    CHECK(t, nonzero == 0, "silence changed");
}
