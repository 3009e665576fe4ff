/* The column mapping's timestamp conversions as DuckDB scalar functions (issue #18):
   a DuckDB extension of the stable C extension API (ABI C_STRUCT, C API v1.2.0),
   built by setup.py into streamer/mapping/streamer_ts.duckdb_extension with DuckDB's
   metadata footer appended (DuckDB takes the entry point's name, streamer_ts_init_c_api,
   from the file's).  Loaded only by mapping/c_functions.py, on the native encoder's
   own in-memory connection; the typed query uses these functions when they loaded
   and passed its self-check, and its SQL otherwise (mapping/sql_typed.py): the
   same bytes either way (tests/unit/mapping/).

   The duckdb wheel ships no duckdb.h: the few types used are declared here as
   duckdb.h declares them, and the functions are taken from the API struct that
   get_api returns for the stable C API v1.2.0, by their position in it.  Checked
   against DuckDB 2.0 (c_functions.CHECKED_DUCKDB: outside that range the file is
   not loaded, and a test fails).

   streamer_iso_us(VARCHAR) -> BIGINT: sql_typed.FAST_ISO's form with a real date,
   as epoch microseconds (fraction digits past 6 dropped, as DuckDB's TIMESTAMPTZ
   cast drops them); NULL otherwise.
   streamer_iso_epoch_s / _ms / _us(VARCHAR) -> VARCHAR: the same, in years 1-9999
   (timestamps.MIN_NS <= t < END_NS), as the text of the epoch in that unit
   rounded down; NULL otherwise.
   streamer_epoch_s_iso(VARCHAR) -> VARCHAR: the canonical text of an integer in
   [-62135596800, 253402300800) (years 1-9999) as YYYY-MM-DDTHH:MM:SSZ; NULL
   otherwise. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t idx_t;
typedef struct { void *internal_ptr; } *duckdb_connection;
typedef struct { void *internal_ptr; } *duckdb_database;
typedef void *duckdb_scalar_function;
typedef void *duckdb_logical_type;
typedef void *duckdb_function_info;
typedef void *duckdb_data_chunk;
typedef void *duckdb_vector;
typedef void *duckdb_extension_info;
typedef struct {
    union {
        struct { uint32_t length; char prefix[4]; char *ptr; } pointer;
        struct { uint32_t length; char inlined[12]; } inlined;
    } value;
} duckdb_string_t;
struct duckdb_extension_access {
    void (*set_error)(duckdb_extension_info info, const char *error);
    duckdb_database *(*get_database)(duckdb_extension_info info);
    const void *(*get_api)(duckdb_extension_info info, const char *version);
};
enum { T_BIGINT = 5, T_VARCHAR = 17 };  /* duckdb_type */

/* positions of the functions used in the C API struct that get_api(info, "v1.2.0")
   returns (function pointers; the stable v1.2.0 struct's order, as DuckDB 2.0.1's
   build fills it: tests/unit/mapping/test_c_functions.py names each position's
   function by its symbol) */
enum {
    API_CONNECT = 3, API_DISCONNECT = 6, API_CREATE_LOGICAL_TYPE = 156,
    API_DESTROY_LOGICAL_TYPE = 184, API_DATA_CHUNK_GET_VECTOR = 190,
    API_DATA_CHUNK_GET_SIZE = 191, API_VECTOR_GET_DATA = 194, API_VECTOR_GET_VALIDITY = 195,
    API_VECTOR_ENSURE_VALIDITY_WRITABLE = 196, API_VECTOR_ASSIGN_STRING_ELEMENT_LEN = 198,
    API_CREATE_SCALAR_FUNCTION = 209, API_DESTROY_SCALAR_FUNCTION = 210,
    API_SCALAR_FUNCTION_SET_NAME = 211, API_SCALAR_FUNCTION_ADD_PARAMETER = 215,
    API_SCALAR_FUNCTION_SET_RETURN_TYPE = 216, API_SCALAR_FUNCTION_SET_FUNCTION = 218,
    API_REGISTER_SCALAR_FUNCTION = 219,
};

