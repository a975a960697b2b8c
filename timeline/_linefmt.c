/* timeline._linefmt: timeline.lines.LineFormatter.lines, in C.
 *
 * Optional speed-up (built by setup.py where a C compiler is available). For the timeline's
 * rows without --since/--until/--evidence-only, LineFormatter.lines first calls
 *
 *   record_lines(ctx, record)
 *
 * which returns the record's lines, byte for byte what the Python method makes, or None for
 * anything it does not handle (a value that is not a str, an exact int, a bool or None; text
 * holding lone surrogates; a year outside 1000-9999; an integer beyond 64 bits; any error): the
 * Python method then makes them as if this did not exist, and raises what it would have raised.
 * ctx is the formatter's caches (per file, per attribute shape, per tag list, per description,
 * per MACB group) with the methods that fill them, so both share them; see the C_* indexes.
 * With --tz, l2tcsv's date and time come from the formatter's _local (its per-hour offsets).
 * tests/timeline/test_lines_native.py checks both give the same on generated and real records.
 *
 * Why: formatting the three renderings of a row cost ~25 us per EVTX record in Python, more
 * than parsing the record, spread over a hundred small string operations; here they are a few
 * copies into buffers. Input is evidence: every value is type-checked before use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The scans for bytes to escape go 16 bytes a step with SSE2 (every x86_64 CPU) where GCC or
 * Clang builds this; a byte loop elsewhere. */
#if defined(__GNUC__) && defined(__SSE2__)
#define HAVE_SSE2_PATH 1
#include <emmintrin.h>
#endif

#define DAY_US 86400000000LL
#define SECOND_US 1000000LL
#define SHORT_LIMIT 80 /* l2tcsv "short": the message, or its first 77 characters + "..." */
#define SHORT_KEEP 77

/* -- growable byte buffers ------------------------------------------------------------------ */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char local[4096];
} Buf;

static void buf_init(Buf *b) { b->data = b->local; b->len = 0; b->cap = sizeof b->local; }

static void buf_free(Buf *b) { if (b->data != b->local) PyMem_Free(b->data); }

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t cap = b->cap;
    while (cap < b->len + extra) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *data = PyMem_Malloc(cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(data, b->data, b->len);
    buf_free(b);
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int
put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUT_LIT(b, s) put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static inline int
put_byte(Buf *b, char c)
{
    return put(b, &c, 1);
}


/* -- Python values --------------------------------------------------------------------------- */

/* Status of a conversion: done, not handled here (the caller returns None), or a Python error. */
enum { OK = 0, DECLINE = 1, ERROR = -1 };

/* UTF-8 of an exact str; DECLINE for other types and for text orjson and the codecs would treat
 * apart (lone surrogates: the Python path writes them with backslashreplace). */
static int
utf8(PyObject *obj, const char **text, Py_ssize_t *size)
{
    if (!PyUnicode_CheckExact(obj))
        return DECLINE;
    *text = PyUnicode_AsUTF8AndSize(obj, size);
    if (*text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return ERROR;
        PyErr_Clear();
        return DECLINE;
    }
    return OK;
}

static int
bytes_of(PyObject *obj, const char **data, Py_ssize_t *size)
{
    if (!PyBytes_CheckExact(obj))
        return DECLINE;
    *data = PyBytes_AS_STRING(obj);
    *size = PyBytes_GET_SIZE(obj);
    return OK;
}

/* An exact int (not a bool) that fits 64 bits. */
static int
int64_of(PyObject *obj, long long *value)
{
    if (!PyLong_CheckExact(obj))
        return DECLINE;
    int overflow;
    *value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow)
        return DECLINE;
    if (*value == -1 && PyErr_Occurred())
        return ERROR;
    return OK;
}

/* The record's keys, interned once (see PyInit__linefmt). */
enum { K_PROVENANCE, K_MESSAGE, K_DATA_TYPE, K_OFFSET, K_INODE, K_ORDER, K_RECOVERED, K_CORRUPTED,
       K_ATTRIBUTES, K_TIMESTAMPS, K_TAGS, K_SOURCE_PATH, K_BUNDLE_PATH, K_FILESYSTEM, K_EVIDENCE,
       K_SHA256, K_HOST, K_USER, K_PARSER, K_COUNT };
static const char *key_names[K_COUNT] = {
    "provenance", "message", "data_type", "offset", "inode", "order", "recovered", "corrupted",
    "attributes", "timestamps", "tags", "source_path", "bundle_path", "filesystem", "evidence",
    "sha256", "host", "user", "parser"};
static PyObject *keys[K_COUNT];
static PyObject *empty_dict;  /* record.get("attributes") or {} */

/* The formatter's context tuple (LineFormatter._native_context): its caches, the methods that
 * fill them, the l2tcsv timezone cell and rows.placements. */
enum { C_SOURCES, C_SOURCE_FN, C_SHAPES, C_SHAPE_FN, C_TAGS, C_TAG_FN, C_DESCS, C_DESC_FN, C_GROUPS,
       C_GROUP_FN, C_TZ_FIELD, C_PLACEMENTS, C_LOCAL, CTX_SIZE };

/* cache[key], or fill(key) (a formatter method, which stores it in the cache) when missing: a new
 * reference, NULL on an error. */
static PyObject *
cached(PyObject *cache, PyObject *key, PyObject *fill)
{
    PyObject *value = PyDict_GetItemWithError(cache, key);
    if (value != NULL) {
        Py_INCREF(value);
        return value;
    }
    return PyErr_Occurred() ? NULL : PyObject_CallOneArg(fill, key);
}

/* dict.get(key) as a borrowed reference; NULL when missing (or on an error, which the caller
 * finds with PyErr_Occurred). */
