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

#include "timestamp_text.h"

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

/* one VARCHAR argument's texts and the output's validity, for a chunk */
typedef struct {
    idx_t rows;
    duckdb_string_t *texts;
    uint64_t *in_valid, *valid;
} Chunk;

static Chunk chunk_of(duckdb_data_chunk input, duckdb_vector output) {
    Chunk c;
    duckdb_vector in = api.chunk_vector(input, 0);
    c.rows = api.chunk_size(input);
    c.texts = api.vector_data(in);
    c.in_valid = api.vector_validity(in);
    api.ensure_validity(output);
    c.valid = api.vector_validity(output);
    return c;
}

/* the text of row r, NULL (the output's row set to NULL) when it is NULL */
static inline const char *text_at(const Chunk *c, idx_t r, uint32_t *len) {
    if (!is_valid(c->in_valid, r)) {
        set_null(c->valid, r);
        return NULL;
    }
    return text_of(&c->texts[r], len);
}

static void iso_us_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    Chunk c = chunk_of(input, output);
    int64_t *out = api.vector_data(output);
    for (idx_t r = 0; r < c.rows; r++) {
        uint32_t len;
        const char *p = text_at(&c, r, &len);
        if (p && !iso_us(p, len, &out[r])) set_null(c.valid, r);
    }
}

static void iso_epoch(duckdb_data_chunk input, duckdb_vector output, int64_t per_unit) {
    Chunk c = chunk_of(input, output);
    char buf[24];
    for (idx_t r = 0; r < c.rows; r++) {
        uint32_t len;
        int64_t us;
        const char *p = text_at(&c, r, &len);
        if (!p) continue;
        if (!iso_us(p, len, &us) || us < MIN_S * 1000000 || us >= END_S * 1000000) {
            set_null(c.valid, r);
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
    Chunk c = chunk_of(input, output);
    char buf[20];
    for (idx_t r = 0; r < c.rows; r++) {
        uint32_t len;
        int64_t v;
        const char *p = text_at(&c, r, &len);
        if (!p) continue;
        if (!canonical_int(p, len, MIN_S, END_S, &v)) {
            set_null(c.valid, r);
            continue;
        }
        iso_seconds_text(v, buf);
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
