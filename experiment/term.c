/* The participant's terminal: raw keys, full-screen drawing, and getting the
 * terminal back exactly as it was on every way out.
 *
 * - Raw mode without echo or line buffering, but ISIG kept so Ctrl-C still
 *   ends the session (as SIGINT); Ctrl-Z and Ctrl-\ are disabled, so a
 *   participant cannot suspend the session into a shell or dump core.
 * - The previous termios is restored by exp_term_close (normal end), an atexit
 *   handler, and inside the SIGINT/SIGTERM/SIGHUP handlers themselves
 *   (tcsetattr and write are async-signal-safe), and before a crash signal
 *   is re-raised. The handlers only record the signal; the session loop
 *   notices it between keys and stops without losing the logged trials.
 * - Plain ANSI sequences (alternate screen, cursor home, clear to end of
 *   line), which every terminal emulator and SSH client understands. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"

static struct termios g_saved;
static volatile sig_atomic_t g_raw, g_signal, g_resize;
/* The last frame drawn: an unchanged screen is not sent again, which keeps
 * an SSH session quiet while the participant thinks. */
static char g_last[24 * 160 + 64];
static size_t g_last_len;
static int g_atexit_done, g_handlers;
static const int CATCH[] = {SIGINT, SIGTERM, SIGHUP};
static const int FATAL[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static struct sigaction g_old_catch[3], g_old_fatal[5], g_old_winch;

static const char LEAVE[] = "\033[0m\033[?25h\033[?1049l";

static void restore_async(void) {
    if (!g_raw) return;
    g_raw = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
    ssize_t w = write(STDOUT_FILENO, LEAVE, sizeof LEAVE - 1);
    (void)w;
}

static void on_signal(int sig) {
    restore_async();
    g_signal = sig;
}

static void on_fatal(int sig) {
    restore_async();
    raise(sig); /* SA_RESETHAND: the default action now runs */
}

static void on_winch(int sig) {
    (void)sig;
    g_resize = 1;
}

void exp_term_catch_signals(void) {
    if (g_handlers) return;
    g_handlers = 1;
    g_signal = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns at once */
    for (int i = 0; i < 3; i++) sigaction(CATCH[i], &sa, &g_old_catch[i]);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    for (int i = 0; i < 5; i++) sigaction(FATAL[i], &sa, &g_old_fatal[i]);
    sa.sa_handler = on_winch;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, &g_old_winch);
}

void exp_term_release_signals(void) {
    if (!g_handlers) return;
    g_handlers = 0;
    for (int i = 0; i < 3; i++) sigaction(CATCH[i], &g_old_catch[i], NULL);
    for (int i = 0; i < 5; i++) sigaction(FATAL[i], &g_old_fatal[i], NULL);
    sigaction(SIGWINCH, &g_old_winch, NULL);
}

int exp_term_signal(void) { return g_signal; }

static int write_all(const char *p, size_t n) {
    while (n) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR) {
            if (g_signal) return -1;
            continue;
        }
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

static void at_exit(void) { exp_term_close(); }

int exp_term_open(Error *err) {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return error_set(err, "a session needs a terminal (stdin and stdout); for a dry run "
                              "without one use --observer oracle");
    if (tcgetattr(STDIN_FILENO, &g_saved) != 0)
        return error_set(err, "cannot read the terminal settings: %s", strerror(errno));
    struct termios raw = g_saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHONL | IEXTEN);
    raw.c_iflag &= ~(tcflag_t)(ICRNL | INLCR | IXON | ISTRIP);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    raw.c_cc[VSUSP] = _POSIX_VDISABLE; /* no Ctrl-Z into a shell mid-session */
    raw.c_cc[VQUIT] = _POSIX_VDISABLE;
    exp_term_catch_signals();
    if (!g_atexit_done) atexit(at_exit), g_atexit_done = 1;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) {
        exp_term_release_signals();
        return error_set(err, "cannot set the terminal to raw mode: %s", strerror(errno));
    }
    g_raw = 1;
    g_last_len = 0;
    static const char ENTER[] = "\033[?1049h\033[H\033[2J";
    write_all(ENTER, sizeof ENTER - 1);
    return 0;
}

void exp_term_flush_input(void) {
    if (g_raw) tcflush(STDIN_FILENO, TCIFLUSH);
}

void exp_term_close(void) {
    if (g_raw) {
        write_all(LEAVE, sizeof LEAVE - 1);
        tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
        g_raw = 0;
    }
    exp_term_release_signals();
}

static int read_byte(int timeout_ms, unsigned char *c) {
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -1;
    if (r == 0) return 0;
    ssize_t n = read(STDIN_FILENO, c, 1);
    if (n == 1) return 1;
    return (n < 0 && errno == EINTR) ? 0 : -1;
}

/* After ESC: arrows are ESC [ A / ESC O A; anything else is swallowed up to
 * its final byte (0x40..0x7e) so stray sequences never reach the answer. */
static int escape(void) {
    unsigned char c;
    if (read_byte(50, &c) != 1) return 27;
    if (c != '[' && c != 'O') return KEY_TIMEOUT;
    for (int i = 0; i < 16; i++) {
        if (read_byte(50, &c) != 1) return KEY_TIMEOUT;
        if (c >= 0x40 && c <= 0x7e) return c == 'A' ? KEY_UP : c == 'B' ? KEY_DOWN : KEY_TIMEOUT;
    }
    return KEY_TIMEOUT;
}

int exp_term_key(int timeout_ms) {
    if (g_signal) return KEY_SIGNAL;
    if (g_resize) return g_resize = 0, g_last_len = 0, KEY_RESIZE;
    unsigned char c;
    int r = read_byte(timeout_ms, &c);
    if (g_signal) return KEY_SIGNAL;
    if (r < 0) return KEY_EOF; /* terminal gone (SSH dropped) */
    if (r == 0) return g_resize ? (g_resize = 0, g_last_len = 0, KEY_RESIZE) : KEY_TIMEOUT;
    switch (c) {
    case '\r':
    case '\n': return KEY_ENTER;
    case 127:
    case 8: return KEY_BACKSPACE;
    case '\t': return KEY_TAB;
    case 18: return KEY_CTRL_R;
    case 27: return escape();
    default: return c;
    }
}

void exp_term_draw(char lines[][128], int n, int cursor_row, int cursor_col) {
    if (g_signal || !g_raw) return;
    struct winsize ws;
    int rows = 24, cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        rows = ws.ws_row, cols = ws.ws_col;
    if (rows > 24) rows = 24;
    char buf[24 * 160 + 64];
    size_t len = (size_t)snprintf(buf, sizeof buf, "\033[?25l\033[H");
    for (int i = 0; i < rows; i++) {
        const char *s = i < n ? lines[i] : "";
        int w = (int)strlen(s);
        if (w > cols - 1) w = cols - 1; /* never wrap: the layout stays put */
        if (w > 127) w = 127;
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%.*s\033[K%s", w, s,
                                i + 1 < rows ? "\r\n" : "");
    }
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\033[J");
    if (cursor_row >= 0 && cursor_row < rows)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "\033[%d;%dH\033[?25h", cursor_row + 1,
                                cursor_col + 1);
    if (len == g_last_len && memcmp(buf, g_last, len) == 0) return;
    if (write_all(buf, len) == 0 && len <= sizeof g_last)
        memcpy(g_last, buf, len), g_last_len = len;
}
