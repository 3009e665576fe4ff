/* The column mapping's typed encoder in C (issue #18): one pass over a batch's NDJSON
 * bytes writes the CSV rows of the records whose cells it can prove, byte for byte
 * the rows the per-record encoder writes (mapping/values.py, sinks/stage/csv_python.py),
 * and names the others ("unsure"): the caller maps those with the SQL.
 * mapping/typed_c.py builds the plan and says what is proven; docs/internals.md why.
 *
 * Plan(nodes, columns, separator, quote): the paths as a tree (a node is an object's
 * keys, an array's indexes or a leaf), each column's conversion and the CSV text of
 * its cell when the value is missing (or its constant).
 * Plan.encode(buffers) -> (csv, unsure, records): buffers of whole lines, each ended by
 * b"\n" (a last line without one continues into a next buffer that starts with it).
 *
 * It never assumes valid JSON: a byte it does not expect makes the record unsure,
 * never a wrong cell; it reads no byte outside a buffer.  The GIL is released while it
 * scans. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "timestamp_text.h"

#define MAX_DEPTH 1024

enum { NODE_OBJECT = 0, NODE_ARRAY = 1, NODE_LEAF = 2 };
enum { V_ABSENT = 0, V_STRING, V_NUMBER, V_TRUE, V_FALSE, V_NULL, V_CONTAINER };
/* column conversions (typed_c.py OPS) */
enum { OP_CONSTANT = 0, OP_TEXT, OP_INTEGER, OP_DOUBLE, OP_BOOLEAN, OP_ISO, OP_EPOCH };
#define OUT_ISO (-1)

typedef struct {
    char *key;          /* an object key's bytes (NULL: an array index) */
    Py_ssize_t len;     /* the key's length, or the index */
    int child;
} Edge;

typedef struct {
    int kind, leaf, first, count;  /* edges [first, first + count) */
} Node;

typedef struct {
    int op, leaf, required, unit, out;  /* unit: an epoch input's 10**unit ns */
    char *missing;      /* the cell of a missing value (or the constant's) */
    Py_ssize_t missing_len;
} Column;

typedef struct {
    PyObject_HEAD
    Node *nodes;
    Edge *edges;
    Column *columns;
    int n_nodes, n_edges, n_columns, n_leaves;
    char separator, quote;
} Plan;

typedef struct {
    const unsigned char *p;
    size_t n;
    int kind, escaped;
} Leaf;

typedef struct {
    char *data;
    size_t len, cap;
} Out;

typedef struct {
    const Plan *plan;
    Leaf *leaves;
    uint64_t *seen;     /* per edge: the record number that last took it */
    uint64_t record;
    Out out;
    Out decoded;        /* a string value's text, its escapes decoded */
    Py_ssize_t *unsure;
    size_t n_unsure, cap_unsure;
} Scan;

/* ---- output ---- */

static int reserve(Out *o, size_t more) {
    if (o->len + more <= o->cap) return 1;
    size_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + more) cap *= 2;
    char *data = PyMem_RawRealloc(o->data, cap);
    if (data == NULL) return 0;
    o->data = data;
    o->cap = cap;
    return 1;
}

/* a cell as Python's csv writes it (QUOTE_MINIMAL, doublequote, "\r\n"): quoted
 * when it holds the separator, the quote, "\r" or "\n", each quote doubled */
static int put_cell(Out *o, const Plan *plan, const char *s, size_t n) {
    size_t quotes = 0;
    int special = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == plan->quote) quotes++;
        else if (c == plan->separator || c == '\r' || c == '\n') special = 1;
    }
    if (!quotes && !special) {
        if (!reserve(o, n)) return 0;
        memcpy(o->data + o->len, s, n);
        o->len += n;
        return 1;
    }
    if (!reserve(o, n + quotes + 2)) return 0;
    char *d = o->data + o->len;
    *d++ = plan->quote;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == plan->quote) *d++ = plan->quote;
        *d++ = s[i];
    }
    *d++ = plan->quote;
    o->len = (size_t)(d - o->data);
    return 1;
}

