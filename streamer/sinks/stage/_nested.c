/* One pass over a batch's NDJSON bytes that proves DuckDB writes every nested
 * value (an object or array inside a record) as the per-record encoder does, so
 * that the native query may run without its nested checks
 * (streamer/sinks/stage/nested_scan.py says what is proven and why).
 *
 * clean(buffers) -> bool: True when proven; False means "maybe" (the query then
 * runs the SQL checks, streamer_nested_differs in csv_native.py).  Each buffer
 * holds whole lines.  The scan never assumes valid JSON: any byte it does not
 * expect answers False, and it reads no byte outside a buffer.  The GIL is
 * released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* deeper than this (orjson refuses past 1024): "maybe" */
#define MAX_DEPTH 2048
/* an object with at most this many keys is checked pair by pair */
#define PAIRWISE_MAX 16

typedef struct {
    const unsigned char *start;
    size_t len;
} Key;

typedef struct {
    Key *keys;          /* the keys of every open object below the top level */
    size_t count, capacity;
    uint32_t *table;    /* open addressing, for objects of many keys */
    size_t table_size;
    size_t opened[MAX_DEPTH];  /* for each open container: its first key's index */
    unsigned char kind[MAX_DEPTH];  /* '{' or '[' */
} Scan;

static int push_key(Scan *s, const unsigned char *start, size_t len) {
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? 2 * s->capacity : 256;
        Key *keys = PyMem_RawRealloc(s->keys, capacity * sizeof(Key));
        if (keys == NULL) return 0;
        s->keys = keys;
        s->capacity = capacity;
    }
    s->keys[s->count].start = start;
    s->keys[s->count].len = len;
    s->count++;
    return 1;
}

static int same_key(const Key *a, const Key *b) {
    return a->len == b->len && memcmp(a->start, b->start, a->len) == 0;
}

static uint64_t key_hash(const Key *k) {
    uint64_t h = 1469598103934665603ULL ^ k->len;
    for (size_t i = 0; i < k->len; i++) h = (h ^ k->start[i]) * 1099511628211ULL;
    return h;
}

/* 1: the keys [first, count) are distinct; 0: one repeats; -1: out of memory */
static int distinct(Scan *s, size_t first) {
    size_t n = s->count - first;
    Key *keys = s->keys + first;
    if (n <= PAIRWISE_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (same_key(&keys[i], &keys[j])) return 0;
        return 1;
    }
    size_t size = 64;
    while (size < 2 * n) size *= 2;
    if (size > s->table_size) {
        uint32_t *table = PyMem_RawRealloc(s->table, size * sizeof(uint32_t));
        if (table == NULL) return -1;
        s->table = table;
        s->table_size = size;
    }
    if (n >= UINT32_MAX) return -1;
    memset(s->table, 0xff, size * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        size_t slot = (size_t)key_hash(&keys[i]) & (size - 1);
        while (s->table[slot] != UINT32_MAX) {
            if (same_key(&keys[s->table[slot]], &keys[i])) return 0;
            slot = (slot + 1) & (size - 1);
        }
        s->table[slot] = (uint32_t)i;
    }
    return 1;
}

/* The end of the string whose opening quote is at p[-1]: the closing quote's
 * address, or NULL when the string is not closed in the buffer or holds a byte
 * below 0x20 (never in valid JSON, which escapes it).  *escaped tells whether
 * it holds a backslash; *control whether, below the top level, it holds a
 * \u00XX escape of a control character (yyjson writes upper-case hex). */
static const unsigned char *string_end(const unsigned char *p, const unsigned char *end,
                                       int *escaped, int *control) {
    for (;;) {
#if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
        const __m128i below = _mm_set1_epi8(0x1f);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, below), v));
            int mask = _mm_movemask_epi8(hit);
            if (mask) {
                p += __builtin_ctz((unsigned)mask);
                goto special;
            }
            p += 16;
        }
#endif
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20) p++;
#if defined(__SSE2__)
    special:
#endif
        if (p >= end || *p < 0x20) return NULL;
        if (*p == '"') return p;
        /* a backslash */
        *escaped = 1;
        if (end - p < 2) return NULL;
        if (p[1] == 'u') {
            if (end - p < 6) return NULL;
            if (p[2] == '0' && p[3] == '0' && (p[4] == '0' || p[4] == '1')) *control = 1;
            p += 6;
        } else {
            p += 2;
        }
    }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Whether a number below the top level, starting at *pp, is one both write
 * alike: an integer of at most 18 digits (not -0), or a fraction without an
 * exponent, of 1e-5 or more (its fraction not starting with five zeros when the
 * integer part is 0) and below 1e15 (at most 15 integer digits).  *pp moves past
 * the number. */
