/* rewrite.c - a stream URL turned into one login's URL the way Dispatcharr
 * applies a profile: re.sub(search, replace, url) (Python's re, or the regex
 * module, which agrees here), once $N in replace has become \N.
 *
 * Shape: sfl_rewrite_new translates the Python regex to POSIX ERE in one
 * pass, noting which ERE subexpression each Python group is ((?:...) becomes
 * a counted (...)), compiles it, and splits replace into literal text and
 * group references. sfl_rewrite_apply is re.sub's loop (Python 3.7+) over
 * regexec. \d \w \s and . become bracket expressions, and a [...] is rebuilt
 * from the set of bytes it names, so Python's escapes inside it ([\]], [\-],
 * [\d.]) mean what they meant. What ERE cannot express is refused by name
 * and byte offset, never approximated: lazy and possessive quantifiers,
 * lookarounds, named groups, inline flags, backreferences, \b \B \A \Z and
 * every other escape of a letter or digit, and two things glibc matches
 * unlike Python (found by comparing the two on random patterns): ^ or $
 * inside a repeated group, and a capturing group under *, + or {m,n}.
 *
 * In replace, $N and \N take one or two digits as Python reads \N ($12 is
 * group 12, never group 1 and a 2); $0, \0 and three octal digits are a
 * character to Python and refused, as are other escapes and $<name>; \\ is
 * a backslash and everything else ($$, ${1}) is literal, as in Dispatcharr.
 *
 * Differences that remain: POSIX takes the longest match where Python takes
 * the first its backtracking finds (they part when a | or an optional piece
 * that matches early leads to a shorter whole match); matching is bytewise
 * (\w and \d are ASCII, . is one byte); Python's $ also matches before a
 * final newline. Never: print, keep state between calls, or use another
 * regex library (libc's regcomp only). */
#include "rewrite.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One piece of the replacement: literal text, or a group's text. */
struct part {
    int group; /* ERE subexpression; -1: the literal lit[off..off+len) */
    size_t off, len;
};

struct sfl_rewrite {
    regex_t re;
    struct part *parts;
    size_t nparts;
    char *lit; /* the replacement's literal text, \\ made one backslash */
};