static PyObject *
get(PyObject *dict, int key)
{
    return PyDict_GetItemWithError(dict, keys[key]);
}

/* Decimal text of a 64-bit integer into out (at least 21 bytes); returns its length. */
static Py_ssize_t
format_int(char *out, long long value)
{
    char digits[24];
    int n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    Py_ssize_t len = 0;
    if (value < 0)
        out[len++] = '-';
    while (n)
        out[len++] = digits[--n];
    return len;
}

static int
put_int(Buf *b, long long value)
{
    char text[24];
    return put(b, text, format_int(text, value));
}

/* Zero-padded decimal of a non-negative number below 10^width. */
static void
format_padded(char *out, long long value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* -- scans ----------------------------------------------------------------------------------- */

/* Index of the first byte at or after i that a CSV cell or an l2tcsv field treats apart
 * (, " CR LF), or n. */
static Py_ssize_t
scan_cell(const char *s, Py_ssize_t n, Py_ssize_t i)
{
#ifdef HAVE_SSE2_PATH
    const __m128i comma = _mm_set1_epi8(','), quote = _mm_set1_epi8('"');
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, comma), _mm_cmpeq_epi8(x, quote)),
                                   _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, lf)));
        int mask = _mm_movemask_epi8(hit);
        if (mask)
            return i + __builtin_ctz((unsigned)mask);
    }
#endif
    for (; i < n; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n')
            return i;
    }
    return n;
}

/* Index of the first byte at or after i that JSON escapes (" \ and below 0x20), or n. */
static Py_ssize_t
scan_json(const char *s, Py_ssize_t n, Py_ssize_t i)
{
#ifdef HAVE_SSE2_PATH
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x1f), zero = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i control = _mm_cmpeq_epi8(_mm_subs_epu8(x, below), zero);  /* unsigned x <= 0x1f */
        __m128i hit = _mm_or_si128(control, _mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                                         _mm_cmpeq_epi8(x, backslash)));
        int mask = _mm_movemask_epi8(hit);
        if (mask)
            return i + __builtin_ctz((unsigned)mask);
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return i;
    }
    return n;
}

/* -- cells ----------------------------------------------------------------------------------- */

/* timesketch.cell of text: quoted, inner quotes doubled, when it holds , " CR or LF. */
static int
put_csv_text(Buf *b, const char *s, Py_ssize_t n)
{
    if (scan_cell(s, n, 0) == n)
        return put(b, s, n);
    if (put_byte(b, '"') < 0)
        return -1;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            if (put(b, s + start, i + 1 - start) < 0 || put_byte(b, '"') < 0)
                return -1;
            start = i + 1;
        }
    }
    if (put(b, s + start, n - start) < 0)
        return -1;
    return put_byte(b, '"');
}

/* A JSON string as orjson writes it: ", \ and control characters escaped, the rest raw UTF-8. */
static int
put_json_text(Buf *b, const char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (put_byte(b, '"') < 0)
        return -1;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = scan_json(s, n, 0); i < n; i = scan_json(s, n, i + 1)) {
        unsigned char c = (unsigned char)s[i];
        if (put(b, s + start, i - start) < 0)
            return -1;
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\f': esc[1] = 'f'; break;
        case '\r': esc[1] = 'r'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            len = 6;
        }
        if (put(b, esc, len) < 0)
            return -1;
    }
    if (put(b, s + start, n - start) < 0)
        return -1;
    return put_byte(b, '"');
}

/* l2tcsv.field of text: "-" when empty; a leading ' before a formula start (= + - @ TAB CR) other
 * than the lone "-"; each run of CR/LF one space; commas spaces; quoted when it holds ". */
static int
put_field(Buf *b, const char *s, Py_ssize_t n)
{
    if (n == 0)
        return put_byte(b, '-');
    int quoted = memchr(s, '"', n) != NULL;
    if (quoted && put_byte(b, '"') < 0)
        return -1;
    char first = s[0];
    if ((first == '=' || first == '+' || first == '-' || first == '@' || first == '\t' || first == '\r')
        && !(n == 1 && first == '-')) {
        if (put_byte(b, '\'') < 0)
            return -1;
    }
    if (buf_reserve(b, 2 * n + 1) < 0)
        return -1;
    char *out = b->data + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t next = scan_cell(s, n, i);
        memcpy(out, s + i, next - i);
        out += next - i;
        if ((i = next) == n)
            break;
        char c = s[i];
        if (c == '\r' || c == '\n') {
            while (i + 1 < n && (s[i + 1] == '\r' || s[i + 1] == '\n'))
                i++;
            *out++ = ' ';
        }
        else if (c == ',')
            *out++ = ' ';
        else if (c == '"' && quoted) {
            *out++ = '"';
            *out++ = '"';
        }
        else
            *out++ = c;
    }
    b->len = out - b->data;
    if (quoted)
        return put_byte(b, '"');
    return 0;
}

/* timeline.lines.escape: \x02, then \ n and NUL escaped with a backslash. */
static int
put_escaped(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, 2 * n + 1) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '\x02';
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') { *out++ = '\\'; *out++ = '\\'; }
        else if (c == '\n') { *out++ = '\\'; *out++ = 'n'; }
        else if (c == '\0') { *out++ = '\\'; *out++ = '0'; }
        else *out++ = c;
    }
    b->len = out - b->data;
    return 0;
}

/* -- l2tcsv "extra": items kept as (offset, length) into one arena, sorted as Python sorts str
 * (UTF-8 byte order is code-point order). ------------------------------------------------------ */

typedef struct {
    Py_ssize_t start, len;
} Item;

typedef struct {
    Buf arena;
    Item *items;
    Py_ssize_t count, cap;
    Item local[64];
} Extra;

