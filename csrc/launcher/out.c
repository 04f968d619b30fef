/*
 * out.c: output byte for byte as the Python side writes it: JSON strings as json.dumps
 * (ensure_ascii), Python's indent=2 layout, errors as commands.report and log.write
 * (--log FILE, --log-format text|json) do.
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void buf_add(struct buf *b, const char *s, size_t n)
{
    size_t cap;
    char *p;

    if (b->oom)
        return;
    if (n > (size_t) 1 << 30 || b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1 && cap < (size_t) 1 << 31)
            cap *= 2;
        p = cap >= b->len + n + 1 ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(tmp))
        b->oom = 1; /* only short numbers and names are formatted */
    else
        buf_add(b, tmp, (size_t) n);
}

/* Decode one code point at s[0..n): its length, *cp; an invalid sequence's maximal
 * subpart (Unicode's "replacement" practice, which bytes.decode follows) as U+FFFD. */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf, v;
    size_t need, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1, v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, v = c & 0x0f;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, v = c & 0x07;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf)) {
            *cp = 0xfffd;
            return i;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return need + 1;
}

static void buf_cp(struct buf *b, unsigned cp)
{
    char out[4];
    size_t n;

    if (cp < 0x80) {
        out[0] = (char) cp, n = 1;
    } else if (cp < 0x800) {
        out[0] = (char) (0xc0 | cp >> 6), out[1] = (char) (0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char) (0xe0 | cp >> 12), out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f)), n = 3;
    } else {
        out[0] = (char) (0xf0 | cp >> 18), out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3f)), out[3] = (char) (0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_add(b, out, n);
}

void buf_utf8(struct buf *b, const char *s, size_t n)
{
    unsigned cp;
    size_t i = 0;

    while (i < n) {
        i += utf8_next((const unsigned char *) s + i, n - i, &cp);
        buf_cp(b, cp);
    }
}

size_t utf8_len(const char *s)
{
    size_t i = 0, n = strlen(s), count = 0;
    unsigned cp;

    while (i < n) {
        i += utf8_next((const unsigned char *) s + i, n - i, &cp);
        count++;
    }
    return count;
}

static const char *short_escape(unsigned cp)
{
    switch (cp) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    }
    return NULL;
}