/* Writes the message into err (when there is one); returns -1. */
static int why(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*--- A growing string -------------------------------------------------------*/

typedef struct {
    char *p;
    size_t len, cap;
    int oom; /* a realloc failed: p holds what fitted before */
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (!b->oom && b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        b->oom = !p;
        b->p = p ? p : b->p;
        b->cap = p ? cap : b->cap;
    }
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put1(buf *b, char c)
{
    put(b, &c, 1);
}

/*--- Sets of bytes, written as bracket expressions --------------------------*/

typedef struct {
    unsigned char bit[16]; /* ASCII only: a non-ASCII byte in [...] is refused */
} set;

static void add(set *s, int lo, int hi)
{
    for (int c = lo; c <= hi; c++)
        s->bit[c >> 3] |= (unsigned char)(1u << (c & 7));
}

static int has(const set *s, int c)
{
    return (s->bit[c >> 3] >> (c & 7)) & 1;
}

/* Adds the class \c (d, w or s) to s; 0 when c is none of them. */
static int add_class(set *s, char c)
{
    if (c == 'w') {
        add(s, 'A', 'Z');
        add(s, 'a', 'z');
        add(s, '_', '_');
    }
    if (c == 'w' || c == 'd')
        add(s, '0', '9');
    if (c == 's') {
        add(s, '\t', '\r'); /* \t \n \v \f \r and space: [[:space:]] in C */
        add(s, ' ', ' ');
    }
    return c == 'w' || c == 'd' || c == 's';
}

/* Writes s as an ERE bracket expression. In POSIX, ] is literal only first,
 * - only first or last, ^ anywhere but first, [ followed by . : or = opens
 * a class, and backslash is literal: so ] goes first, then ^ [ and - last. */
static void put_set(buf *b, const set *s, int neg)
{
    int n = 0, open = has(s, '['), caret = has(s, '^'), dash = has(s, '-');
    set only = {{0}};
    add(&only, '^', '^');
    if (!neg && memcmp(s, &only, sizeof(only)) == 0) {
        put(b, "\\^", 2); /* [^] would be a negation */
        return;
    }
    put(b, neg ? "[^" : "[", neg ? 2 : 1);
    if (has(s, ']')) {
        put1(b, ']');
        n++;
    }
    for (int c = 1; c < 128; c++) {
        if (!has(s, c) || strchr("[]^-", c))
            continue;
        int e = c; /* a run c..e, written as a range */
        while (e + 1 < 128 && has(s, e + 1) && !strchr("[]^-", e + 1))
            e++;
        put1(b, (char)c);
        if (e > c + 1)
            put1(b, '-');
        if (e > c)
            put1(b, (char)e);
        n++;
        c = e;
    }
    if (caret && n == 0 && !neg) { /* [-^] or [[^], never [^ */
        put1(b, dash ? '-' : '[');
        *(dash ? &dash : &open) = 0;
    }
    if (caret)
        put1(b, '^');
    if (open)
        put1(b, '[');
    if (dash)
        put1(b, '-');
    put1(b, ']');
}

/*--- Search: Python regex -> POSIX ERE --------------------------------------*/

/* What a group holds, seen when a quantifier follows it */
enum { HOLDS_ANCHOR = 1, CAPTURES = 2 /* it or a group in it captures */ };

typedef struct {
    const char *src; /* the Python regex, read at i */
    size_t i;
    buf out;     /* the ERE */
    int *group;  /* group[N]: the ERE subexpression of Python group N */
    int ngroups; /* Python's groups (capturing) */
    int nparens; /* ERE's subexpressions (Python's capturing or not) */
    char *flags; /* flags[d]: of the open group at depth d */
    char *err;
    size_t errlen;
} xlate;

/* Refuses src[at..at+n), naming it; returns -1. */
static int refuse(xlate *x, const char *what, size_t at, size_t n)
{
    return why(x->err, x->errlen, "search: %s \"%.*s\" at byte %zu", what, (int)n, x->src + at, at);
}

/* The byte that the escape at src[at] stands for when it is a literal (a
 * backslash before punctuation or a non-ASCII byte), or -1 refused: before
 * a letter or digit it is a class, anchor, backreference or control
 * character to Python, none of which is a literal. */
static int escaped(xlate *x, size_t at, int in_set)
{
    unsigned char c = (unsigned char)x->src[at + 1];
    if (c == '\0')
        return refuse(x, "trailing backslash", at, 1);
    if (!is_alnum(c))
        return c;
    const char *what = "escape";
    if (!in_set && c >= '1' && c <= '9')
        what = "backreference";
    else if (!in_set && (c == 'b' || c == 'B'))
        what = "word boundary";
    else if (!in_set && (c == 'A' || c == 'Z'))
        what = "string anchor";
    return refuse(x, what, at, 2);
}

/* One member of a [...] at src[i]: its byte (i moved past it), -2 for \d \w
 * or \s (i left on it), or -1 refused. */
static int set_member(xlate *x)
{
    size_t at = x->i;
    unsigned char c = (unsigned char)x->src[at];
    char e = c == '\\' ? x->src[at + 1] : 0;
    if (e && strchr("dws", e))
        return -2;
    if (e && strchr("DWS", e)) /* [^...] inside [...]: ERE has no union */
        return refuse(x, "negated class in [...]", at, 2);
    int lit = c == '\\' ? escaped(x, at, 1) : c;
    if (lit >= 0x80)
        return refuse(x, "non-ASCII character in [...]", at, c == '\\' ? 2 : 1);
    x->i += lit < 0 ? 0 : c == '\\' ? 2 : 1;
    return lit;
}

/* The [...] at src[i], by Python's rules: ] first is a member, a-z a
 * range, - at either end a member. */
static int bracket(xlate *x)
{
    size_t open = x->i++;
    set s = {{0}};
    int neg = x->src[x->i] == '^';
    x->i += (size_t)neg;
    for (size_t first = x->i;;) {
        size_t at = x->i;
        if (x->src[at] == '\0')
            return refuse(x, "unterminated [", open, 1);
        if (x->src[at] == ']' && at != first)
            break;
        int lo = set_member(x);
        if (lo == -1)
            return -1;
        if (lo == -2) {
            add_class(&s, x->src[at + 1]);
            x->i += 2;
        }
        int range = x->src[x->i] == '-' && x->src[x->i + 1] && x->src[x->i + 1] != ']';
        if (!range) {
            if (lo >= 0)
                add(&s, lo, lo);
            continue;
        }
        size_t hat = ++x->i;
        int hi = lo == -2 ? -2 : set_member(x);
        if (hi == -1)
            return -1;
        if (hi == -2 || hi < lo)
            return refuse(x, "bad range", at, hat - at + (x->src[hat] == '\\' ? 2 : 1));
        add(&s, lo, hi);
    }
    x->i++;
    put_set(&x->out, &s, neg);
    return 0;
}

/* Python's {m}, {m,}, {,n} or {m,n} at src[i]: written as an ERE interval
 * (1), or 0 when this { is a literal. regcomp judges the counts. */
static int braces(xlate *x)
{
    const char *lo = x->src + x->i + 1, *comma = lo + strspn(lo, "0123456789");
    const char *end = *comma == ',' ? comma + 1 + strspn(comma + 1, "0123456789") : comma;
    if (*end != '}' || end == lo)
        return 0;
    put(&x->out, comma == lo ? "{0" : "{", comma == lo ? 2 : 1);
    put(&x->out, lo, (size_t)(end + 1 - lo));
    x->i = (size_t)(end + 1 - x->src);
    return 1;
}

/* Python's (? extensions: only (?: has an ERE form. */
static const struct {
    const char *open, *name;
} exts[] = {
    {"(?=", "lookahead"},         {"(?!", "negative lookahead"},
    {"(?<=", "lookbehind"},       {"(?<!", "negative lookbehind"},
    {"(?P<", "named group"},      {"(?P=", "named backreference"},
    {"(?<", "named group"},       {"(?#", "comment"},
    {"(?(", "conditional group"}, {"(?>", "atomic group"},
};

static int group_open(xlate *x)
{
    const char *p = x->src + x->i;
    if (p[1] == '?' && p[2] != ':') {
        for (size_t k = 0; k < sizeof(exts) / sizeof(exts[0]); k++)
            if (strncmp(p, exts[k].open, strlen(exts[k].open)) == 0)
                return refuse(x, exts[k].name, x->i, strlen(exts[k].open));
        return refuse(x, "inline flag or group extension", x->i, p[2] ? 3 : 2);
    }
    x->nparens++;
    if (p[1] == '?')
        x->i += 2; /* (?: counts in ERE, not in Python */
    else
        x->group[++x->ngroups] = x->nparens;
    x->i++;
    put1(&x->out, '(');
    return 0;
}

/* The ERE of x->src into x->out; 0, or -1 with x->err set. */
static int translate(xlate *x)
{
    int atom = 0;   /* what was just written may take a quantifier */
    int quant = 0;  /* a quantifier was just written */
    int high = 0;   /* the atom is a byte of a non-ASCII character */
    int depth = 0;  /* open groups */
    int closed = 0; /* the atom is a group: its flags */
    while (x->src[x->i]) {
        size_t at = x->i;
        unsigned char c = (unsigned char)x->src[at];
        int q = c == '{' ? braces(x) : c == '*' || c == '+' || c == '?';
        if (q && quant && (c == '?' || c == '+'))
            return refuse(x, c == '?' ? "lazy quantifier" : "possessive quantifier", at - 1, 2);
        if (q && (quant || !atom))
            return refuse(x, quant ? "multiple repeat" : "nothing to repeat", at, 1);
        if (q && high)
            return refuse(x, "quantifier after a non-ASCII character", at, 1);
        /* Where glibc and Python part: an anchor in a repeat matches
         * unlike Python or not at all, and POSIX splits a repeat into
         * iterations unlike Python (so a group's last one differs) */
        if (q && (closed & HOLDS_ANCHOR))
            return refuse(x, "^ or $ repeated by", at, 1);
        if (q && c != '?' && (closed & CAPTURES))
            return refuse(x, "capturing group repeated by", at, 1);
        if (q) {
            if (c != '{')
                put1(&x->out, (char)x->src[x->i++]);
            quant = 1;
            atom = high = 0;
            continue;
        }
        quant = high = closed = 0;
        atom = c != '(' && c != '|' && c != '^' && c != '$';
        char e = c == '\\' ? x->src[at + 1] : 0;
        set s = {{0}};
        if (c == '(') {
            if (group_open(x) < 0)
                return -1;
            x->flags[++depth] = x->src[at + 1] == '?' ? 0 : CAPTURES;
            continue;
        } else if (c == '[') {
            if (bracket(x) < 0)
                return -1;
            continue;
        } else if (c == ')' && depth-- == 0) {
            return refuse(x, "unbalanced parenthesis", at, 1);
        } else if (strchr(")|^$", c)) {
            if (c == ')') {
                closed = x->flags[depth + 1];
                x->flags[depth] |= (char)closed;
            }
            if (c == '^' || c == '$')
                x->flags[depth] |= HOLDS_ANCHOR;
            put1(&x->out, (char)c);
        } else if (c == '.') {
            add(&s, '\n', '\n'); /* Python's . is anything but a newline */
            put_set(&x->out, &s, 1);
        } else if (e && add_class(&s, e)) {
            put_set(&x->out, &s, 0);
            x->i++;
        } else if (e && strchr("DWS", e)) {
            add_class(&s, (char)(e + ('a' - 'A')));
            put_set(&x->out, &s, 1);
            x->i++;
        } else {
            int lit = c == '\\' ? escaped(x, at, 0) : c;
            if (lit < 0)
                return -1;
            x->i += c == '\\';
            if (strchr(".[\\()*+?{|^$", lit))
                put1(&x->out, '\\');
            put1(&x->out, (char)lit);
            high = lit >= 0x80;
        }
        x->i++;
    }
    if (depth)
        return why(x->err, x->errlen, "search: missing \")\" at byte %zu (the end)", x->i);
    return 0;
}

/*--- Replace: $N and \N ----------------------------------------------------*/

/* The ERE subexpression of the group whose digits start at r[num] (after
 * the $ or \ at r[at]), with *end past them; -1 refused. Python reads one
 * or two digits (\12 is group 12, never group 1 and a 2), and a \0 or three
 * octal digits as a character. */
static int group_ref(const char *r, size_t at, size_t num, const xlate *x, size_t *end, char *err,
                     size_t errlen)
{
    const char *p = r + num;
    int two = p[1] >= '0' && p[1] <= '9';
    if (p[0] == '0' || (two && p[0] <= '7' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7'))
        return why(err, errlen,
                   "replace: \"%.*s\" at byte %zu is an octal character to Python, not a group",
                   (int)(num - at) + (p[0] == '0' ? 1 : 3), r + at, at);
    int n = two ? (p[0] - '0') * 10 + (p[1] - '0') : p[0] - '0';
    *end = num + 1 + (size_t)two;
    if (n > x->ngroups)
        return why(err, errlen, "replace: \"%.*s\" at byte %zu names group %d; search has %d",
                   (int)(*end - at), r + at, at, n, x->ngroups);
    return x->group[n];
}

/* Splits r into rw->parts and rw->lit; -1 with err set. */
static int parse_replace(sfl_rewrite *rw, const char *r, const xlate *x, char *err, size_t errlen)
{
    size_t n = strlen(r), nlit = 0;
    rw->parts = calloc(n + 1, sizeof(*rw->parts));
    rw->lit = malloc(n + 1);
    if (!rw->parts || !rw->lit)
        return why(err, errlen, "out of memory");
    for (size_t i = 0; i < n;) {
        char c = r[i], d = r[i + 1];
        if ((c == '$' || c == '\\') && d >= '0' && d <= '9') { /* Dispatcharr: $N -> \N */
            size_t end = i; /* set by group_ref when it succeeds */
            int g = group_ref(r, i, i + 1, x, &end, err, errlen);
            if (g < 0)
                return -1;
            rw->parts[rw->nparts++] = (struct part){g, 0, 0};
            i = end;
            continue;
        }
        if (c == '$' && d == '<' && r[i + 2] && r[i + 2] != '>' && strchr(r + i + 2, '>'))
            return why(err, errlen, "replace: named group \"$<\" at byte %zu is not supported", i);
        if (c == '\\' && d != '\\')
            return why(err, errlen, "replace: escape \"%.*s\" at byte %zu is not supported",
                       d ? 2 : 1, r + i, i);
        if (!rw->nparts || rw->parts[rw->nparts - 1].group >= 0)
            rw->parts[rw->nparts++] = (struct part){-1, nlit, 0};
        rw->lit[nlit++] = c; /* \\ is one backslash; anything else is itself */
        rw->parts[rw->nparts - 1].len++;
        i += c == '\\' ? 2 : 1;
    }
    return 0;
}

/*--- The rewrite ------------------------------------------------------------*/

sfl_rewrite *sfl_rewrite_new(const char *search, const char *replace, char *err, size_t errlen)
{
    xlate x = {.src = search, .err = err, .errlen = errlen};
    sfl_rewrite *rw = calloc(1, sizeof(*rw));
    x.group = calloc(strlen(search) + 1, sizeof(*x.group));
    x.flags = calloc(strlen(search) + 2, 1);
    put(&x.out, "", 0); /* an empty search is the empty ERE */
    if (!rw || !x.group || !x.flags || x.out.oom) {
        why(err, errlen, "out of memory");
        goto err;
    }
    if (translate(&x) < 0)
        goto err;
    if (x.out.oom) {
        why(err, errlen, "out of memory");
        goto err;
    }
    int rc = regcomp(&rw->re, x.out.p, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &rw->re, msg, sizeof(msg));
        why(err, errlen, "search: regcomp refused its POSIX translation: %s", msg);
        goto err;
    }
    if (parse_replace(rw, replace, &x, err, errlen) < 0) {
        regfree(&rw->re);
        goto err;
    }
    free(x.group);
    free(x.flags);
    free(x.out.p);
    return rw;
err:
    if (rw) {
        free(rw->parts);
        free(rw->lit);
        free(rw);
    }
    free(x.group);
    free(x.flags);
    free(x.out.p);
    return NULL;
}

/* The length of the character at p, stepped over after an empty match: a
 * UTF-8 sequence whole, any other byte alone. */
static size_t char_len(const unsigned char *p)
{
    size_t n = 1;
    while (p[0] >= 0xc0 && n < 4 && (p[n] & 0xc0) == 0x80)
        n++;
    return n;
}

char *sfl_rewrite_apply(const sfl_rewrite *rw, const char *url)
{
    size_t len = strlen(url), nm = rw->re.re_nsub + 1;
    regmatch_t *m = malloc(nm * sizeof(*m));
    buf out = {0};
    if (!m)
        return NULL;
    size_t pos = 0, done = 0; /* search from pos; url[0..done) is written */
    int step = 0;             /* the match that ended at pos was empty */
    while (!(step && pos >= len)) {
        /* re.sub: no second empty match where one was; a longer one there
         * is not possible in POSIX (it would have been the longest) */
        size_t from = step ? pos + char_len((const unsigned char *)url + pos) : pos;
        if (regexec(&rw->re, url + from, nm, m, from ? REG_NOTBOL : 0) != 0)
            break;
        size_t so = from + (size_t)m[0].rm_so, eo = from + (size_t)m[0].rm_eo;
        put(&out, url + done, so - done);
        for (size_t k = 0; k < rw->nparts; k++) {
            const struct part *p = &rw->parts[k];
            const regmatch_t *g = &m[p->group < 0 ? 0 : p->group];
            if (p->group < 0)
                put(&out, rw->lit + p->off, p->len);
            else if (g->rm_so >= 0) /* -1: the group took no part */
                put(&out, url + from + g->rm_so, (size_t)(g->rm_eo - g->rm_so));
        }
        done = pos = eo;
        step = so == eo;
    }
    put(&out, url + done, len - done);
    free(m);
    if (out.oom) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

void sfl_rewrite_free(sfl_rewrite *rw)
{
    if (!rw)
        return;
    regfree(&rw->re);
    free(rw->parts);
    free(rw->lit);
    free(rw);
}