typedef void (*scalar_fn)(duckdb_function_info, duckdb_data_chunk, duckdb_vector);
/* set once by the entry point (the same values at every load) */
static struct {
    int (*connect)(duckdb_database, duckdb_connection *);
    void (*disconnect)(duckdb_connection *);
    duckdb_logical_type (*create_type)(int);
    void (*destroy_type)(duckdb_logical_type *);
    duckdb_vector (*chunk_vector)(duckdb_data_chunk, idx_t);
    idx_t (*chunk_size)(duckdb_data_chunk);
    void *(*vector_data)(duckdb_vector);
    uint64_t *(*vector_validity)(duckdb_vector);
    void (*ensure_validity)(duckdb_vector);
    void (*assign_len)(duckdb_vector, idx_t, const char *, idx_t);
    duckdb_scalar_function (*create_fn)(void);
    void (*destroy_fn)(duckdb_scalar_function *);
    void (*set_name)(duckdb_scalar_function, const char *);
    void (*add_param)(duckdb_scalar_function, duckdb_logical_type);
    void (*set_return)(duckdb_scalar_function, duckdb_logical_type);
    void (*set_function)(duckdb_scalar_function, scalar_fn);
    int (*register_fn)(duckdb_connection, duckdb_scalar_function);
} api;

/* years 1-9999, as timestamps.MIN_NS / END_NS */
#define MIN_S (-62135596800LL)
#define END_S 253402300800LL

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
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

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 1 and *out for the canonical text of an integer in [lo, hi) (no sign but `-`,
   no leading zero, no `-0`), else 0 */
static int canonical_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out) {
    size_t i = 0;
    int neg = 0;
    if (n == 0 || n > 19) return 0;
    if (s[0] == '-') { neg = 1; i = 1; if (n == 1) return 0; }
    if (s[i] == '0' && (n > i + 1 || neg)) return 0;
    int64_t v = 0;
    for (; i < n; i++) {
        unsigned c = (unsigned)(s[i] - '0');
        if (c > 9) return 0;
        v = v * 10 + c;
    }
    if (neg) v = -v;
    if (v < lo || v >= hi) return 0;
    *out = v;
    return 1;
}

static void put2(char *p, int v) { p[0] = (char)('0' + v / 10); p[1] = (char)('0' + v % 10); }

static inline int d2(const char *s) {
    unsigned a = (unsigned)(s[0] - '0'), b = (unsigned)(s[1] - '0');
    return (a > 9 || b > 9) ? -1 : (int)(a * 10 + b);
}

static const int MDAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* 1 and *us on FAST_ISO's form (YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM],
   hours 00-23, zone hours 00-23) with a real date, else 0 */
static int iso_us(const char *s, size_t n, int64_t *us) {
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
            if (digits < 6) frac = frac * 10 + (s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0) return 0;
        for (int k = digits; k < 6; k++) frac *= 10;
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
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mi * 60 + ss - offset;
    *us = secs * 1000000 + frac;
    return 1;
}

static inline const char *text_of(duckdb_string_t *t, uint32_t *len) {
    *len = t->value.inlined.length;
    return *len <= 12 ? t->value.inlined.inlined : t->value.pointer.ptr;
}

static inline int is_valid(const uint64_t *validity, idx_t r) {
    return !validity || (validity[r / 64] >> (r % 64) & 1);
}

static inline void set_null(uint64_t *validity, idx_t r) {
    validity[r / 64] &= ~(1ULL << (r % 64));
}

static void iso_us_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    idx_t rows = api.chunk_size(input);
    duckdb_vector in = api.chunk_vector(input, 0);
    duckdb_string_t *texts = api.vector_data(in);
    uint64_t *in_valid = api.vector_validity(in);
    int64_t *out = api.vector_data(output);
    api.ensure_validity(output);
    uint64_t *valid = api.vector_validity(output);
    for (idx_t r = 0; r < rows; r++) {
        uint32_t len;
        if (!is_valid(in_valid, r)) { set_null(valid, r); continue; }
        const char *p = text_of(&texts[r], &len);
        if (!iso_us(p, len, &out[r])) set_null(valid, r);
    }
}

