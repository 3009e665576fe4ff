/* bench.mapped_c_timestamps (issue #18): the mapped query's two timestamp
   conversions as DuckDB scalar functions in C, to measure what they would save.
   Not in the product: a DuckDB extension of the C API (ABI C_STRUCT), loaded with
   allow_unsigned_extensions from a file named streamer_ts.duckdb_extension (its
   entry point: streamer_ts_init_c_api) with DuckDB's metadata footer appended.
   The C API is taken from the module that loads us (dladdr of the access
   struct's get_api, then dlsym): the duckdb wheel ships no duckdb.h, so the few
   types used here are declared below as DuckDB 1.2-2.0's duckdb.h declares them.

   streamer_iso_us(VARCHAR) -> BIGINT: mapping.sql_typed.FAST_ISO's form with a
   real date, as epoch microseconds (fraction digits past 6 dropped, as DuckDB's
   TIMESTAMPTZ cast drops them); NULL otherwise.
   streamer_epoch_s_iso(VARCHAR) -> VARCHAR: the canonical text of an integer in
   [-62135596800, 253402300800) (years 1-9999) as YYYY-MM-DDTHH:MM:SSZ; NULL
   otherwise. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t idx_t;
typedef void *duckdb_database_p;
typedef struct { void *internal_ptr; } *duckdb_connection;
typedef void *duckdb_database;
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
enum { T_BIGINT = 5, T_VARCHAR = 17 };

static int (*p_connect)(duckdb_database, duckdb_connection *);
static void (*p_disconnect)(duckdb_connection *);
static duckdb_scalar_function (*p_create_fn)(void);
static void (*p_set_name)(duckdb_scalar_function, const char *);
static duckdb_logical_type (*p_create_type)(int);
static void (*p_add_param)(duckdb_scalar_function, duckdb_logical_type);
static void (*p_set_return)(duckdb_scalar_function, duckdb_logical_type);
static void (*p_set_function)(duckdb_scalar_function, void (*)(duckdb_function_info, duckdb_data_chunk, duckdb_vector));
static int (*p_register)(duckdb_connection, duckdb_scalar_function);
static void (*p_destroy_fn)(duckdb_scalar_function *);
static void (*p_destroy_type)(duckdb_logical_type *);
static idx_t (*p_chunk_size)(duckdb_data_chunk);
static duckdb_vector (*p_chunk_vector)(duckdb_data_chunk, idx_t);
static void *(*p_vector_data)(duckdb_vector);
static uint64_t *(*p_vector_validity)(duckdb_vector);
static void (*p_ensure_validity)(duckdb_vector);
static void (*p_assign_len)(duckdb_vector, idx_t, const char *, idx_t);

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
/* the canonical text of an integer in [lo, hi) */
static int canonical_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out) {
    size_t i = 0; int neg = 0;
    if (n == 0 || n > 19) return 0;
    if (s[0] == '-') { neg = 1; i = 1; if (n == 1) return 0; }
    if (s[i] == '0' && n > i + 1) return 0;
    if (neg && s[i] == '0') return 0;
    int64_t v = 0;
    for (; i < n; i++) { unsigned c = (unsigned)(s[i] - '0'); if (c > 9) return 0; v = v * 10 + c; }
    if (neg) v = -v;
    if (v < lo || v >= hi) return 0;
    *out = v; return 1;
}
static void put2(char *p, int v) { p[0] = (char)('0' + v / 10); p[1] = (char)('0' + v % 10); }
static void epoch_s_iso_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    idx_t rows = p_chunk_size(input);
    duckdb_vector in = p_chunk_vector(input, 0);
    duckdb_string_t *texts = p_vector_data(in);
    uint64_t *in_valid = p_vector_validity(in);
    p_ensure_validity(output);
    uint64_t *valid = p_vector_validity(output);
    char buf[20];
    for (idx_t r = 0; r < rows; r++) {
        if (in_valid && !(in_valid[r / 64] >> (r % 64) & 1)) { valid[r / 64] &= ~(1ULL << (r % 64)); continue; }
        duckdb_string_t *t = &texts[r];
        uint32_t len = t->value.inlined.length;
        const char *p = len <= 12 ? t->value.inlined.inlined : t->value.pointer.ptr;
        int64_t v;
        if (!canonical_int(p, len, -62135596800LL, 253402300800LL, &v)) { valid[r / 64] &= ~(1ULL << (r % 64)); continue; }
        int64_t days = (v >= 0 ? v : v - 86399) / 86400, sod = v - days * 86400, y; int m, d;
        civil_from_days(days, &y, &m, &d);
        put2(buf, (int)(y / 100)); put2(buf + 2, (int)(y % 100)); buf[4] = '-'; put2(buf + 5, m); buf[7] = '-';
        put2(buf + 8, d); buf[10] = 'T'; put2(buf + 11, (int)(sod / 3600)); buf[13] = ':';
        put2(buf + 14, (int)(sod / 60 % 60)); buf[16] = ':'; put2(buf + 17, (int)(sod % 60)); buf[19] = 'Z';
        p_assign_len(output, r, buf, 20);
    }
}

