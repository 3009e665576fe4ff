/* Timestamp text in C, shared by streamer_ts.c (the typed query's DuckDB functions)
   and _typed.c (the typed encoder): sql_typed.FAST_ISO's form read, integers' canonical
   text, civil dates and epoch text.  The same arithmetic as timestamps.py (days from the
   civil date, offsets applied, years 1-9999); static functions, each file its own copy. */
#ifndef STREAMER_TIMESTAMP_TEXT_H
#define STREAMER_TIMESTAMP_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* years 1-9999, as timestamps.MIN_NS / END_NS, in seconds */
#define MIN_S (-62135596800LL)
#define END_S 253402300800LL

static inline void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static inline int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 1 and *out for the canonical text of an integer in [lo, hi) (no sign but `-`,
   no leading zero, no `-0`), else 0 */
static inline int canonical_int(const char *s, size_t n, int64_t lo, int64_t hi,
                                int64_t *out) {
    size_t i = 0;
    int neg = 0;
    if (n == 0 || n > 19) return 0;
    if (s[0] == '-') { neg = 1; i = 1; if (n == 1) return 0; }
    if (s[i] == '0' && (n > i + 1 || neg)) return 0;
    uint64_t u = 0;  /* at most 19 digits: below 2**64 */
    for (; i < n; i++) {
        unsigned c = (unsigned)(s[i] - '0');
        if (c > 9) return 0;
        u = u * 10 + c;
    }
    if (u > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) return 0;
    int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
    if (v < lo || v >= hi) return 0;
    *out = v;
    return 1;
}

static inline void put2(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

static inline int d2(const char *s) {
    unsigned a = (unsigned)(s[0] - '0'), b = (unsigned)(s[1] - '0');
    return (a > 9 || b > 9) ? -1 : (int)(a * 10 + b);
}

static const int MDAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* 1, *secs and *ns (the fraction's nanoseconds, its digits past 9 never read: the
   form has at most 9) on FAST_ISO's form (YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}]
   [Z|+HH:MM|-HH:MM], hours 00-23, zone hours 00-23) with a real date, else 0 */
static inline int iso_parse(const char *s, size_t n, int64_t *secs, int64_t *ns) {
    if (n < 19) return 0;
    int y1 = d2(s), y2 = d2(s + 2);
    if (y1 < 0 || y2 < 0 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':') return 0;
    int year = y1 * 100 + y2, mon = d2(s + 5), day = d2(s + 8);
    int hh = d2(s + 11), mi = d2(s + 14), ss = d2(s + 17);
    if (mon < 1 || mon > 12 || day < 1 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0
        || ss > 59) return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > MDAYS[mon - 1] + (mon == 2 && leap)) return 0;
    size_t i = 19;
    int64_t frac = 0;
    int digits = 0;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && (unsigned)(s[i] - '0') <= 9 && digits < 9) {
            frac = frac * 10 + (s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0) return 0;
        for (int k = digits; k < 9; k++) frac *= 10;
    }
    int64_t offset = 0;
    if (i < n) {
        if (s[i] == 'Z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            if (n - i != 6 || s[i + 3] != ':') return 0;
            int oh = d2(s + i + 1), om = d2(s + i + 4);
            if (oh < 0 || oh > 23 || om < 0 || om > 59) return 0;
            offset = (int64_t)(oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);
            i += 6;
        } else {
            return 0;
        }
    }
    if (i != n) return 0;
    *secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mi * 60 + ss - offset;
    *ns = frac;
    return 1;
}

/* epoch microseconds of FAST_ISO's form (fraction digits past 6 dropped, as DuckDB's
   TIMESTAMPTZ cast drops them), else 0 */
static inline int iso_us(const char *s, size_t n, int64_t *us) {
    int64_t secs, ns;
    if (!iso_parse(s, n, &secs, &ns)) return 0;
    *us = secs * 1000000 + ns / 1000;
    return 1;
}

/* the decimal text of v into buf (at least 20 bytes): its length */
static inline int int_text(int64_t v, char *buf) {
    char digits[20];
    int n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do { digits[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) buf[len++] = '-';
    while (n) buf[len++] = digits[--n];
    return len;
}

static inline int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b < 0);
}

/* YYYY-MM-DDTHH:MM:SS of epoch seconds `v` in years 1-9999 into buf (19 bytes) */
static inline void iso_seconds_text(int64_t v, char *buf) {
    int64_t days = floor_div(v, 86400), sod = v - days * 86400, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    put2(buf, (int)(y / 100));
    put2(buf + 2, (int)(y % 100));
    buf[4] = '-';
    put2(buf + 5, m);
    buf[7] = '-';
    put2(buf + 8, d);
    buf[10] = 'T';
    put2(buf + 11, (int)(sod / 3600));
    buf[13] = ':';
    put2(buf + 14, (int)(sod / 60 % 60));
    buf[16] = ':';
    put2(buf + 17, (int)(sod % 60));
}

#endif