static int put_raw(Out *o, const char *s, size_t n) {
    if (!reserve(o, n)) return 0;
    memcpy(o->data + o->len, s, n);
    o->len += n;
    return 1;
}

/* ---- JSON forms ---- */

static inline const unsigned char *spaces(const unsigned char *p, const unsigned char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

static inline int hex(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* 1 when [p, end) is UTF-8 (no overlong form, no surrogate, at most U+10FFFF) */
static int utf8(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) { p++; continue; }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else return 0;
        if ((size_t)(end - p) <= n) return 0;
        if (p[1] < lo || p[1] > hi) return 0;
        for (size_t k = 2; k <= n; k++)
            if (p[k] < 0x80 || p[k] > 0xBF) return 0;
        p += n + 1;
    }
    return 1;
}

/* p after a string's opening quote: its closing quote, or NULL when the string is
 * not closed, holds a byte below 0x20, an escape JSON does not have or bytes that
 * are not UTF-8; *escaped when it holds a backslash */
static const unsigned char *string_end(const unsigned char *p, const unsigned char *end,
                                       int *escaped) {
    const unsigned char *start = p;
    int wide = 0;
    *escaped = 0;
    while (p < end) {
#if defined(__SSE2__)
        /* 16 bytes at a time to the next quote, backslash, control or non-ASCII byte */
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
        const __m128i below = _mm_set1_epi8(0x1f);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, below), v));
            int mask = _mm_movemask_epi8(hit) | _mm_movemask_epi8(v);  /* high bit: >= 0x80 */
            if (mask) {
                p += __builtin_ctz((unsigned)mask);
                break;
            }
            p += 16;
        }
        if (p >= end) break;
#endif
        unsigned char c = *p;
        if (c == '"') {
            if (wide && !utf8(start, p)) return NULL;
            return p;
        }
        if (c < 0x20) return NULL;
        if (c >= 0x80) wide = 1;
        if (c == '\\') {
            *escaped = 1;
            if (end - p < 2) return NULL;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;
            case 'u':
                if (end - p < 6 || !hex(p[2]) || !hex(p[3]) || !hex(p[4]) || !hex(p[5]))
                    return NULL;
                p += 6;
                continue;
            default:
                return NULL;
            }
        }
        p++;
    }
    return NULL;
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* the end of a JSON number at p, or NULL */
static const unsigned char *number_end(const unsigned char *p, const unsigned char *end) {
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit(*p)) return NULL;
    if (*p == '0') p++;
    else while (p < end && is_digit(*p)) p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    return p;
}

