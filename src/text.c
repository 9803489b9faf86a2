/* text.c - text that reaches a terminal or a JSON answer.
 *
 * Names (of accounts, holders, streams) come from people and from other
 * programs: a config file, a command line, an HTTP body, Dispatcharr, or
 * Redis written by hand. Printed raw, an ESC or a CR in one rewrites the
 * operator's terminal (colours, a cleared screen, a line that hides the one
 * before it), and a byte that is not UTF-8 makes a JSON answer invalid. This
 * file decides what a control character is (C0, DEL and C1: Unicode's Cc),
 * what valid UTF-8 is (RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF), and how either is made harmless: a visible escape for
 * people, U+FFFD for JSON.
 *
 * Pure functions: no I/O, no globals, nothing kept. Never: print, or cut a
 * character (or an escape) in two. */
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length (1-4) of the valid UTF-8 sequence at p (n bytes available),
 * with its code point in *cp; 0 when p does not begin one. */
static size_t utf8_seq(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3f);
    }
    return len;
}

static int is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int sfl_text_check(const char *s, char *why, size_t whylen)
{
    if (!s)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t k = utf8_seq(p + i, n - i, &cp);
        if (k == 0) {
            if (why && whylen)
                snprintf(why, whylen, "is not valid UTF-8 (byte 0x%02X at %zu)", p[i], i);
            return -1;
        }
        if (is_control(cp)) {
            if (why && whylen)
                snprintf(why, whylen, "contains a control character (U+%04X at byte %zu)", cp, i);
            return -1;
        }
        i += k;
    }
    return 0;
}

/* Appends the escaped s to out (cap bytes, NUL kept room for) or, when out
 * is NULL, only counts; returns the bytes it would write. */
static size_t escape(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p), w = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        char esc[8];
        const char *piece = esc;
        size_t k = utf8_seq(p + i, n - i, &cp), plen;
        if (k == 0) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
            k = 1;
        } else if (cp < 0x20 || cp == 0x7f) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", cp);
        } else if (is_control(cp)) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", cp);
        } else {
            piece = (const char *)p + i;
            plen = k;
        }
        if (out) {
            if (w + plen >= cap)
                break;
            memcpy(out + w, piece, plen);
        }
        w += plen;
        i += k;
    }
    if (out)
        out[w] = '\0';
    return w;
}

size_t sfl_text_escape(const char *s, char *buf, size_t len)
{
    if (!buf || len == 0)
        return 0;
    return escape(s, buf, len);
}

char *sfl_text_escape_dup(const char *s)
{
    if (!s)
        return NULL;
    size_t need = escape(s, NULL, 0) + 1;
    char *out = malloc(need);
    if (out)
        escape(s, out, need);
    return out;
}

char *sfl_text_utf8_valid(const char *text, size_t len, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t k = utf8_seq(p + i, len - i, &cp);
        bad += k == 0;
        i += k ? k : 1;
    }
    char *out = malloc(len + 2 * bad + 1); /* 1 byte -> 3 (EF BF BD) */
    if (!out)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t k = utf8_seq(p + i, len - i, &cp);
        if (k == 0) {
            memcpy(out + w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        } else {
            memcpy(out + w, p + i, k);
            w += k;
            i += k;
        }
    }
    out[w] = '\0';
    if (outlen)
        *outlen = w;
    return out;
}