/* Whether item x sorts after item y (bytes compared unsigned, a prefix first). */
static inline int
item_after(const char *base, const Item *x, const Item *y)
{
    const unsigned char *a = (const unsigned char *)base + x->start, *b = (const unsigned char *)base + y->start;
    Py_ssize_t n = x->len < y->len ? x->len : y->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return a[i] > b[i];
    }
    return x->len > y->len;
}

static const char *qsort_base;

static int
item_compare(const void *a, const void *b)
{
    return item_after(qsort_base, a, b) - item_after(qsort_base, b, a);
}

/* Insertion sort where the items are few (they come nearly sorted: the attributes in column
 * order); qsort beyond, so that a record with thousands of attributes stays O(n log n). */
static void
sort_items(const char *base, Item *items, Py_ssize_t count)
{
    if (count > 128) {
        qsort_base = base;
        qsort(items, count, sizeof(Item), item_compare);
        return;
    }
    for (Py_ssize_t i = 1; i < count; i++) {
        Item item = items[i];
        Py_ssize_t j = i;
        while (j > 0 && item_after(base, &items[j - 1], &item)) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = item;
    }
}

static void extra_init(Extra *e) { buf_init(&e->arena); e->items = e->local; e->count = 0; e->cap = 64; }

static void
extra_free(Extra *e)
{
    buf_free(&e->arena);
    if (e->items != e->local)
        PyMem_Free(e->items);
}

/* Start an item; its bytes are then put into e->arena; extra_end closes it. */
static int
extra_begin(Extra *e)
{
    if (e->count == e->cap) {
        Item *items = PyMem_Malloc(sizeof(Item) * e->cap * 2);
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(items, e->items, sizeof(Item) * e->count);
        if (e->items != e->local)
            PyMem_Free(e->items);
        e->items = items;
        e->cap *= 2;
    }
    e->items[e->count].start = e->arena.len;
    return 0;
}

static void
extra_end(Extra *e)
{
    e->items[e->count].len = e->arena.len - e->items[e->count].start;
    e->count++;
}

static int
extra_add(Extra *e, const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn)
{
    if (extra_begin(e) < 0 || put(&e->arena, a, an) < 0 || put(&e->arena, b, bn) < 0)
        return -1;
    extra_end(e);
    return 0;
}

/* field("; ".join(sorted(items))) */
static int
put_extra_field(Buf *b, Extra *e)
{
    sort_items(e->arena.data, e->items, e->count);
    Buf joined;
    buf_init(&joined);
    int status = 0;
    for (Py_ssize_t i = 0; i < e->count && status == 0; i++) {
        if (i)
            status = PUT_LIT(&joined, "; ");
        if (status == 0)
            status = put(&joined, e->arena.data + e->items[i].start, e->items[i].len);
    }
    if (status == 0)
        status = put_field(b, joined.data, joined.len);
    buf_free(&joined);
    return status;
}

/* An attribute whose value is a list of str, int, bool and None (other lists: DECLINE), as the
 * Python formatter writes it: the CSV cell is json.dumps (", " between items), the JSON value is
 * orjson's (no spaces), the "extra" item is str(list) (Python's repr), none for an empty list. */
static int
put_list(Buf *csv, Buf *json, Extra *extra, const char *commas, Py_ssize_t commas_len, const char *column,
         Py_ssize_t column_len, const char *prefix, Py_ssize_t prefix_len, PyObject *value)
{
    Buf cell, compact;
    buf_init(&cell);
    buf_init(&compact);
    int result = OK;
    PyObject *text_of_list = NULL;
    if (put_byte(&cell, '[') < 0 || put_byte(&compact, '[') < 0)
        goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        PyObject *item = PyList_GET_ITEM(value, i);
        if (i && (PUT_LIT(&cell, ", ") < 0 || put_byte(&compact, ',') < 0))
            goto error;
        Py_ssize_t start = compact.len;
        if (PyUnicode_CheckExact(item)) {
            const char *text;
            Py_ssize_t size;
            if ((result = utf8(item, &text, &size)) != OK)
                goto done;
            if (put_json_text(&compact, text, size) < 0)
                goto error;
        }
        else if (item == Py_True || item == Py_False || item == Py_None) {
            const char *word = item == Py_True ? "true" : item == Py_False ? "false" : "null";
            if (put(&compact, word, (Py_ssize_t)strlen(word)) < 0)
                goto error;
        }
        else {
            long long number;
            if ((result = int64_of(item, &number)) != OK)
                goto done;
            if (put_int(&compact, number) < 0)
                goto error;
        }
        if (put(&cell, compact.data + start, compact.len - start) < 0)  /* the same item text */
            goto error;
    }
    if (put_byte(&cell, ']') < 0 || put_byte(&compact, ']') < 0)
        goto error;
    if (commas && (put(csv, commas, commas_len) < 0 || put_csv_text(csv, cell.data, cell.len) < 0))
        goto error;
    if (put_byte(json, ',') < 0 || put_json_text(json, column, column_len) < 0 || put_byte(json, ':') < 0
        || put(json, compact.data, compact.len) < 0)
        goto error;
    if (PyList_GET_SIZE(value)) {
        const char *text;
        Py_ssize_t size;
        text_of_list = PyObject_Str(value);
        if (text_of_list == NULL)
            goto error;
        if ((result = utf8(text_of_list, &text, &size)) != OK)
            goto done;
        if (extra_add(extra, prefix, prefix_len, text, size) < 0)
            goto error;
    }
    goto done;
error:
    result = ERROR;
done:
    Py_XDECREF(text_of_list);
    buf_free(&cell);
    buf_free(&compact);
    return result;
}

/* -- dates ----------------------------------------------------------------------------------- */