/* the decimal text of v into buf (at least 20 bytes): its length */
static int int_text(int64_t v, char *buf) {
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

static void iso_epoch(duckdb_data_chunk input, duckdb_vector output, int64_t per_unit) {
    idx_t rows = api.chunk_size(input);
    duckdb_vector in = api.chunk_vector(input, 0);
    duckdb_string_t *texts = api.vector_data(in);
    uint64_t *in_valid = api.vector_validity(in);
    api.ensure_validity(output);
    uint64_t *valid = api.vector_validity(output);
    char buf[24];
    for (idx_t r = 0; r < rows; r++) {
        uint32_t len;
        int64_t us;
        if (!is_valid(in_valid, r)) { set_null(valid, r); continue; }
        const char *p = text_of(&texts[r], &len);
        if (!iso_us(p, len, &us) || us < MIN_S * 1000000 || us >= END_S * 1000000) {
            set_null(valid, r);
            continue;
        }
        api.assign_len(output, r, buf, (idx_t)int_text(floor_div(us, per_unit), buf));
    }
}

static void iso_epoch_s_fn(duckdb_function_info info, duckdb_data_chunk input,
                           duckdb_vector output) {
    iso_epoch(input, output, 1000000);
}

static void iso_epoch_ms_fn(duckdb_function_info info, duckdb_data_chunk input,
                            duckdb_vector output) {
    iso_epoch(input, output, 1000);
}

static void iso_epoch_us_fn(duckdb_function_info info, duckdb_data_chunk input,
                            duckdb_vector output) {
    iso_epoch(input, output, 1);
}

static void epoch_s_iso_fn(duckdb_function_info info, duckdb_data_chunk input,
                           duckdb_vector output) {
    idx_t rows = api.chunk_size(input);
    duckdb_vector in = api.chunk_vector(input, 0);
    duckdb_string_t *texts = api.vector_data(in);
    uint64_t *in_valid = api.vector_validity(in);
    api.ensure_validity(output);
    uint64_t *valid = api.vector_validity(output);
    char buf[20];
    for (idx_t r = 0; r < rows; r++) {
        uint32_t len;
        int64_t v, y;
        int m, d;
        if (!is_valid(in_valid, r)) { set_null(valid, r); continue; }
        const char *p = text_of(&texts[r], &len);
        if (!canonical_int(p, len, MIN_S, END_S, &v)) { set_null(valid, r); continue; }
        int64_t days = floor_div(v, 86400), sod = v - days * 86400;
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
        buf[19] = 'Z';
        api.assign_len(output, r, buf, 20);
    }
}

static int add(duckdb_database db, const char *name, int returns, scalar_fn fn) {
    duckdb_connection con;
    if (api.connect(db, &con) != 0) return 0;
    duckdb_scalar_function f = api.create_fn();
    duckdb_logical_type text = api.create_type(T_VARCHAR), out = api.create_type(returns);
    api.set_name(f, name);
    api.add_param(f, text);
    api.set_return(f, out);
    api.set_function(f, fn);
    int rc = api.register_fn(con, f);
    api.destroy_type(&text);
    api.destroy_type(&out);
    api.destroy_fn(&f);
    api.disconnect(&con);
    return rc == 0;
}

#define TAKE(field, position) (*(void **)&api.field = slots[position])

bool streamer_ts_init_c_api(duckdb_extension_info info, struct duckdb_extension_access *access) {
    void *const *slots = access->get_api(info, "v1.2.0");
    if (!slots) return false;  /* get_api has set the error */
    TAKE(connect, API_CONNECT);
    TAKE(disconnect, API_DISCONNECT);
    TAKE(create_type, API_CREATE_LOGICAL_TYPE);
    TAKE(destroy_type, API_DESTROY_LOGICAL_TYPE);
    TAKE(chunk_vector, API_DATA_CHUNK_GET_VECTOR);
    TAKE(chunk_size, API_DATA_CHUNK_GET_SIZE);
    TAKE(vector_data, API_VECTOR_GET_DATA);
    TAKE(vector_validity, API_VECTOR_GET_VALIDITY);
    TAKE(ensure_validity, API_VECTOR_ENSURE_VALIDITY_WRITABLE);
    TAKE(assign_len, API_VECTOR_ASSIGN_STRING_ELEMENT_LEN);
    TAKE(create_fn, API_CREATE_SCALAR_FUNCTION);
    TAKE(destroy_fn, API_DESTROY_SCALAR_FUNCTION);
    TAKE(set_name, API_SCALAR_FUNCTION_SET_NAME);
    TAKE(add_param, API_SCALAR_FUNCTION_ADD_PARAMETER);
    TAKE(set_return, API_SCALAR_FUNCTION_SET_RETURN_TYPE);
    TAKE(set_function, API_SCALAR_FUNCTION_SET_FUNCTION);
    TAKE(register_fn, API_REGISTER_SCALAR_FUNCTION);
    duckdb_database db = *access->get_database(info);
    if (!add(db, "streamer_iso_us", T_BIGINT, iso_us_fn)
        || !add(db, "streamer_iso_epoch_s", T_VARCHAR, iso_epoch_s_fn)
        || !add(db, "streamer_iso_epoch_ms", T_VARCHAR, iso_epoch_ms_fn)
        || !add(db, "streamer_iso_epoch_us", T_VARCHAR, iso_epoch_us_fn)
        || !add(db, "streamer_epoch_s_iso", T_VARCHAR, epoch_s_iso_fn)) {
        access->set_error(info, "streamer_ts: a function could not be registered");
        return false;
    }
    return true;
}