static int number_alike(const unsigned char **pp, const unsigned char *end) {
    const unsigned char *p = *pp;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    const unsigned char *digits = p;
    while (p < end && is_digit(*p)) p++;
    size_t whole = (size_t)(p - digits);
    int alike = whole > 0;
    if (p < end && *p == '.') {
        p++;
        const unsigned char *fraction = p;
        while (p < end && is_digit(*p)) p++;
        if (p == fraction || whole > 15) alike = 0;
        if (whole == 1 && digits[0] == '0') {
            size_t zeros = 0;
            while (fraction + zeros < p && fraction[zeros] == '0') zeros++;
            if (zeros >= 5) alike = 0;
        }
    } else if (whole > 18 || (negative && whole == 1 && digits[0] == '0')) {
        alike = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        alike = 0;
        p++;
        while (p < end && (*p == '+' || *p == '-' || is_digit(*p))) p++;
    }
    *pp = p;
    return alike;
}

/* 1: proven; 0: maybe; -1: out of memory */
static int scan_buffer(Scan *s, const unsigned char *p, const unsigned char *end) {
    size_t depth = 0;  /* open containers; the record itself is depth 1 */
    int expect_key = 0;
    s->count = 0;
    while (p < end) {
        unsigned char c = *p;
        switch (c) {
        case ' ': case '\t': case '\r': case '\n': case ',':
            if (c == ',' && depth && s->kind[depth - 1] == '{') expect_key = 1;
            p++;
            break;
        case ':':
            expect_key = 0;
            p++;
            break;
        case '{': case '[':
            if (depth == MAX_DEPTH) return 0;
            s->kind[depth] = c;
            s->opened[depth] = s->count;
            depth++;
            expect_key = c == '{';
            p++;
            break;
        case '}': case ']':
            if (depth == 0 || s->kind[depth - 1] != (c == '}' ? '{' : '[')) return 0;
            depth--;
            if (c == '}' && depth >= 1) {
                int result = distinct(s, s->opened[depth]);
                if (result <= 0) return result;
                s->count = s->opened[depth];
            }
            expect_key = 0;
            p++;
            break;
        case '"': {
            int escaped = 0, control = 0;
            const unsigned char *close = string_end(p + 1, end, &escaped, &control);
            if (close == NULL) return 0;
            if (depth >= 2) {
                if (control) return 0;
                if (expect_key && s->kind[depth - 1] == '{') {
                    /* keys are compared as bytes: an escape may spell a key
                     * another way ("\u0061" is "a") */
                    if (escaped) return 0;
                    if (!push_key(s, p + 1, (size_t)(close - p - 1))) return -1;
                }
            }
            p = close + 1;
            break;
        }
        case 't': case 'f': case 'n':
            while (p < end && *p >= 'a' && *p <= 'z') p++;
            break;
        default:
            if (c == '-' || is_digit(c)) {
                if (!number_alike(&p, end) && depth >= 2) return 0;
                break;
            }
            return 0;
        }
    }
    return depth == 0;
}

static PyObject *clean(PyObject *module, PyObject *buffers) {
    PyObject *seq = PySequence_Fast(buffers, "clean() takes a sequence of buffers");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    if (views == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t held = 0;
    for (; held < n; held++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held],
                               PyBUF_SIMPLE) < 0) break;
    }
    int result = -2;
    if (held == n) {
        Scan *s = PyMem_RawCalloc(1, sizeof(Scan));
        if (s == NULL) {
            result = -1;
        } else {
            Py_BEGIN_ALLOW_THREADS
            result = 1;
            for (Py_ssize_t i = 0; i < n && result == 1; i++) {
                const unsigned char *start = views[i].buf;
                result = scan_buffer(s, start, start + views[i].len);
            }
            Py_END_ALLOW_THREADS
            PyMem_RawFree(s->keys);
            PyMem_RawFree(s->table);
            PyMem_RawFree(s);
        }
    }
    for (Py_ssize_t i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    Py_DECREF(seq);
    if (result == -2) return NULL;  /* not a buffer: its TypeError */
    if (result == -1) return PyErr_NoMemory();
    return PyBool_FromLong(result);
}

static PyMethodDef methods[] = {
    {"clean", clean, METH_O,
     "clean(buffers) -> bool: True when every nested value of these NDJSON lines is\n"
     "proven to be written alike by DuckDB and the per-record encoder."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_nested", NULL, 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__nested(void) { return PyModule_Create(&module); }