void buf_json_str(struct buf *b, const char *s, size_t n)
{
    const char *esc;
    unsigned cp;
    size_t i = 0;

    buf_add(b, "\"", 1);
    while (i < n) {
        i += utf8_next((const unsigned char *) s + i, n - i, &cp);
        if ((esc = short_escape(cp))) {
            buf_str(b, esc);
        } else if (cp >= 0x20 && cp < 0x7f) {
            buf_cp(b, cp);
        } else if (cp < 0x10000) {
            buf_fmt(b, "\\u%04x", cp);
        } else {
            cp -= 0x10000;
            buf_fmt(b, "\\u%04x\\u%04x", 0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
        }
    }
    buf_add(b, "\"", 1);
}

/* str.isprintable(): exact for Latin-1; beyond it, the separators, format characters,
 * surrogates, private use and noncharacters below are not printable, every other code point
 * is (unassigned ones too, which Python says are not: docs/fastpath.md). */
static int printable(unsigned cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad)
        return 0;
    return !((cp >= 0x600 && cp <= 0x605) || cp == 0x61c || cp == 0x6dd || cp == 0x70f ||
             cp == 0x1680 || cp == 0x180e || (cp >= 0x2000 && cp <= 0x200f) ||
             (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 ||
             (cp >= 0xd800 && cp <= 0xf8ff) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
             (cp & 0xfffe) == 0xfffe || (cp >= 0xe0000 && cp <= 0xe0fff) || cp >= 0xf0000);
}

void buf_go_quote(struct buf *b, const char *s, size_t n)
{
    unsigned cp;
    size_t i = 0;

    buf_add(b, "\"", 1);
    while (i < n) {
        i += utf8_next((const unsigned char *) s + i, n - i, &cp);
        if (cp == 7)
            buf_str(b, "\\a");
        else if (cp == 11)
            buf_str(b, "\\v");
        else if (short_escape(cp))
            buf_str(b, short_escape(cp));
        else if (printable(cp))
            buf_cp(b, cp);
        else if (cp < 0x80)
            buf_fmt(b, "\\x%02x", cp);
        else if (cp < 0x10000)
            buf_fmt(b, "\\u%04x", cp);
        else
            buf_fmt(b, "\\U%08x", cp);
    }
    buf_add(b, "\"", 1);
}

static void pad(struct buf *b, int level)
{
    int i;

    buf_add(b, "\n", 1);
    for (i = 0; i < level; i++)
        buf_add(b, "  ", 2);
}

void buf_reindent(struct buf *b, const char *p, int level)
{
    int in_str = 0;

    for (; *p; p++) {
        if (in_str) {
            buf_add(b, p, 1);
            if (*p == '\\' && p[1])
                buf_add(b, ++p, 1);
            else if (*p == '"')
                in_str = 0;
        } else if ((*p == '{' && p[1] == '}') || (*p == '[' && p[1] == ']')) {
            buf_add(b, p, 2);
            p++;
        } else if (*p == '{' || *p == '[') {
            buf_add(b, p, 1);
            pad(b, ++level);
        } else if (*p == '}' || *p == ']') {
            pad(b, --level);
            buf_add(b, p, 1);
        } else if (*p == ',') {
            buf_add(b, ",", 1);
            pad(b, level);
            if (p[1] == ' ')
                p++;
        } else {
            if (*p == '"')
                in_str = 1;
            buf_add(b, p, 1);
        }
    }
}

void buf_compact(struct buf *b, const char *p)
{
    int in_str = 0;

    for (; *p; p++) {
        if (in_str) {
            buf_add(b, p, 1);
            if (*p == '\\' && p[1])
                buf_add(b, ++p, 1);
            else if (*p == '"')
                in_str = 0;
        } else if (*p != ' ') {
            in_str = *p == '"';
            buf_add(b, p, 1);
        }
    }
}

int write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

static const char *log_path;
static int log_json, log_debug;

void log_configure(const char *path, int json, int debug)
{
    log_path = path && *path ? path : NULL;
    log_json = json;
    log_debug = debug;
}

static void log_line(const char *level, const char *msg);

/* log.debug: without --log, "DEBU <msg>" on stderr. */
static void debug_line(const char *msg)
{
    struct buf line = { 0 };

    if (log_path) {
        log_line("debug", msg);
        return;
    }
    buf_str(&line, "DEBU ");
    buf_str(&line, msg);
    buf_add(&line, "\n", 1);
    if (!line.oom)
        write_all(2, line.p, line.len);
    free(line.p);
}

static long long clock_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* log.phase: the first mark (phase_begin) logs the CPU time used so far, the program's
 * start; it is written only once the front door is sure to answer the call itself (the
 * next mark, an error, or the end: phase_flush), so that a hand-over to Python, which
 * writes its own, leaves no line of ours. */
static long long phase_last, phase_cpu;
static int phase_pending;

void phase_flush(void)
{
    char msg[96];

    if (!phase_pending)
        return;
    phase_pending = 0;
    snprintf(msg, sizeof(msg), "phase front door start-up (CPU): %.2f ms",
             (double) phase_cpu / 1e6);
    debug_line(msg);
}

void phase(const char *name)
{
    long long now;
    char msg[160];

    if (!log_debug)
        return;
    now = clock_ns(CLOCK_MONOTONIC);
    if (!phase_last) {
        phase_cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        phase_pending = 1;
    } else {
        phase_flush();
        snprintf(msg, sizeof(msg), "phase %s: %.2f ms", name, (double) (now - phase_last) / 1e6);
        debug_line(msg);
    }
    phase_last = now;
}

void phase_begin(void)
{
    if (!phase_last)
        phase("");
}

/* log.write(level, msg): one line in the log, or a notice on stderr if it can't be. */
static void log_line(const char *level, const char *msg)
{
    struct buf line = { 0 };
    struct timespec ts;
    struct tm tm;
    char stamp[64];
    int fd, err = 0;

    if (!log_path)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + strlen(stamp), 32, ".%09ldZ", ts.tv_nsec);
    if (log_json) {
        buf_fmt(&line, "{\"level\": \"%s\", \"msg\": ", level);
        buf_json_str(&line, msg, strlen(msg));
        buf_fmt(&line, ", \"time\": \"%s\"}\n", stamp);
    } else {
        buf_fmt(&line, "time=\"%s\" level=%s msg=", stamp, level);
        buf_go_quote(&line, msg, strlen(msg));
        buf_add(&line, "\n", 1);
    }
    fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || line.oom || write_all(fd, line.p, line.len))
        err = line.oom ? ENOMEM : errno;
    if (fd >= 0)
        close(fd);
    if (err) {
        free(line.p);
        line = (struct buf){ 0 };
        buf_str(&line, "write log ");
        buf_str(&line, log_path);
        buf_str(&line, ": ");
        buf_str(&line, strerror(err));
        buf_add(&line, "\n", 1);
        if (!line.oom)
            write_all(2, line.p, line.len);
        log_path = NULL; /* once: go on as without --log */
        if (!strcmp(level, "debug"))
            debug_line(msg);
    }
    free(line.p);
}

int report(const char *raw)
{
    struct buf msg = { 0 }, out = { 0 };
    const char *p;

    buf_utf8(&msg, raw, strlen(raw)); /* the str Python holds: invalid bytes as U+FFFD */
    if (msg.oom) {
        free(msg.p);
        return 1;
    }
    phase_flush();
    log_line("error", msg.p ? msg.p : "");
    /* print(text, file=sys.stderr), a newline in it shown escaped */
    for (p = msg.p ? msg.p : ""; *p; p++) {
        if (*p == '\n')
            buf_str(&out, "\\n");
        else if (*p == '\r')
            buf_str(&out, "\\r");
        else
            buf_add(&out, p, 1);
    }
    buf_add(&out, "\n", 1);
    if (!out.oom)
        write_all(2, out.p, out.len);
    free(out.p);
    free(msg.p);
    return 1;
}