static const unsigned char *literal(const unsigned char *p, const unsigned char *end,
                                    const char *word, size_t n) {
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* after a container's member or item at *pp (NULL: a bad one): 1 and *pp past the
 * `,` when more follow, 0 and *pp past the closing `close`, -1 for anything else */
static int next_member(const unsigned char **pp, const unsigned char *end,
                       unsigned char close) {
    const unsigned char *p = *pp;
    if (p == NULL) return -1;
    p = spaces(p, end);
    if (p >= end) return -1;
    if (*p == close) {
        *pp = p + 1;
        return 0;
    }
    if (*p != ',') return -1;
    *pp = spaces(p + 1, end);
    return 1;
}

/* the end of any JSON value at p (checked, not kept), or NULL */
static const unsigned char *skip_value(const unsigned char *p, const unsigned char *end,
                                       int depth) {
    if (p >= end) return NULL;
    int escaped;
    switch (*p) {
    case '"': {
        const unsigned char *close = string_end(p + 1, end, &escaped);
        return close ? close + 1 : NULL;
    }
    case 't': return literal(p, end, "true", 4);
    case 'f': return literal(p, end, "false", 5);
    case 'n': return literal(p, end, "null", 4);
    case '{': case '[': {
        if (depth >= MAX_DEPTH) return NULL;
        unsigned char close = *p == '{' ? '}' : ']';
        int object = *p == '{';
        p = spaces(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (object) {
                if (p >= end || *p != '"') return NULL;
                const unsigned char *key_end = string_end(p + 1, end, &escaped);
                if (key_end == NULL) return NULL;
                p = spaces(key_end + 1, end);
                if (p >= end || *p != ':') return NULL;
                p = spaces(p + 1, end);
            }
            p = skip_value(p, end, depth + 1);
            int more = next_member(&p, end, close);
            if (more <= 0) return more ? NULL : p;
        }
    }
    default:
        return number_end(p, end);
    }
}

static const unsigned char *take(Scan *s, int node, const unsigned char *p,
                                 const unsigned char *end, int depth);

/* an object or array on the paths (p at its `{` or `[`): its mapped members taken,
 * the others checked; the end, or NULL (unsure) */
static const unsigned char *container(Scan *s, const Node *node, const unsigned char *p,
                                      const unsigned char *end, int depth) {
    const Plan *plan = s->plan;
    int object = node->kind == NODE_OBJECT;
    unsigned char close = object ? '}' : ']';
    if (depth >= MAX_DEPTH) return NULL;
    p = spaces(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (Py_ssize_t index = 0;; index++) {
        const Edge *edge = NULL;
        if (object) {
            int escaped;
            if (p >= end || *p != '"') return NULL;
            const unsigned char *key_end = string_end(p + 1, end, &escaped);
            /* an escape may spell a mapped key another way ("\u0061" is "a") */
            if (key_end == NULL || escaped) return NULL;
            size_t n = (size_t)(key_end - p - 1);
            for (int e = node->first; e < node->first + node->count; e++) {
                const Edge *candidate = &plan->edges[e];
                if ((size_t)candidate->len == n && (n == 0 || candidate->key[0] == (char)p[1])
                    && memcmp(candidate->key, p + 1, n) == 0) {
                    edge = candidate;
                    break;
                }
            }
            p = spaces(key_end + 1, end);
            if (p >= end || *p != ':') return NULL;
            p = spaces(p + 1, end);
        } else {
            for (int e = node->first; e < node->first + node->count; e++) {
                if (plan->edges[e].len == index) {
                    edge = &plan->edges[e];
                    break;
                }
            }
        }
        if (edge != NULL) {
            size_t e = (size_t)(edge - plan->edges);
            if (s->seen[e] == s->record) return NULL;  /* a mapped key twice */
            s->seen[e] = s->record;
            p = take(s, edge->child, p, end, depth + 1);
        } else {
            p = skip_value(p, end, depth + 1);
        }
        int more = next_member(&p, end, close);
        if (more <= 0) return more ? NULL : p;
    }
}

/* the value at p for path node `node`: a leaf kept, a container walked; NULL when
 * unsure (a path through a value of another kind: the SQL says why) */
static const unsigned char *take(Scan *s, int index, const unsigned char *p,
                                 const unsigned char *end, int depth) {
    const Node *node = &s->plan->nodes[index];
    if (p >= end) return NULL;
    if (node->kind != NODE_LEAF) {
        if (*p == 'n') return literal(p, end, "null", 4);  /* missing below */
        if (*p != (node->kind == NODE_OBJECT ? '{' : '[')) return NULL;
        return container(s, node, p, end, depth);
    }
    Leaf *leaf = &s->leaves[node->leaf];
    const unsigned char *after;
    switch (*p) {
    case '"':
        after = string_end(p + 1, end, &leaf->escaped);
        if (after == NULL) return NULL;
        leaf->kind = V_STRING;
        leaf->p = p + 1;
        leaf->n = (size_t)(after - p - 1);
        return after + 1;
    case 't':
        leaf->kind = V_TRUE;
        return literal(p, end, "true", 4);
    case 'f':
        leaf->kind = V_FALSE;
        return literal(p, end, "false", 5);
    case 'n':
        leaf->kind = V_NULL;
        return literal(p, end, "null", 4);
    case '{': case '[':
        leaf->kind = V_CONTAINER;
        return skip_value(p, end, depth);
    default:
        after = number_end(p, end);
        if (after == NULL) return NULL;
        leaf->kind = V_NUMBER;
        leaf->p = p;
        leaf->n = (size_t)(after - p);
        return after;
    }
}

/* ---- cells ---- */

/* 1 when s is `-?(0|[1-9][0-9]*)` other than `-0`, in int64: *v its value */
static int integer_text(const unsigned char *s, size_t n, int64_t *v) {
    return canonical_int((const char *)s, n, INT64_MIN, INT64_MAX, v)
        || (n == 19 && memcmp(s, "9223372036854775807", 19) == 0
            && (*v = INT64_MAX, 1));
}

/* 1 when Python's repr(float(s)) is s (`.0` appended to an integer: *dot_zero) for
 * the decimal text s: `-?D[.F]` without exponent, at most 15 characters, no leading
 * zero in D, F without trailing zeros (or exactly `0`), 1e-4 <= |value| < 1e14; or
 * one of the zeros below.
 * At most 14 digits read as the one double nearest, and no other decimal of at most
 * 15 significant digits reads as that double, so the shortest repr is s itself;
 * repr writes fixed notation from 1e-4 to below 1e16. */
static int double_text(const unsigned char *s, size_t n, int *dot_zero) {
    size_t i = 0;
    /* zeros: 0 (an int, 0.0 as a float), 0.0 and -0.0 (floats); not -0 (a JSON
       -0 is int 0, a string "-0" is float -0.0) */
    if ((n == 1 && s[0] == '0') || (n == 3 && memcmp(s, "0.0", 3) == 0)
        || (n == 4 && memcmp(s, "-0.0", 4) == 0)) {
        *dot_zero = n == 1;
        return 1;
    }
    if (n == 0 || n > 15) return 0;
    if (s[0] == '-') i = 1;
    size_t whole = i;
    while (i < n && is_digit(s[i])) i++;
    size_t whole_digits = i - whole;
    if (whole_digits == 0 || (s[whole] == '0' && whole_digits > 1) || whole_digits > 14)
        return 0;
    int zero_whole = s[whole] == '0';
    if (i == n) {
        *dot_zero = 1;
        return !zero_whole;
    }
    if (s[i] != '.') return 0;
    size_t fraction = ++i;
    while (i < n && is_digit(s[i])) i++;
    if (i != n || i == fraction) return 0;
    *dot_zero = 0;
    if (s[n - 1] == '0' && !(n - fraction == 1 && !zero_whole)) return 0;  /* x.50 */
    if (zero_whole) {
        size_t zeros = 0;
        while (fraction + zeros < n && s[fraction + zeros] == '0') zeros++;
        if (zeros > 3 || fraction + zeros == n) return 0;  /* below 1e-4, or 0 */
    }
    return 1;
}

/* `digits` decimal digits of v (0 <= v < 10**digits), zero-padded, at p */
static void padded(char *p, int64_t v, int digits) {
    for (int k = digits - 1; k >= 0; k--) {
        p[k] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* A time as seconds since the epoch and nanoseconds (0 <= ns < 10**9) written as
 * timestamps.render writes it: ISO 8601 UTC with 0, 3, 6 or 9 fraction digits, or
 * the epoch in 10**out ns rounded down; 0 when out of years 1-9999 (unsure) */
static int put_time(Scan *s, const Column *c, int64_t secs, int64_t ns) {
    char buf[48];
    size_t n = 0;
    if (secs < MIN_S || secs >= END_S) return 0;
    if (c->out == OUT_ISO) {
        iso_seconds_text(secs, buf);
        n = 19;
        if (ns) {
            int digits = ns % 1000000 == 0 ? 3 : ns % 1000 == 0 ? 6 : 9;
            buf[n++] = '.';
            padded(buf + n, digits == 3 ? ns / 1000000 : digits == 6 ? ns / 1000 : ns,
                   digits);
            n += (size_t)digits;
        }
        buf[n++] = 'Z';
    } else if (c->out == 0) {  /* ns: past int64 for most years, so in two parts */
        int64_t high = secs, low = ns;
        if (secs < 0 && ns) {  /* secs * 10**9 + ns = -((-secs - 1) * 10**9 + 10**9 - ns) */
            high = secs + 1;
            low = 1000000000 - ns;
        }
        if (high == 0) {
            if (secs < 0) buf[n++] = '-';
            n += (size_t)int_text(low, buf + n);
        } else {
            n = (size_t)int_text(high, buf);
            padded(buf + n, low, 9);
            n += 9;
        }
    } else {  /* at most 2.6e17 (us) */
        int64_t scale = 1, per_second = 1;
        for (int k = 0; k < c->out; k++) scale *= 10;
        for (int k = c->out; k < 9; k++) per_second *= 10;
        n = (size_t)int_text(secs * per_second + ns / scale, buf);
    }
    return put_cell(&s->out, s->plan, buf, n) ? 1 : -1;
}

static inline int hex_value(unsigned char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static unsigned hex4(const unsigned char *p) {
    return (unsigned)(hex_value(p[0]) << 12 | hex_value(p[1]) << 8 | hex_value(p[2]) << 4
                      | hex_value(p[3]));
}

/* the text of a string's content [p, p + n) (checked by string_end) with its escapes
 * decoded, UTF-8, in s->decoded: 1; 0 (unsure) for \u0000 and a surrogate not in a
 * pair (orjson refuses those); -1 out of memory */
static int decode(Scan *s, const unsigned char *p, size_t n) {
    Out *o = &s->decoded;
    const unsigned char *end = p + n;
    o->len = 0;
    if (!reserve(o, n + 1)) return -1;  /* never longer than the escaped text */
    char *d = o->data;
    while (p < end) {
        if (*p != '\\') {
            *d++ = (char)*p++;
            continue;
        }
        unsigned char c = p[1];
        p += 2;
        switch (c) {
        case 'b': *d++ = '\b'; continue;
        case 'f': *d++ = '\f'; continue;
        case 'n': *d++ = '\n'; continue;
        case 'r': *d++ = '\r'; continue;
        case 't': *d++ = '\t'; continue;
        case 'u': break;
        default: *d++ = (char)c; continue;  /* " \\ / */
        }
        unsigned cp = hex4(p);
        p += 4;
        if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return 0;
            unsigned low = hex4(p + 2);
            if (low < 0xDC00 || low > 0xDFFF) return 0;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            p += 6;
        }
        if (cp < 0x80) {
            *d++ = (char)cp;
        } else if (cp < 0x800) {
            *d++ = (char)(0xC0 | cp >> 6);
            *d++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *d++ = (char)(0xE0 | cp >> 12);
            *d++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *d++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *d++ = (char)(0xF0 | cp >> 18);
            *d++ = (char)(0x80 | (cp >> 12 & 0x3F));
            *d++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *d++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    o->len = (size_t)(d - o->data);
    return 1;
}

/* 1: the cell written; 0: unsure; -1: out of memory */
static int put_value(Scan *s, const Column *c, const Leaf *v) {
    Out *o = &s->out;
    const Plan *plan = s->plan;
    int64_t number;
    int dot_zero;
    const unsigned char *text = v->p;
    size_t n = v->n;
    int plain_string = v->kind == V_STRING && !v->escaped;
    switch (c->op) {
    case OP_TEXT:  /* str as it is, numbers as str/repr, booleans as true/false */
        if (plain_string) return put_cell(o, plan, (const char *)text, n) ? 1 : -1;
        if (v->kind == V_STRING) {
            int done = decode(s, text, n);
            if (done <= 0) return done;
            /* a line end in a cell: unsure, so that rows are told apart by theirs */
            if (memchr(s->decoded.data, '\n', s->decoded.len)
                || memchr(s->decoded.data, '\r', s->decoded.len)) return 0;
            return put_cell(o, plan, s->decoded.data, s->decoded.len) ? 1 : -1;
        }
        if (v->kind == V_TRUE) return put_cell(o, plan, "true", 4) ? 1 : -1;
        if (v->kind == V_FALSE) return put_cell(o, plan, "false", 5) ? 1 : -1;
        if (v->kind == V_NUMBER) {
            if (integer_text(text, n, &number)
                || (double_text(text, n, &dot_zero) && !dot_zero))
                return put_cell(o, plan, (const char *)text, n) ? 1 : -1;
        }
        return 0;
    case OP_INTEGER:
        if ((v->kind == V_NUMBER || plain_string) && integer_text(text, n, &number))
            return put_cell(o, plan, (const char *)text, n) ? 1 : -1;
        return 0;
    case OP_DOUBLE:
        if ((v->kind == V_NUMBER || plain_string) && double_text(text, n, &dot_zero)) {
            char buf[20];  /* n <= 15 */
            memcpy(buf, text, n);
            if (dot_zero) memcpy(buf + n, ".0", 2);
            return put_cell(o, plan, buf, n + (dot_zero ? 2 : 0)) ? 1 : -1;
        }
        return 0;
    case OP_BOOLEAN:
        if (v->kind == V_TRUE || (plain_string && n == 4 && memcmp(text, "true", 4) == 0))
            return put_cell(o, plan, "true", 4) ? 1 : -1;
        if (v->kind == V_FALSE || (plain_string && n == 5 && memcmp(text, "false", 5) == 0))
            return put_cell(o, plan, "false", 5) ? 1 : -1;
        return 0;
    case OP_ISO: {
        int64_t secs, ns;
        if (!plain_string || !iso_parse((const char *)text, n, &secs, &ns)) return 0;
        return put_time(s, c, secs, ns);
    }
    case OP_EPOCH: {  /* number * 10**unit ns */
        if ((v->kind != V_NUMBER && !plain_string) || !integer_text(text, n, &number))
            return 0;
        int64_t per_second = 1;
        for (int k = c->unit; k < 9; k++) per_second *= 10;
        int64_t secs = floor_div(number, per_second), ns = number - secs * per_second;
        for (int k = 0; k < c->unit; k++) ns *= 10;
        return put_time(s, c, secs, ns);
    }
    default:
        return 0;
    }
}

/* the record [p, end) as a row: 1 written, 0 unsure, -1 out of memory */
static int record(Scan *s, const unsigned char *p, const unsigned char *end) {
    const Plan *plan = s->plan;
    s->record++;
    memset(s->leaves, 0, (size_t)plan->n_leaves * sizeof(Leaf));
    p = spaces(p, end);
    if (p >= end || *p != '{') return 0;
    p = container(s, &plan->nodes[0], p, end, 1);
    if (p == NULL || spaces(p, end) != end) return 0;
    size_t row = s->out.len;
    for (int i = 0; i < plan->n_columns; i++) {
        const Column *c = &plan->columns[i];
        if (i && !put_raw(&s->out, &plan->separator, 1)) return -1;
        const Leaf *v = c->op == OP_CONSTANT ? NULL : &s->leaves[c->leaf];
        if (v == NULL || v->kind == V_ABSENT || v->kind == V_NULL) {
            if (v != NULL && c->required) {
                s->out.len = row;
                return 0;
            }
            if (!put_raw(&s->out, c->missing, (size_t)c->missing_len)) return -1;
            continue;
        }
        int done = put_value(s, c, v);
        if (done <= 0) {
            s->out.len = row;
            return done;
        }
    }
    return put_raw(&s->out, "\r\n", 2) ? 1 : -1;
}

static int line(Scan *s, const unsigned char *p, const unsigned char *end, Py_ssize_t index) {
    int done = record(s, p, end);
    if (done) return done;
    if (s->n_unsure == s->cap_unsure) {
        size_t cap = s->cap_unsure ? 2 * s->cap_unsure : 256;
        Py_ssize_t *unsure = PyMem_RawRealloc(s->unsure, cap * sizeof(Py_ssize_t));
        if (unsure == NULL) return -1;
        s->unsure = unsure;
        s->cap_unsure = cap;
    }
    s->unsure[s->n_unsure++] = index;
    return 1;
}

/* every line of the buffers: the number of records, -1 out of memory, -2 a line
 * not ended as the docstring says */
static Py_ssize_t scan_all(Scan *s, Py_buffer *views, Py_ssize_t count) {
    Py_ssize_t records = 0;
    size_t skip = 0;
    for (Py_ssize_t b = 0; b < count; b++) {
        const unsigned char *p = (const unsigned char *)views[b].buf + skip;
        const unsigned char *end = (const unsigned char *)views[b].buf + views[b].len;
        skip = 0;
        while (p < end) {
            const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL) {  /* its "\n" starts the next buffer */
                if (b + 1 == count || views[b + 1].len == 0
                    || ((const char *)views[b + 1].buf)[0] != '\n') return -2;
                nl = end;
                skip = 1;
            }
            if (line(s, p, nl, records++) < 0) return -1;
            p = nl + 1;
        }
    }
    return records;
}

static PyObject *plan_encode(Plan *plan, PyObject *buffers) {
    PyObject *seq = PySequence_Fast(buffers, "encode() takes a sequence of buffers");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), held = 0;
    Py_buffer *views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    Scan s = {.plan = plan};
    PyObject *result = NULL;
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held],
                               PyBUF_SIMPLE) < 0) goto done;
    s.leaves = PyMem_RawCalloc((size_t)plan->n_leaves + 1, sizeof(Leaf));
    s.seen = PyMem_RawCalloc((size_t)plan->n_edges + 1, sizeof(uint64_t));
    if (s.leaves == NULL || s.seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t records;
    Py_BEGIN_ALLOW_THREADS
    records = scan_all(&s, views, n);
    Py_END_ALLOW_THREADS
    if (records == -1) {
        PyErr_NoMemory();
        goto done;
    }
    if (records == -2) {
        PyErr_SetString(PyExc_ValueError, "a line is not ended by \\n");
        goto done;
    }
    PyObject *csv = PyBytes_FromStringAndSize(s.out.data ? s.out.data : "",
                                              (Py_ssize_t)s.out.len);
    PyObject *unsure = PyList_New((Py_ssize_t)s.n_unsure);
    if (csv != NULL && unsure != NULL) {
        for (size_t i = 0; i < s.n_unsure; i++) {
            PyObject *index = PyLong_FromSsize_t(s.unsure[i]);
            if (index == NULL) goto built;
            PyList_SET_ITEM(unsure, (Py_ssize_t)i, index);
        }
        result = Py_BuildValue("(OOn)", csv, unsure, records);
    }
built:
    Py_XDECREF(csv);
    Py_XDECREF(unsure);
done:
    for (Py_ssize_t i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_RawFree(s.leaves);
    PyMem_RawFree(s.seen);
    PyMem_RawFree(s.out.data);
    PyMem_RawFree(s.decoded.data);
    PyMem_RawFree(s.unsure);
    Py_DECREF(seq);
    return result;
}

/* ---- the plan from Python ---- */

static void plan_dealloc(Plan *plan) {
    for (int i = 0; i < plan->n_edges; i++) PyMem_Free(plan->edges[i].key);
    for (int i = 0; i < plan->n_columns; i++) PyMem_Free(plan->columns[i].missing);
    PyMem_Free(plan->nodes);
    PyMem_Free(plan->edges);
    PyMem_Free(plan->columns);
    Py_TYPE(plan)->tp_free((PyObject *)plan);
}

static char *copy_bytes(PyObject *bytes, Py_ssize_t *len) {
    char *data;
    if (PyBytes_AsStringAndSize(bytes, &data, len) < 0) return NULL;
    char *copy = PyMem_Malloc((size_t)*len + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, data, (size_t)*len);
    return copy;
}

/* nodes: [(kind, leaf, [(key bytes | index int, child), ...])], the root first;
 * columns: [(op, leaf, required, unit, out, missing cell bytes)] */
static int plan_init(Plan *plan, PyObject *args, PyObject *kwargs) {
    PyObject *nodes, *columns;
    char separator, quote;
    if (!PyArg_ParseTuple(args, "O!O!cc", &PyList_Type, &nodes, &PyList_Type, &columns,
                          &separator, &quote)) return -1;
    if (plan->nodes != NULL) {
        PyErr_SetString(PyExc_TypeError, "a Plan is built once");
        return -1;
    }
    plan->separator = separator;
    plan->quote = quote;
    Py_ssize_t n_nodes = PyList_GET_SIZE(nodes), n_edges = 0;
    if (n_nodes < 1 || n_nodes > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a plan has a root");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        PyObject *node = PyList_GET_ITEM(nodes, i);
        if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) != 3
            || !PyList_Check(PyTuple_GET_ITEM(node, 2))) {
            PyErr_SetString(PyExc_TypeError, "a node is (kind, leaf, edges)");
            return -1;
        }
        n_edges += PyList_GET_SIZE(PyTuple_GET_ITEM(node, 2));
    }
    plan->nodes = PyMem_Calloc((size_t)n_nodes, sizeof(Node));
    plan->edges = PyMem_Calloc((size_t)n_edges + 1, sizeof(Edge));
    plan->columns = PyMem_Calloc((size_t)PyList_GET_SIZE(columns) + 1, sizeof(Column));
    if (!plan->nodes || !plan->edges || !plan->columns) {
        PyErr_NoMemory();
        return -1;
    }
    plan->n_nodes = (int)n_nodes;
    int edge = 0, leaves = 0;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        PyObject *node = PyList_GET_ITEM(nodes, i), *edges = PyTuple_GET_ITEM(node, 2);
        Node *out = &plan->nodes[i];
        out->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(node, 0));
        out->leaf = (int)PyLong_AsLong(PyTuple_GET_ITEM(node, 1));
        if (PyErr_Occurred()) return -1;
        if (out->kind < NODE_OBJECT || out->kind > NODE_LEAF
            || (out->kind == NODE_LEAF && out->leaf < 0)) {
            PyErr_SetString(PyExc_ValueError, "a node's kind or leaf");
            return -1;
        }
        if (out->kind == NODE_LEAF && out->leaf >= leaves) leaves = out->leaf + 1;
        out->first = edge;
        out->count = (int)PyList_GET_SIZE(edges);
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(edges); k++, edge++) {
            PyObject *pair = PyList_GET_ITEM(edges, k);
            Edge *e = &plan->edges[edge];
            plan->n_edges = edge + 1;
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "an edge is (key or index, child)");
                return -1;
            }
            PyObject *step = PyTuple_GET_ITEM(pair, 0);
            if (PyBytes_Check(step)) {
                if (out->kind != NODE_OBJECT) goto kind;
                e->key = copy_bytes(step, &e->len);
                if (e->key == NULL) return -1;
            } else {
                if (out->kind != NODE_ARRAY) goto kind;
                e->len = PyLong_AsSsize_t(step);
            }
            long child = PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
            if (PyErr_Occurred()) return -1;
            if (child <= i || child >= n_nodes || e->len < 0) {
                PyErr_SetString(PyExc_ValueError, "an edge's child or index");
                return -1;
            }
            e->child = (int)child;
        }
        continue;
    kind:
        PyErr_SetString(PyExc_ValueError, "keys belong to objects, indexes to arrays");
        return -1;
    }
    if (plan->nodes[0].kind != NODE_OBJECT) {
        PyErr_SetString(PyExc_ValueError, "the root is an object");
        return -1;
    }
    plan->n_leaves = leaves;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(columns); i++) {
        Column *c = &plan->columns[i];
        PyObject *missing;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(columns, i), "iipiiO!", &c->op, &c->leaf,
                              &c->required, &c->unit, &c->out, &PyBytes_Type, &missing))
            return -1;
        plan->n_columns = (int)i + 1;
        c->missing = copy_bytes(missing, &c->missing_len);
        if (c->missing == NULL) return -1;
        if (c->op < OP_CONSTANT || c->op > OP_EPOCH || c->unit < 0 || c->unit > 9
            || c->out < OUT_ISO || c->out > 9
            || (c->op != OP_CONSTANT && (c->leaf < 0 || c->leaf >= leaves))) {
            PyErr_SetString(PyExc_ValueError, "a column's op, leaf or units");
            return -1;
        }
    }
    return 0;
}

static PyMethodDef plan_methods[] = {
    {"encode", (PyCFunction)plan_encode, METH_O,
     "encode(buffers) -> (csv, unsure, records): the CSV rows of the records whose\n"
     "cells are proven, in order; the indexes of the others; the records seen."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streamer.mapping._typed.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)plan_init,
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_methods = plan_methods,
    .tp_doc = "Plan(nodes, columns, separator, quote): see mapping/typed_c.py",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_typed", NULL, 0, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__typed(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