static inline int d2(const char *s) {
    unsigned a = (unsigned)(s[0] - '0'), b = (unsigned)(s[1] - '0');
    return (a > 9 || b > 9) ? -1 : (int)(a * 10 + b);
}
static const int MDAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 1 and *us on the FAST_ISO form with a valid date, else 0 */
static int iso_us(const char *s, size_t n, int64_t *us) {
    if (n < 19) return 0;
    int y1 = d2(s), y2 = d2(s + 2);
    if (y1 < 0 || y2 < 0 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':') return 0;
    int year = y1 * 100 + y2, mon = d2(s + 5), day = d2(s + 8);
    int hh = d2(s + 11), mi = d2(s + 14), ss = d2(s + 17);
    if (mon < 1 || mon > 12 || day < 1 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > MDAYS[mon - 1] + (mon == 2 && leap)) return 0;
    size_t i = 19;
    int64_t frac = 0; int digits = 0;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && (unsigned)(s[i] - '0') <= 9 && digits < 9) {
            if (digits < 6) frac = frac * 10 + (s[i] - '0');
            digits++; i++;
        }
        if (digits == 0) return 0;
        for (int k = digits; k < 6; k++) frac *= 10;
    }
    int64_t offset = 0;
    if (i < n) {
        if (s[i] == 'Z') i++;
        else if (s[i] == '+' || s[i] == '-') {
            if (n - i != 6 || s[i + 3] != ':') return 0;
            int oh = d2(s + i + 1), om = d2(s + i + 4);
            if (oh < 0 || oh > 23 || om < 0 || om > 59) return 0;
            offset = (oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);
            i += 6;
        } else return 0;
    }
    if (i != n) return 0;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mi * 60 + ss - offset;
    *us = secs * 1000000 + frac;
    return 1;
}

static void iso_us_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    idx_t rows = p_chunk_size(input);
    duckdb_vector in = p_chunk_vector(input, 0);
    duckdb_string_t *texts = p_vector_data(in);
    uint64_t *in_valid = p_vector_validity(in);
    int64_t *out = p_vector_data(output);
    p_ensure_validity(output);
    uint64_t *valid = p_vector_validity(output);
    for (idx_t r = 0; r < rows; r++) {
        if (in_valid && !(in_valid[r / 64] >> (r % 64) & 1)) { valid[r / 64] &= ~(1ULL << (r % 64)); continue; }
        duckdb_string_t *t = &texts[r];
        uint32_t len = t->value.inlined.length;
        const char *p = len <= 12 ? t->value.inlined.inlined : t->value.pointer.ptr;
        if (!iso_us(p, len, &out[r])) valid[r / 64] &= ~(1ULL << (r % 64));
    }
}

#define RESOLVE(var, name) do { *(void **)&var = dlsym(h, name); if (!var) { access->set_error(info, name); return false; } } while (0)

bool streamer_ts_init_c_api(duckdb_extension_info info, struct duckdb_extension_access *access) {
    Dl_info where;
    if (!dladdr((void *)access->get_api, &where)) { access->set_error(info, "dladdr"); return false; }
    void *h = dlopen(where.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
    if (!h) { access->set_error(info, "dlopen"); return false; }
    RESOLVE(p_connect, "duckdb_connect"); RESOLVE(p_disconnect, "duckdb_disconnect");
    RESOLVE(p_create_fn, "duckdb_create_scalar_function");
    RESOLVE(p_set_name, "duckdb_scalar_function_set_name");
    RESOLVE(p_create_type, "duckdb_create_logical_type");
    RESOLVE(p_add_param, "duckdb_scalar_function_add_parameter");
    RESOLVE(p_set_return, "duckdb_scalar_function_set_return_type");
    RESOLVE(p_set_function, "duckdb_scalar_function_set_function");
    RESOLVE(p_register, "duckdb_register_scalar_function");
    RESOLVE(p_destroy_fn, "duckdb_destroy_scalar_function");
    RESOLVE(p_destroy_type, "duckdb_destroy_logical_type");
    RESOLVE(p_chunk_size, "duckdb_data_chunk_get_size");
    RESOLVE(p_chunk_vector, "duckdb_data_chunk_get_vector");
    RESOLVE(p_vector_data, "duckdb_vector_get_data");
    RESOLVE(p_vector_validity, "duckdb_vector_get_validity");
    RESOLVE(p_ensure_validity, "duckdb_vector_ensure_validity_writable");
    RESOLVE(p_assign_len, "duckdb_vector_assign_string_element_len");
    duckdb_database *db = access->get_database(info);
    duckdb_connection con;
    if (p_connect(*db, &con) != 0) { access->set_error(info, "connect"); return false; }
    duckdb_scalar_function f = p_create_fn();
    p_set_name(f, "streamer_iso_us");
    duckdb_logical_type v = p_create_type(T_VARCHAR), b = p_create_type(T_BIGINT);
    p_add_param(f, v); p_set_return(f, b);
    p_set_function(f, iso_us_fn);
    int rc = p_register(con, f);
    p_destroy_type(&v); p_destroy_type(&b); p_destroy_fn(&f); p_disconnect(&con);
    if (rc != 0) { access->set_error(info, "register"); return false; }
    p_connect(*db, &con);
    f = p_create_fn();
    p_set_name(f, "streamer_epoch_s_iso");
    v = p_create_type(T_VARCHAR);
    p_add_param(f, v); p_set_return(f, v);
    p_set_function(f, epoch_s_iso_fn);
    rc = p_register(con, f);
    p_destroy_type(&v); p_destroy_fn(&f); p_disconnect(&con);
    if (rc != 0) { access->set_error(info, "register"); return false; }
    return true;
}