/* Civil date of a day number (days since 1970-01-01; H. Hinnant's algorithm). */
static void
civil(long long days, long long *year, int *month, int *day)
{
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* -- the record ------------------------------------------------------------------------------ */

/* Checks that decline: evaluated in order, the first that is not OK leaves the function. */
#define TRY(expr) do { int status_ = (expr); if (status_ != OK) { result = status_; goto done; } } while (0)
#define NEED(expr) do { if ((expr) < 0) { result = ERROR; goto done; } } while (0)

static PyObject *
record_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "record_lines() takes 2 arguments");
        return NULL;
    }
    PyObject *ctx = args[0], *record = args[1];
    if (!PyTuple_CheckExact(ctx) || PyTuple_GET_SIZE(ctx) != CTX_SIZE || !PyDict_CheckExact(record))
        Py_RETURN_NONE;
    PyObject *cache[CTX_SIZE];
    for (int i = 0; i < CTX_SIZE; i++)
        cache[i] = PyTuple_GET_ITEM(ctx, i);
    if (!PyDict_CheckExact(cache[C_SOURCES]) || !PyDict_CheckExact(cache[C_SHAPES])
        || !PyDict_CheckExact(cache[C_TAGS]) || !PyDict_CheckExact(cache[C_DESCS])
        || !PyDict_CheckExact(cache[C_GROUPS]))
        Py_RETURN_NONE;
    PyObject *descs = cache[C_DESCS], *desc_fn = cache[C_DESC_FN];
    PyObject *groups = cache[C_GROUPS], *group_fn = cache[C_GROUP_FN];

    int result = OK;
    PyObject *out = NULL;
    /* New references, released at the end. */
    PyObject *places = NULL, *entry = NULL, *shape = NULL, *tags = NULL, *tag_pieces = NULL;
    PyObject *group_pieces = NULL, *desc_pieces = NULL, *local = NULL;
    Buf csv, json, l2t, row, csv_row, line;
    Extra extra;
    buf_init(&csv); buf_init(&json); buf_init(&l2t); buf_init(&row); buf_init(&csv_row); buf_init(&line);
    extra_init(&extra);

    const char *s;
    Py_ssize_t n;
    PyObject *provenance = get(record, K_PROVENANCE);
    PyObject *message = get(record, K_MESSAGE), *data_type = get(record, K_DATA_TYPE);
    PyObject *attributes = get(record, K_ATTRIBUTES), *timestamps = get(record, K_TIMESTAMPS);
    PyObject *tag_list = get(record, K_TAGS);
    if (PyErr_Occurred()) { result = ERROR; goto done; }
    if (provenance == NULL || !PyDict_CheckExact(provenance) || message == NULL || data_type == NULL) {
        result = DECLINE;
        goto done;
    }
    /* record.get("attributes") or {} */
    if (attributes == NULL || attributes == Py_None)
        attributes = empty_dict;
    if (!PyDict_CheckExact(attributes)) { result = DECLINE; goto done; }

    /* rows.placements: (time, description) pairs of "timestamps", sorted; the rest in Python. */
    if (timestamps != NULL && PyDict_CheckExact(timestamps) && PyDict_GET_SIZE(timestamps)) {
        places = PyList_New(0);
        if (places == NULL) { result = ERROR; goto done; }
        Py_ssize_t position = 0;
        PyObject *desc, *value;
        while (PyDict_Next(timestamps, &position, &desc, &value)) {
            PyObject *place = PyTuple_Pack(2, value, desc);
            if (place == NULL || PyList_Append(places, place) < 0) {
                Py_XDECREF(place);
                result = ERROR;
                goto done;
            }
            Py_DECREF(place);
        }
        if (PyList_GET_SIZE(places) > 1 && PyList_Sort(places) < 0) { result = ERROR; goto done; }
    }
    else if (timestamps == NULL || timestamps == Py_None
             || (PyDict_CheckExact(timestamps) && PyDict_GET_SIZE(timestamps) == 0)) {
        places = PyObject_CallOneArg(cache[C_PLACEMENTS], record);
        if (places == NULL) { result = ERROR; goto done; }
        if (!PyList_CheckExact(places)) { result = DECLINE; goto done; }
    }
    else {
        result = DECLINE;
        goto done;
    }

    /* The per-file texts, cached under LineFormatter._source's key. */
    PyObject *source_key = PyTuple_New(9);
    if (source_key == NULL) { result = ERROR; goto done; }
    PyObject *parts[9] = {
        get(provenance, K_SOURCE_PATH), get(provenance, K_BUNDLE_PATH), get(provenance, K_FILESYSTEM),
        get(provenance, K_EVIDENCE), get(provenance, K_SHA256), get(record, K_HOST), get(record, K_USER),
        get(record, K_PARSER), data_type};
    for (int i = 0; i < 9; i++) {
        PyObject *part = parts[i] != NULL ? parts[i] : Py_None;
        Py_INCREF(part);
        PyTuple_SET_ITEM(source_key, i, part);
    }
    if (parts[0] == NULL || parts[7] == NULL || PyErr_Occurred()) {  /* source_path, parser: required */
        Py_DECREF(source_key);
        result = PyErr_Occurred() ? ERROR : DECLINE;
        goto done;
    }
    entry = PyDict_GetItemWithError(cache[C_SOURCES], source_key);
    Py_DECREF(source_key);
    if (entry != NULL)
        Py_INCREF(entry);
    else if (!PyErr_Occurred())
        entry = PyObject_CallFunctionObjArgs(cache[C_SOURCE_FN], record, provenance, NULL);
    if (entry == NULL) { result = ERROR; goto done; }
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 13) { result = DECLINE; goto done; }

    /* How the attributes fill the columns, cached by their names. */
    PyObject *names = PySequence_Tuple(attributes);
    if (names == NULL) { result = ERROR; goto done; }
    shape = cached(cache[C_SHAPES], names, cache[C_SHAPE_FN]);
    Py_DECREF(names);
    if (shape == NULL) { result = ERROR; goto done; }
    if (!PyTuple_CheckExact(shape) || PyTuple_GET_SIZE(shape) != 2
        || !PyTuple_CheckExact(PyTuple_GET_ITEM(shape, 0))) { result = DECLINE; goto done; }
    PyObject *plan = PyTuple_GET_ITEM(shape, 0), *csv_trailing = PyTuple_GET_ITEM(shape, 1);

    /* tuple(record.get("tags") or ()) and its CSV cell and l2tcsv notes. */
    if (tag_list == NULL || tag_list == Py_None || (PyList_CheckExact(tag_list) && PyList_GET_SIZE(tag_list) == 0))
        tags = PyTuple_New(0);
    else if (PyList_CheckExact(tag_list))
        tags = PyList_AsTuple(tag_list);
    else {
        result = DECLINE;
        goto done;
    }
    if (tags == NULL) { result = ERROR; goto done; }
    tag_pieces = cached(cache[C_TAGS], tags, cache[C_TAG_FN]);
    if (tag_pieces == NULL) { result = ERROR; goto done; }
    if (!PyTuple_CheckExact(tag_pieces) || PyTuple_GET_SIZE(tag_pieces) != 2) { result = DECLINE; goto done; }
    PyObject *tag_cell = PyTuple_GET_ITEM(tag_pieces, 0), *notes = PyTuple_GET_ITEM(tag_pieces, 1);

    PyObject *offset = get(provenance, K_OFFSET), *inode = get(attributes, K_INODE);
    PyObject *order = get(record, K_ORDER);
    long long offset_value = 0, inode_value = 0, order_value = 0;
    int has_offset = offset != NULL && offset != Py_None, has_inode = inode != NULL && inode != Py_None;
    if (has_offset)
        TRY(int64_of(offset, &offset_value));
    if (has_inode)
        TRY(int64_of(inode, &inode_value));
    if (order != NULL)
        TRY(int64_of(order, &order_value));
    int recovered = 0, corrupted = 0;
    PyObject *flag = get(record, K_RECOVERED);
    if (flag != NULL && (recovered = PyObject_IsTrue(flag)) < 0) { result = ERROR; goto done; }
    flag = get(record, K_CORRUPTED);
    if (flag != NULL && (corrupted = PyObject_IsTrue(flag)) < 0) { result = ERROR; goto done; }
    if (PyErr_Occurred()) { result = ERROR; goto done; }

    const char *msg;
    Py_ssize_t msg_len;
    TRY(utf8(message, &msg, &msg_len));

    /* CSV: the fixed columns after datetime, timestamp and timestamp_desc. */
    NEED(put_csv_text(&csv, msg, msg_len));
    PyObject *csv_fixed[3] = {PyTuple_GET_ITEM(entry, 0), tag_cell, PyTuple_GET_ITEM(entry, 1)};
    for (int i = 0; i < 3; i++) {
        TRY(utf8(csv_fixed[i], &s, &n));
        NEED(put_byte(&csv, ','));
        NEED(put(&csv, s, n));
    }
    NEED(put_byte(&csv, ','));
    if (has_offset)
        NEED(put_int(&csv, offset_value));
    TRY(utf8(PyTuple_GET_ITEM(entry, 2), &s, &n));
    NEED(put_byte(&csv, ','));
    NEED(put(&csv, s, n));
    NEED(put_byte(&csv, ','));
    if (has_inode)
        NEED(put_int(&csv, inode_value));
    NEED(recovered ? PUT_LIT(&csv, ",true") : PUT_LIT(&csv, ",false"));
    NEED(corrupted ? PUT_LIT(&csv, ",true") : PUT_LIT(&csv, ",false"));

    /* JSON (after its "{"): message, data_type, tag, source, offset, place, inode, flags. */
    NEED(PUT_LIT(&json, "\"message\":"));
    NEED(put_json_text(&json, msg, msg_len));
    TRY(utf8(data_type, &s, &n));
    NEED(PUT_LIT(&json, ",\"data_type\":"));
    NEED(put_json_text(&json, s, n));
    NEED(PUT_LIT(&json, ",\"tag\":["));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tags); i++) {
        TRY(utf8(PyTuple_GET_ITEM(tags, i), &s, &n));
        if (i)
            NEED(put_byte(&json, ','));
        NEED(put_json_text(&json, s, n));
    }
    NEED(put_byte(&json, ']'));
    TRY(bytes_of(PyTuple_GET_ITEM(entry, 11), &s, &n)); /* the source's JSON members, or None */
    if (n) {
        NEED(put_byte(&json, ','));
        NEED(put(&json, s, n));
    }
    if (has_offset) {
        NEED(PUT_LIT(&json, ",\"offset\":"));
        NEED(put_int(&json, offset_value));
    }
    TRY(bytes_of(PyTuple_GET_ITEM(entry, 12), &s, &n));
    if (n) {
        NEED(put_byte(&json, ','));
        NEED(put(&json, s, n));
    }
    if (has_inode) {
        NEED(PUT_LIT(&json, ",\"inode\":"));
        NEED(put_int(&json, inode_value));
    }
    NEED(recovered ? PUT_LIT(&json, ",\"recovered\":true") : PUT_LIT(&json, ",\"recovered\":false"));
    NEED(corrupted ? PUT_LIT(&json, ",\"corrupted\":true") : PUT_LIT(&json, ",\"corrupted\":false"));

    /* l2tcsv extra: the source's items, the flags, the offset. */
    PyObject *extra_source = PyTuple_GET_ITEM(entry, 5);
    if (!PyList_CheckExact(extra_source)) { result = DECLINE; goto done; }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(extra_source); i++) {
        TRY(utf8(PyList_GET_ITEM(extra_source, i), &s, &n));
        NEED(extra_add(&extra, s, n, "", 0));
    }
    NEED(recovered ? extra_add(&extra, "recovered: True", 15, "", 0)
                   : extra_add(&extra, "recovered: False", 16, "", 0));
    NEED(corrupted ? extra_add(&extra, "corrupted: True", 15, "", 0)
                   : extra_add(&extra, "corrupted: False", 16, "", 0));
    if (has_offset) {
        NEED(extra_begin(&extra));
        NEED(PUT_LIT(&extra.arena, "offset: "));
        NEED(put_int(&extra.arena, offset_value));
        extra_end(&extra);
    }

    /* The attribute columns, in column order. */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(plan); i++) {
        PyObject *step = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_CheckExact(step) || PyTuple_GET_SIZE(step) != 4) { result = DECLINE; goto done; }
        PyObject *commas = PyTuple_GET_ITEM(step, 0), *column = PyTuple_GET_ITEM(step, 1);
        PyObject *value = PyDict_GetItemWithError(attributes, PyTuple_GET_ITEM(step, 2));
        if (value == NULL) {
            result = PyErr_Occurred() ? ERROR : DECLINE;
            goto done;
        }
        const char *commas_text = NULL, *column_text, *prefix;
        Py_ssize_t commas_len = 0, column_len, prefix_len;
        if (commas != Py_None)
            TRY(utf8(commas, &commas_text, &commas_len));
        if (value == Py_None) {  /* an empty CSV cell, nothing else */
            if (commas_text)
                NEED(put(&csv, commas_text, commas_len));
            continue;
        }
        TRY(utf8(column, &column_text, &column_len));
        TRY(utf8(PyTuple_GET_ITEM(step, 3), &prefix, &prefix_len));
        if (PyList_CheckExact(value)) {
            TRY(put_list(&csv, &json, &extra, commas_text, commas_len, column_text, column_len, prefix,
                         prefix_len, value));
            continue;
        }
        char number[32];
        const char *text;
        Py_ssize_t text_len;
        int is_text = 0;
        long long int_value;
        if (PyUnicode_CheckExact(value)) {
            TRY(utf8(value, &text, &text_len));
            is_text = 1;
        }
        else if (value == Py_True || value == Py_False) {
            text = value == Py_True ? "true" : "false";
            text_len = value == Py_True ? 4 : 5;
        }
        else {
            TRY(int64_of(value, &int_value));
            text_len = format_int(number, int_value);
            text = number;
        }
        if (commas_text) {
            NEED(put(&csv, commas_text, commas_len));
            NEED(is_text ? put_csv_text(&csv, text, text_len) : put(&csv, text, text_len));
        }
        NEED(put_byte(&json, ','));
        NEED(put_json_text(&json, column_text, column_len));
        NEED(put_byte(&json, ':'));
        NEED(is_text ? put_json_text(&json, text, text_len) : put(&json, text, text_len));
        if (value == Py_True)  /* str(True) in "extra" */
            NEED(extra_add(&extra, prefix, prefix_len, "True", 4));
        else if (value == Py_False)
            NEED(extra_add(&extra, prefix, prefix_len, "False", 5));
        else if (text_len)  /* an empty string adds no item */
            NEED(extra_add(&extra, prefix, prefix_len, text, text_len));
    }
    TRY(utf8(csv_trailing, &s, &n));
    NEED(put(&csv, s, n));
    NEED(put_byte(&json, '}'));

    /* l2tcsv, after date, time, timezone, MACB, source, sourcetype and type. */
    PyObject *l2t_text[2] = {PyTuple_GET_ITEM(entry, 7), PyTuple_GET_ITEM(entry, 8)}; /* who, file */
    TRY(utf8(l2t_text[0], &s, &n));
    NEED(put(&l2t, s, n));
    NEED(put_byte(&l2t, ','));
    Py_ssize_t desc_start = l2t.len;
    NEED(put_field(&l2t, msg, msg_len));
    Py_ssize_t desc_end = l2t.len;
    int shortened_message = PyUnicode_GET_LENGTH(message) > SHORT_LIMIT;
    if (shortened_message) {
        l2t.len = desc_start;  /* the first 77 characters (not bytes) and "..." */
        Py_ssize_t cut = 0, chars = 0;
        while (cut < msg_len && chars < SHORT_KEEP + 1) {
            if (((unsigned char)msg[cut] & 0xC0) != 0x80 && ++chars > SHORT_KEEP)
                break;
            cut++;
        }
        Buf shortened;
        buf_init(&shortened);
        int status = put(&shortened, msg, cut);
        if (status == 0)
            status = PUT_LIT(&shortened, "...");
        if (status == 0)
            status = put_field(&l2t, shortened.data, shortened.len);
        buf_free(&shortened);
        NEED(status);
    }
    NEED(put_byte(&l2t, ','));
    if (!shortened_message) {  /* short and desc are the same field */
        Py_ssize_t size = desc_end - desc_start;
        NEED(buf_reserve(&l2t, size));
        memcpy(l2t.data + l2t.len, l2t.data + desc_start, size);
        l2t.len += size;
    }
    else
        NEED(put_field(&l2t, msg, msg_len));
    NEED(PUT_LIT(&l2t, ",2,"));
    TRY(utf8(l2t_text[1], &s, &n));
    NEED(put(&l2t, s, n));
    NEED(put_byte(&l2t, ','));
    if (has_inode) {
        char number[32];
        NEED(put_field(&l2t, number, format_int(number, inode_value)));
    }
    else
        NEED(put_byte(&l2t, '-'));
    TRY(utf8(notes, &s, &n));
    NEED(put_byte(&l2t, ','));
    NEED(put(&l2t, s, n));
    TRY(utf8(PyTuple_GET_ITEM(entry, 9), &s, &n));  /* parser */
    NEED(put_byte(&l2t, ','));
    NEED(put(&l2t, s, n));
    NEED(put_byte(&l2t, ','));
    NEED(put_extra_field(&l2t, &extra));
    int escape_l2t = memchr(l2t.data, '\0', l2t.len) != NULL;
    int escape_csv = memchr(csv.data, '\n', csv.len) != NULL || memchr(csv.data, '\0', csv.len) != NULL;

    const char *l2t_source, *key_source, *tz_field;
    Py_ssize_t l2t_source_len, key_source_len, tz_field_len;
    TRY(bytes_of(PyTuple_GET_ITEM(entry, 6), &l2t_source, &l2t_source_len));
    TRY(bytes_of(PyTuple_GET_ITEM(entry, 10), &key_source, &key_source_len));
    TRY(bytes_of(cache[C_TZ_FIELD], &tz_field, &tz_field_len));

    /* The key's order part: \x01, the order as Python's %012d writes it, \x01. */
    char order_text[40];
    Py_ssize_t order_len;
    if (order_value >= 0 && order_value < 1000000000000LL) {
        order_text[0] = '\x01';
        format_padded(order_text + 1, order_value, 12);
        order_text[13] = '\x01';
        order_len = 14;
    }
    else
        order_len = snprintf(order_text, sizeof order_text, "\x01%012lld\x01", order_value);

    /* The rows: one line each, the l2tcsv part on the first row of each MACB group. */
    Py_ssize_t count = PyList_GET_SIZE(places);
    out = PyList_New(0);
    if (out == NULL) { result = ERROR; goto done; }
    Py_ssize_t index = 0;
    while (index < count) {
        PyObject *place = PyList_GET_ITEM(places, index);
        if (!PyTuple_CheckExact(place) || PyTuple_GET_SIZE(place) != 2) { result = DECLINE; goto done; }
        long long timestamp;
        TRY(int64_of(PyTuple_GET_ITEM(place, 0), &timestamp));
        Py_ssize_t end = index + 1;
        while (end < count) {
            PyObject *next = PyList_GET_ITEM(places, end);
            if (!PyTuple_CheckExact(next) || PyTuple_GET_SIZE(next) != 2) { result = DECLINE; goto done; }
            long long other;
            TRY(int64_of(PyTuple_GET_ITEM(next, 0), &other));
            if (other != timestamp)
                break;
            end++;
        }
        long long day = timestamp / DAY_US, rest = timestamp % DAY_US;
        if (rest < 0) { day--; rest += DAY_US; }
        long long second = rest / SECOND_US, micros = rest % SECOND_US, year;
        int month, mday;
        civil(day, &year, &month, &mday);
        if (year < 1000 || year > 9999) { result = DECLINE; goto done; }
        /* stamp: YYYY-MM-DDTHH:MM:SS.ffffff+00:00; l2tcsv: MM/DD/YYYY and HH:MM:SS */
        char stamp[32], number[24], head[18], l2t_date[10];
        format_padded(stamp, year, 4);
        stamp[4] = '-';
        format_padded(stamp + 5, month, 2);
        stamp[7] = '-';
        format_padded(stamp + 8, mday, 2);
        stamp[10] = 'T';
        format_padded(stamp + 11, second / 3600, 2);
        stamp[13] = ':';
        format_padded(stamp + 14, second / 60 % 60, 2);
        stamp[16] = ':';
        format_padded(stamp + 17, second % 60, 2);
        stamp[19] = '.';
        format_padded(stamp + 20, micros, 6);
        memcpy(stamp + 26, "+00:00", 6);
        const Py_ssize_t stamp_len = 32, clock_len = 8, head_len = 17;
        const char *clock = stamp + 11;
        memcpy(l2t_date, stamp + 5, 2);
        l2t_date[2] = '/';
        memcpy(l2t_date + 3, stamp + 8, 2);
        l2t_date[5] = '/';
        memcpy(l2t_date + 6, stamp, 4);
        /* l2tcsv's date and time: UTC's, or with --tz the formatter's _local(timestamp). */
        const char *l2t_day = l2t_date, *l2t_clock = clock;
        Py_ssize_t l2t_day_len = 10, l2t_clock_len = clock_len;
        if (cache[C_LOCAL] != Py_None) {
            Py_XSETREF(local, PyObject_CallOneArg(cache[C_LOCAL], PyTuple_GET_ITEM(place, 0)));
            if (local == NULL) { result = ERROR; goto done; }
            if (!PyTuple_CheckExact(local) || PyTuple_GET_SIZE(local) != 2) { result = DECLINE; goto done; }
            TRY(bytes_of(PyTuple_GET_ITEM(local, 0), &l2t_day, &l2t_day_len));
            TRY(bytes_of(PyTuple_GET_ITEM(local, 1), &l2t_clock, &l2t_clock_len));
        }
        Py_ssize_t number_len = format_int(number, timestamp);
        unsigned long long key_time = (unsigned long long)timestamp + 0x8000000000000000ULL;
        for (int k = 15; k >= 0; k--, key_time >>= 4)
            head[k] = "0123456789abcdef"[key_time & 15];
        head[16] = '\x01';

        /* The MACB group's letters and type, from the formatter's cache. */
        PyObject *group = PyTuple_New(end - index);
        if (group == NULL) { result = ERROR; goto done; }
        for (Py_ssize_t k = index; k < end; k++) {
            PyObject *desc = PyTuple_GET_ITEM(PyList_GET_ITEM(places, k), 1);
            Py_INCREF(desc);
            PyTuple_SET_ITEM(group, k - index, desc);
        }
        Py_XSETREF(group_pieces, cached(groups, group, group_fn));
        Py_DECREF(group);
        if (group_pieces == NULL) { result = ERROR; goto done; }
        const char *letters, *type_field;
        Py_ssize_t letters_len, type_len;
        if (!PyTuple_CheckExact(group_pieces) || PyTuple_GET_SIZE(group_pieces) != 3) { result = DECLINE; goto done; }
        TRY(bytes_of(PyTuple_GET_ITEM(group_pieces, 0), &letters, &letters_len));
        TRY(bytes_of(PyTuple_GET_ITEM(group_pieces, 1), &type_field, &type_len));
        int type_escape = PyObject_IsTrue(PyTuple_GET_ITEM(group_pieces, 2));
        if (type_escape < 0) { result = ERROR; goto done; }

        row.len = 0;  /* the group's l2tcsv line */
        NEED(put(&row, l2t_day, l2t_day_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, l2t_clock, l2t_clock_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, tz_field, tz_field_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, letters, letters_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, l2t_source, l2t_source_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, type_field, type_len));
        NEED(put_byte(&row, ','));
        NEED(put(&row, l2t.data, l2t.len));
        int first = 1;
        for (Py_ssize_t k = index; k < end; k++) {
            PyObject *desc = PyTuple_GET_ITEM(PyList_GET_ITEM(places, k), 1);
            Py_XSETREF(desc_pieces, cached(descs, desc, desc_fn));
            if (desc_pieces == NULL) { result = ERROR; goto done; }
            if (!PyTuple_CheckExact(desc_pieces) || PyTuple_GET_SIZE(desc_pieces) != 4) { result = DECLINE; goto done; }
            const char *desc_key, *desc_cell, *desc_json;
            Py_ssize_t desc_key_len, desc_cell_len, desc_json_len;
            TRY(bytes_of(PyTuple_GET_ITEM(desc_pieces, 0), &desc_key, &desc_key_len));
            TRY(bytes_of(PyTuple_GET_ITEM(desc_pieces, 1), &desc_cell, &desc_cell_len));
            TRY(bytes_of(PyTuple_GET_ITEM(desc_pieces, 2), &desc_json, &desc_json_len));
            int desc_escape = PyObject_IsTrue(PyTuple_GET_ITEM(desc_pieces, 3));
            if (desc_escape < 0) { result = ERROR; goto done; }

            line.len = 0;
            NEED(put(&line, head, head_len));
            NEED(put(&line, key_source, key_source_len));
            NEED(put(&line, order_text, order_len));
            NEED(put(&line, desc_key, desc_key_len));
            NEED(put_byte(&line, '\0'));
            if (first)
                NEED(escape_l2t || type_escape ? put_escaped(&line, row.data, row.len) : put(&line, row.data, row.len));
            NEED(put_byte(&line, '\0'));
            csv_row.len = 0;  /* the row's CSV line */
            NEED(put(&csv_row, stamp, stamp_len));
            NEED(put_byte(&csv_row, ','));
            NEED(put(&csv_row, number, number_len));
            NEED(put_byte(&csv_row, ','));
            NEED(put(&csv_row, desc_cell, desc_cell_len));
            NEED(put_byte(&csv_row, ','));
            NEED(put(&csv_row, csv.data, csv.len));
            NEED(escape_csv || desc_escape ? put_escaped(&line, csv_row.data, csv_row.len)
                                           : put(&line, csv_row.data, csv_row.len));
            NEED(PUT_LIT(&line, "\0{\"datetime\":\""));
            NEED(put(&line, stamp, stamp_len));
            NEED(PUT_LIT(&line, "\",\"timestamp\":"));
            NEED(put(&line, number, number_len));
            NEED(PUT_LIT(&line, ",\"timestamp_desc\":"));
            NEED(put(&line, desc_json, desc_json_len));
            NEED(put_byte(&line, ','));
            NEED(put(&line, json.data, json.len));
            NEED(put_byte(&line, '\n'));
            PyObject *item = PyBytes_FromStringAndSize(line.data, line.len);
            if (item == NULL) { result = ERROR; goto done; }
            int appended = PyList_Append(out, item);
            Py_DECREF(item);
            if (appended < 0) { result = ERROR; goto done; }
            first = 0;
        }
        index = end;
    }

done:
    Py_XDECREF(places); Py_XDECREF(entry); Py_XDECREF(shape); Py_XDECREF(tags); Py_XDECREF(tag_pieces);
    Py_XDECREF(group_pieces); Py_XDECREF(desc_pieces); Py_XDECREF(local);
    buf_free(&csv); buf_free(&json); buf_free(&l2t); buf_free(&row); buf_free(&csv_row); buf_free(&line);
    extra_free(&extra);
    if (result == OK)
        return out;
    Py_XDECREF(out);
    /* An error too leaves the record to the Python formatter, which raises its own. */
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"record_lines", (PyCFunction)(void (*)(void))record_lines, METH_FASTCALL,
     "record_lines(ctx, record) -> the record's timeline lines, or None where the Python formatter"
     " must make them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_linefmt",
    "The per-record work of the timeline's line formatter in C (optional; see timeline/lines.py).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__linefmt(void)
{
    if (empty_dict == NULL && (empty_dict = PyDict_New()) == NULL)
        return NULL;
    for (int i = 0; i < K_COUNT; i++) {
        if (keys[i] == NULL && (keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
