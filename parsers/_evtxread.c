/* parsers._evtxread: parsers.evtx_events.read_fields, in C, from the decoded record or its text.
 *
 * Optional speed-up (built by setup.py where a C compiler is available; the EVTX parser falls
 * back to the Python function without it). configure(read_fields) hands it the Python
 * function; then
 *
 *   read_fields(record_number, parsed)
 *
 * returns exactly what the Python read_fields returns for one decoded record: (event ID,
 * channel, provider, computer, time, head, data). What it does not handle itself (UserData,
 * nested or positional EventData, an event ID or channel that is not an int or a str, a time not
 * in the library's "YYYY-MM-DDTHH:MM:SS.ffffffZ" form, any unexpected type) it hands to the
 * Python function, whose result or exception is returned as it is. And
 *
 *   read_json(record_number, text)
 *
 * returns read_fields(record_number, orjson.loads(text)) read from the library's JSON text
 * itself, or None for what it leaves to that (the same cases, and anything beyond plain JSON as
 * the library writes it; see "read_json" below). tests/parsers/test_evtx_native.py checks them
 * against the Python function on generated and real records and texts.
 *
 * Why: read_fields ran once per record and cost about a quarter of the EVTX parser's time, in
 * some twenty dictionary reads and tests that are cheap in C; decoding the whole document into
 * Python objects to read those values cost as much again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The JSON string scan goes 16 bytes a step with SSE2 (every x86_64 CPU) where GCC or Clang
 * builds this; a byte loop elsewhere. */
#if defined(__GNUC__) && defined(__SSE2__)
#define HAVE_SSE2_PATH 1
#include <emmintrin.h>
#endif

static PyObject *python_read_fields;

enum { K_EVENT, K_SYSTEM, K_PROVIDER, K_EVENT_ID, K_VERSION, K_LEVEL, K_TASK, K_OPCODE, K_KEYWORDS,
       K_TIME_CREATED, K_CORRELATION, K_EXECUTION, K_CHANNEL, K_COMPUTER, K_SECURITY, K_ATTRIBUTES,
       K_NAME, K_EVENT_SOURCE_NAME, K_TEXT, K_SYSTEM_TIME, K_PROCESS_ID, K_THREAD_ID, K_USER_ID,
       K_ACTIVITY_ID, K_EVENT_DATA, K_USER_DATA, K_DATA, K_BINARY, K_PARAM1,
       H_CHANNEL, H_PROVIDER, H_EVENT_ID, H_RECORD_NUMBER, H_COMPUTER, H_LEVEL, H_TASK, H_OPCODE,
       H_KEYWORDS, H_VERSION, H_PROCESS_ID, H_THREAD_ID, H_USER_SID, H_ACTIVITY_ID, K_COUNT };
static const char *key_names[K_COUNT] = {
    "Event", "System", "Provider", "EventID", "Version", "Level", "Task", "Opcode", "Keywords",
    "TimeCreated", "Correlation", "Execution", "Channel", "Computer", "Security", "#attributes",
    "Name", "EventSourceName", "#text", "SystemTime", "ProcessID", "ThreadID", "UserID",
    "ActivityID", "EventData", "UserData", "Data", "Binary", "param1",
    "channel", "provider", "event_id", "record_number", "computer", "level", "task", "opcode",
    "keywords", "version", "process_id", "thread_id", "user_sid", "activity_id"};
static PyObject *keys[K_COUNT];
static Py_ssize_t key_lengths[K_COUNT];
static PyObject *empty_text;

enum { OK = 0, DECLINE = 1, ERROR = -1 };

/* dict.get(key), borrowed; NULL when missing or on an error (see PyErr_Occurred). */
static PyObject *
get(PyObject *dict, int key)
{
    return PyDict_GetItemWithError(dict, keys[key]);
}

static int
truthy(PyObject *value)
{
    return value != NULL && value != Py_None && PyObject_IsTrue(value) > 0;
}

static int
is_empty_text(PyObject *value)
{
    return PyUnicode_CheckExact(value) && PyUnicode_GET_LENGTH(value) == 0;
}

/* head[name] = value.get("#text") if value is a dict else value, for a value that is not None. */
static int
put_unwrapped(PyObject *head, int name, PyObject *value)
{
    if (value == NULL || value == Py_None)
        return OK;
    if (PyDict_CheckExact(value)) {
        value = get(value, K_TEXT);
        if (value == NULL) {
            if (PyErr_Occurred())
                return ERROR;
            value = Py_None;
        }
    }
    else if (PyDict_Check(value))
        return DECLINE;
    return PyDict_SetItem(head, keys[name], value) < 0 ? ERROR : OK;
}

/* *inner = outer["#attributes"] (borrowed) when outer is a dict and that is not empty, else NULL:
 * the `type(x) is dict` / `.get("#attributes")` / `if inner:` step of read_fields. A dict subclass
 * outside, or a non-empty value that is not a dict inside, is Python's to answer (DECLINE). */
static int
attributes_of(PyObject *outer, PyObject **inner)
{
    *inner = NULL;
    if (outer == NULL || !PyDict_Check(outer))
        return OK;
    if (!PyDict_CheckExact(outer))
        return DECLINE;
    PyObject *value = get(outer, K_ATTRIBUTES);
    if (value == NULL)
        return PyErr_Occurred() ? ERROR : OK;
    if (!truthy(value))
        return OK;
    if (!PyDict_CheckExact(value))
        return DECLINE;
    *inner = value;
    return OK;
}

/* head[name] = outer["#attributes"][key] when outer is a dict, the inner one is not empty and
 * the item is neither None nor "". */
static int
put_attribute(PyObject *head, int name, PyObject *outer, int key)
{
    PyObject *inner;
    int status = attributes_of(outer, &inner);
    if (status != OK || inner == NULL)
        return status;
    PyObject *item = get(inner, key);
    if (item == NULL)
        return PyErr_Occurred() ? ERROR : OK;
    if (item == Py_None || is_empty_text(item))
        return OK;
    if (!PyUnicode_CheckExact(item) && !PyLong_CheckExact(item))
        return DECLINE;  /* what != "" means for other types is Python's to say */
    return PyDict_SetItem(head, keys[name], item) < 0 ? ERROR : OK;
}

static int
digits(const char *s, int count, int *value)
{
    *value = 0;
    for (int i = 0; i < count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *value = *value * 10 + (s[i] - '0');
    }
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long long
days_from_civil(int year, int month, int day)
{
    long long y = year - (month <= 2);
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* parse_time of "YYYY-MM-DDTHH:MM:SS.ffffffZ" (what the evtx library writes); DECLINE for any
 * other form, which the Python function reads. */
static int
fast_time(PyObject *text, PyObject **result)
{
    Py_ssize_t size;
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return DECLINE;
    const char *s = PyUnicode_AsUTF8AndSize(text, &size);
    if (s == NULL)
        return ERROR;
    if (size != 27 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':'
        || s[19] != '.' || s[26] != 'Z')
        return DECLINE;
    if (memcmp(s, "1601-01-01T00:00:00", 19) == 0) {  /* a zero FILETIME: no time */
        Py_INCREF(Py_None);
        *result = Py_None;
        return OK;
    }
    int year, month, day, hour, minute, second, micros;
    if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day)
        || !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &minute) || !digits(s + 17, 2, &second)
        || !digits(s + 20, 6, &micros))
        return DECLINE;
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month - 1]
        || (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 59)
        return DECLINE;  /* fromisoformat refuses it: the Python function says None */
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL + second;
    *result = PyLong_FromLongLong(seconds * 1000000LL + micros);
    return *result == NULL ? ERROR : OK;
}

/* event_data(event) for named scalar EventData and no UserData; DECLINE otherwise. */
static int
fast_event_data(PyObject *event, PyObject **result)
{
    PyObject *user_data = get(event, K_USER_DATA);
    if (user_data != NULL && PyDict_Check(user_data))
        return DECLINE;
    PyObject *data = get(event, K_EVENT_DATA);
    if (PyErr_Occurred())
        return ERROR;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return ERROR;
    if (data != NULL && PyDict_CheckExact(data)) {
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(data, &position, &key, &value)) {
            if (!PyUnicode_CheckExact(key))
                goto decline;
            if (PyUnicode_Compare(key, keys[K_ATTRIBUTES]) == 0)
                continue;
            if (PyDict_Check(value) || PyUnicode_Compare(key, keys[K_DATA]) == 0)
                goto decline;  /* nested or positional data: _flatten and _text's work */
            if (value == Py_None && PyUnicode_Compare(key, keys[K_BINARY]) == 0)
                continue;
            if (PyDict_SetItem(out, key, value) < 0)
                goto error;
        }
    }
    else if (data != NULL && data != Py_None) {
        if (PyDict_Check(data))
            goto decline;
        if (PyDict_SetItem(out, keys[K_PARAM1], data) < 0)
            goto error;
    }
    *result = out;
    return OK;
decline:
    Py_DECREF(out);
    return DECLINE;
error:
    Py_DECREF(out);
    return ERROR;
}

/* The System fields every record has, in read_fields' order: channel, provider, event ID,
 * record number, and the computer where there is one. */
static PyObject *
new_head(PyObject *record_number, PyObject *channel, PyObject *provider_name, PyObject *event_id,
         PyObject *computer)
{
    PyObject *head = PyDict_New();
    if (head == NULL)
        return NULL;
    if (PyDict_SetItem(head, keys[H_CHANNEL], channel) < 0
        || PyDict_SetItem(head, keys[H_PROVIDER], provider_name) < 0
        || PyDict_SetItem(head, keys[H_EVENT_ID], event_id) < 0
        || PyDict_SetItem(head, keys[H_RECORD_NUMBER], record_number) < 0
        || (computer != Py_None && PyDict_SetItem(head, keys[H_COMPUTER], computer) < 0)) {
        Py_DECREF(head);
        return NULL;
    }
    return head;
}

/* The System fields kept as they are or as their "#text": (head name, System name). */
static const int unwrapped[5][2] = {{H_LEVEL, K_LEVEL}, {H_TASK, K_TASK}, {H_OPCODE, K_OPCODE},
                                    {H_KEYWORDS, K_KEYWORDS}, {H_VERSION, K_VERSION}};

/* The fields, or DECLINE. */
static int
fast_fields(PyObject *record_number, PyObject *parsed, PyObject **result)
{
    if (!PyDict_CheckExact(parsed))
        return DECLINE;
    PyObject *event = get(parsed, K_EVENT);
    if (event == NULL) {
        if (PyErr_Occurred())
            return ERROR;
        event = parsed;
    }
    if (!PyDict_CheckExact(event))
        return DECLINE;
    PyObject *system = get(event, K_SYSTEM);
    if (PyErr_Occurred())
        return ERROR;
    if (!truthy(system))
        system = NULL;  /* "or {}" */
    else if (!PyDict_CheckExact(system))
        return DECLINE;
    PyObject *field[K_SECURITY + 1] = {NULL};
    if (system != NULL) {
        for (int k = K_PROVIDER; k <= K_SECURITY; k++)
            field[k] = get(system, k);
        if (PyErr_Occurred())
            return ERROR;
    }

    /* provider name: str(attrs.get("Name") or attrs.get("EventSourceName") or "") */
    PyObject *provider_name = empty_text, *attrs;
    int status = attributes_of(field[K_PROVIDER], &attrs);
    if (status != OK)
        return status;
    if (attrs != NULL) {
        PyObject *name = get(attrs, K_NAME);
        if (!truthy(name))
            name = get(attrs, K_EVENT_SOURCE_NAME);
        if (truthy(name)) {
            if (!PyUnicode_CheckExact(name))
                return DECLINE;
            provider_name = name;
        }
        if (PyErr_Occurred())
            return ERROR;
    }

    PyObject *event_id = field[K_EVENT_ID];
    if (event_id != NULL && PyDict_CheckExact(event_id)) {
        event_id = get(event_id, K_TEXT);
        if (PyErr_Occurred())
            return ERROR;
    }
    if (event_id == NULL)
        event_id = Py_None;
    if (event_id != Py_None && !PyLong_CheckExact(event_id))
        return DECLINE;

    PyObject *time_text = Py_None, *created;
    if ((status = attributes_of(field[K_TIME_CREATED], &created)) != OK)
        return status;
    if (created != NULL) {
        time_text = get(created, K_SYSTEM_TIME);
        if (time_text == NULL) {
            if (PyErr_Occurred())
                return ERROR;
            time_text = Py_None;
        }
    }

    PyObject *channel = field[K_CHANNEL];
    if (channel == NULL || channel == Py_None)
        channel = empty_text;
    else if (!PyUnicode_CheckExact(channel))
        return DECLINE;
    PyObject *computer = field[K_COMPUTER];
    if (computer == NULL || !PyUnicode_CheckExact(computer) || PyUnicode_GET_LENGTH(computer) == 0) {
        if (computer != NULL && computer != Py_None && !is_empty_text(computer))
            return DECLINE;
        computer = Py_None;
    }

    PyObject *time = NULL, *head = NULL, *data = NULL;
    status = Py_None == time_text ? (Py_INCREF(Py_None), time = Py_None, OK) : fast_time(time_text, &time);
    if (status != OK)
        return status;
    head = new_head(record_number, channel, provider_name, event_id, computer);
    if (head == NULL)
        goto error;
    for (int i = 0; i < 5; i++) {
        if ((status = put_unwrapped(head, unwrapped[i][0], field[unwrapped[i][1]])) != OK)
            goto fail;
    }
    if ((status = put_attribute(head, H_PROCESS_ID, field[K_EXECUTION], K_PROCESS_ID)) != OK
        || (status = put_attribute(head, H_THREAD_ID, field[K_EXECUTION], K_THREAD_ID)) != OK
        || (status = put_attribute(head, H_USER_SID, field[K_SECURITY], K_USER_ID)) != OK
        || (status = put_attribute(head, H_ACTIVITY_ID, field[K_CORRELATION], K_ACTIVITY_ID)) != OK)
        goto fail;
    if ((status = fast_event_data(event, &data)) != OK)
        goto fail;
    *result = PyTuple_Pack(7, event_id, channel, provider_name, computer, time, head, data);
    Py_DECREF(time);
    Py_DECREF(head);
    Py_DECREF(data);
    return *result == NULL ? ERROR : OK;
error:
    status = ERROR;
fail:
    Py_XDECREF(time);
    Py_XDECREF(head);
    Py_XDECREF(data);
    return status;
}

/* -- read_json: the same fields straight from the library's JSON text -------------------------- */

/* The text is tokenised into a flat tree of nodes that point into it (no Python object), and the
 * fields are read from that tree with read_fields' rules: only the values a record keeps become
 * Python objects, where orjson.loads would build some 25 dicts and strings a record for
 * read_fields to read a dozen values out of and then free. Anything outside the plain JSON the
 * evtx library writes (a float, an array where a value is kept, a \u escape of a surrogate, a raw
 * control character, an integer beyond 18 digits, an escaped key, a repeated event data name,
 * deep nesting, a tree of more than MAX_NODES nodes) is DECLINEd: the caller then decodes with
 * orjson and calls read_fields as before. */

#define MAX_NODES 1024 /* ~48 KB of stack */
#define MAX_DEPTH 48

enum { T_OBJECT, T_ARRAY, T_STRING, T_INT, T_TRUE, T_FALSE, T_NULL };

typedef struct {
    unsigned char type;
    unsigned char escaped;  /* a string with backslash escapes */
    unsigned char ascii;    /* a string of ASCII bytes only */
    int next;               /* index of the node after this one's subtree */
    int count;              /* an object's members, an array's items */
    const char *start;      /* a string's text (without its quotes) */
    Py_ssize_t length;
    long long number;       /* an integer's value */
} Node;

typedef struct {
    const char *at, *end;
    Node *nodes;
    int used;
} Doc;

static void
skip_space(Doc *d)
{
    while (d->at < d->end && (*d->at == ' ' || *d->at == '\t' || *d->at == '\n' || *d->at == '\r'))
        d->at++;
}

static int parse_value(Doc *d, int depth);

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code point of the four hex digits of a \u escape at `at`; -1 where they are not four hex
 * digits, or name a surrogate (paired or lone: orjson's, or json's, to read). */
static int
escape_code(const char *at, const char *end)
{
    if (end - at < 4)
        return -1;
    int code = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(at[i]);
        if (digit < 0)
            return -1;
        code = code * 16 + digit;
    }
    return code >= 0xD800 && code <= 0xDFFF ? -1 : code;
}

/* Index of the first '"', '\\', control byte or (via *high) non-ASCII byte at or after at. */
static const char *
scan_string(const char *at, const char *end, int *high)
{
#ifdef HAVE_SSE2_PATH
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x1f);
    while (end - at >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)at);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(x, below), below));
        int mask = _mm_movemask_epi8(hit);
        int upper = _mm_movemask_epi8(x);  /* bytes >= 0x80 */
        if (mask) {
            int first = __builtin_ctz(mask);
            if (upper & ((1 << first) - 1))
                *high = 1;
            return at + first;
        }
        if (upper)
            *high = 1;
        at += 16;
    }
#endif
    for (; at < end; at++) {
        unsigned char c = (unsigned char)*at;
        if (c == '"' || c == '\\' || c < 0x20)
            return at;
        if (c >= 0x80)
            *high = 1;
    }
    return at;
}

/* A string's node (the cursor on its opening quote); -1 to decline. */
static int
parse_string(Doc *d)
{
    if (d->used >= MAX_NODES)
        return -1;
    const char *at = d->at + 1;
    int escaped = 0, high = 0;
    for (;;) {
        at = scan_string(at, d->end, &high);
        if (at >= d->end || (unsigned char)*at < 0x20)
            return -1;  /* cut short, or a raw control character: orjson refuses it, the caller warns */
        if (*at == '"')
            break;
        /* a backslash */
        escaped = 1;
        if (at + 1 >= d->end || at[1] == '\0' || !strchr("\"\\/bfnrtu", at[1]))
            return -1;  /* not a JSON escape */
        if (at[1] == 'u') {
            if (escape_code(at + 2, d->end) < 0)
                return -1;
            at += 4;
        }
        at += 2;
    }
    Node *node = &d->nodes[d->used];
    node->type = T_STRING;
    node->escaped = (unsigned char)escaped;
    node->ascii = (unsigned char)!high;
    node->start = d->at + 1;
    node->length = at - (d->at + 1);
    node->count = 0;
    node->next = ++d->used;
    d->at = at + 1;
    return (int)(node - d->nodes);
}

static int
parse_number(Doc *d)
{
    const char *at = d->at;
    int negative = 0;
    if (*at == '-') {
        negative = 1;
        at++;
    }
    const char *digits_start = at;
    while (at < d->end && *at >= '0' && *at <= '9')
        at++;
    Py_ssize_t count = at - digits_start;
    if (count == 0 || count > 18 || (count > 1 && *digits_start == '0'))
        return -1;
    if (at < d->end && (*at == '.' || *at == 'e' || *at == 'E'))
        return -1;  /* a float: orjson's to make */
    if (d->used >= MAX_NODES)
        return -1;
    long long value = 0;
    for (const char *p = digits_start; p < at; p++)
        value = value * 10 + (*p - '0');
    Node *node = &d->nodes[d->used];
    node->type = T_INT;
    node->escaped = 0;
    node->number = negative ? -value : value;
    node->start = d->at;
    node->length = at - d->at;
    node->count = 0;
    node->next = ++d->used;
    d->at = at;
    return (int)(node - d->nodes);
}

static int
parse_literal(Doc *d, const char *word, int type)
{
    size_t size = strlen(word);
    if ((size_t)(d->end - d->at) < size || memcmp(d->at, word, size) != 0 || d->used >= MAX_NODES)
        return -1;
    Node *node = &d->nodes[d->used];
    node->type = (unsigned char)type;
    node->escaped = 0;
    node->count = 0;
    node->start = d->at;
    node->length = (Py_ssize_t)size;
    node->next = ++d->used;
    d->at += size;
    return (int)(node - d->nodes);
}

/* An object's or an array's node and its subtree (the cursor on its bracket). */
static int
parse_container(Doc *d, int depth, int object)
{
    if (depth > MAX_DEPTH || d->used >= MAX_NODES)
        return -1;
    int index = d->used++;
    d->at++;
    int count = 0;
    char close = object ? '}' : ']';
    skip_space(d);
    if (d->at < d->end && *d->at == close)
        d->at++;
    else {
        for (;;) {
            skip_space(d);
            if (object) {
                if (d->at >= d->end || *d->at != '"')
                    return -1;
                int key = parse_string(d);
                if (key < 0 || d->nodes[key].escaped)
                    return -1;  /* an escaped key: orjson's to read */
                skip_space(d);
                if (d->at >= d->end || *d->at != ':')
                    return -1;
                d->at++;
            }
            if (parse_value(d, depth + 1) < 0)
                return -1;
            count++;
            skip_space(d);
            if (d->at >= d->end)
                return -1;
            if (*d->at == ',') {
                d->at++;
                continue;
            }
            if (*d->at != close)
                return -1;
            d->at++;
            break;
        }
    }
    Node *node = &d->nodes[index];
    node->type = object ? T_OBJECT : T_ARRAY;
    node->escaped = 0;
    node->count = count;
    node->next = d->used;
    return index;
}

static int
parse_value(Doc *d, int depth)
{
    skip_space(d);
    if (d->at >= d->end)
        return -1;
    switch (*d->at) {
    case '{': return parse_container(d, depth, 1);
    case '[': return parse_container(d, depth, 0);
    case '"': return parse_string(d);
    case 't': return parse_literal(d, "true", T_TRUE);
    case 'f': return parse_literal(d, "false", T_FALSE);
    case 'n': return parse_literal(d, "null", T_NULL);
    default:
        if (*d->at == '-' || (*d->at >= '0' && *d->at <= '9'))
            return parse_number(d);
        return -1;
    }
}

/* Whether a member's name is key (size bytes long). */
static inline int
name_is(const Node *name, const char *key, Py_ssize_t size)
{
    return name->length == size && memcmp(name->start, key, size) == 0;
}

/* obj.get(key): the index of the last member's value of that name (a dict keeps the last), or -1. */
static int
member(const Doc *d, int object, const char *key)
{
    if (object < 0 || d->nodes[object].type != T_OBJECT)
        return -1;
    size_t size = strlen(key);
    int found = -1, at = object + 1;
    for (int i = 0; i < d->nodes[object].count; i++) {
        const Node *name = &d->nodes[at];
        int value = at + 1;
        if (name_is(name, key, (Py_ssize_t)size))
            found = value;
        at = d->nodes[value].next;
    }
    return found;
}

static int is_null(const Doc *d, int node) { return node < 0 || d->nodes[node].type == T_NULL; }

/* bool(value) of a node that is not a float: the JSON value's truth. */
static int
node_truthy(const Doc *d, int node)
{
    if (node < 0)
        return 0;
    const Node *n = &d->nodes[node];
    switch (n->type) {
    case T_OBJECT: case T_ARRAY: return n->count > 0;
    case T_STRING: return n->length > 0;  /* an escape is at least one character */
    case T_INT: return n->number != 0;
    case T_TRUE: return 1;
    default: return 0;
    }
}

/* Short ASCII strings recur from record to record (names, channels, hosts, states): one str
 * each, kept in a direct-mapped cache as orjson keeps its keys, instead of a new one per record. */
#define TEXT_CACHE_SIZE 1024
#define TEXT_CACHE_MAX 48
static PyObject *text_cache[TEXT_CACHE_SIZE];

static PyObject *
ascii_text(const char *start, Py_ssize_t length)
{
    PyObject *text = PyUnicode_New(length, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), start, length);
    return text;
}

static PyObject *
cached_text(const char *start, Py_ssize_t length)
{
    uint32_t hash = 2166136261u;  /* FNV-1a */
    for (Py_ssize_t i = 0; i < length; i++)
        hash = (hash ^ (unsigned char)start[i]) * 16777619u;
    PyObject **slot = &text_cache[hash & (TEXT_CACHE_SIZE - 1)];
    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == length
        && memcmp(PyUnicode_1BYTE_DATA(*slot), start, length) == 0)
        return Py_NewRef(*slot);
    PyObject *text = ascii_text(start, length);
    if (text == NULL || PyObject_Hash(text) == -1) {  /* hashed once, for every dict it goes in */
        Py_XDECREF(text);
        return NULL;
    }
    Py_XSETREF(*slot, Py_NewRef(text));
    return text;
}

/* A string node's text as a str; NULL with no error set to decline. */
static PyObject *
string_value(const Node *n)
{
    if (!n->escaped && n->ascii)
        return n->length <= TEXT_CACHE_MAX ? cached_text(n->start, n->length) : ascii_text(n->start, n->length);
    if (!n->escaped)
        return PyUnicode_DecodeUTF8(n->start, n->length, NULL);
    char local[512], *out = n->length <= (Py_ssize_t)sizeof local ? local : PyMem_Malloc(n->length);
    if (out == NULL)
        return PyErr_NoMemory();
    Py_ssize_t size = 0;
    const char *at = n->start, *end = n->start + n->length;
    PyObject *result = NULL;
    while (at < end) {
        if (*at != '\\') {
            out[size++] = *at++;
            continue;
        }
        char c = at[1];
        at += 2;
        switch (c) {
        case '"': out[size++] = '"'; break;
        case '\\': out[size++] = '\\'; break;
        case '/': out[size++] = '/'; break;
        case 'b': out[size++] = '\b'; break;
        case 'f': out[size++] = '\f'; break;
        case 'n': out[size++] = '\n'; break;
        case 'r': out[size++] = '\r'; break;
        case 't': out[size++] = '\t'; break;
        case 'u': {
            int code = escape_code(at, end);
            if (code < 0)
                goto done;
            at += 4;
            /* UTF-8 of the code point: never longer than the six characters of its escape */
            if (code < 0x80)
                out[size++] = (char)code;
            else if (code < 0x800) {
                out[size++] = (char)(0xC0 | (code >> 6));
                out[size++] = (char)(0x80 | (code & 0x3F));
            }
            else {
                out[size++] = (char)(0xE0 | (code >> 12));
                out[size++] = (char)(0x80 | ((code >> 6) & 0x3F));
                out[size++] = (char)(0x80 | (code & 0x3F));
            }
            break;
        }
        default:
            goto done;  /* not a JSON escape */
        }
    }
    result = PyUnicode_DecodeUTF8(out, size, NULL);
done:
    if (out != local)
        PyMem_Free(out);
    return result;
}

/* A scalar node (string, integer, true, false, null) as a Python value; NULL with no error set to
 * decline (an object or an array). */
static PyObject *
scalar_value(const Doc *d, int node)
{
    const Node *n = &d->nodes[node];
    switch (n->type) {
    case T_STRING: return string_value(n);
    case T_INT: return PyLong_FromLongLong(n->number);
    case T_TRUE: Py_RETURN_TRUE;
    case T_FALSE: Py_RETURN_FALSE;
    case T_NULL: Py_RETURN_NONE;
    default: return NULL;
    }
}

/* A Python value for a node, to status: OK, DECLINE or ERROR. */
static int
value_of(const Doc *d, int node, PyObject **value)
{
    *value = scalar_value(d, node);
    if (*value != NULL)
        return OK;
    return PyErr_Occurred() ? ERROR : DECLINE;
}

/* attributes_of over nodes: the "#attributes" object of outer when outer is an object and that is
 * truthy; -1 when there is none; DECLINE (as -2) for a truthy value that is not an object. */
static int
node_attributes(const Doc *d, int outer)
{
    if (outer < 0 || d->nodes[outer].type != T_OBJECT)
        return -1;
    int inner = member(d, outer, "#attributes");
    if (!node_truthy(d, inner))
        return -1;
    return d->nodes[inner].type == T_OBJECT ? inner : -2;
}

/* head[name] = the scalar value of node. */
static int
put_node(const Doc *d, PyObject *head, int name, int node)
{
    PyObject *value;
    int status = value_of(d, node, &value);
    if (status != OK)
        return status;
    status = PyDict_SetItem(head, keys[name], value) < 0 ? ERROR : OK;
    Py_DECREF(value);
    return status;
}

/* head[name] = value.get("#text") if value is a dict else value, for a value that is not None. */
static int
put_unwrapped_node(const Doc *d, PyObject *head, int name, int node)
{
    if (is_null(d, node))
        return OK;
    if (d->nodes[node].type == T_OBJECT) {
        node = member(d, node, "#text");
        if (node < 0)
            return PyDict_SetItem(head, keys[name], Py_None) < 0 ? ERROR : OK;
    }
    return put_node(d, head, name, node);
}

/* head[name] = outer["#attributes"][key] unless missing, None or "" (a str or an int only). */
static int
put_attribute_node(const Doc *d, PyObject *head, int name, int outer, const char *key)
{
    int inner = node_attributes(d, outer);
    if (inner == -2)
        return DECLINE;
    if (inner < 0)
        return OK;
    int item = member(d, inner, key);
    if (is_null(d, item))
        return OK;
    const Node *n = &d->nodes[item];
    if (n->type == T_STRING && n->length == 0)
        return OK;
    if (n->type != T_STRING && n->type != T_INT)
        return DECLINE;
    return put_node(d, head, name, item);
}

/* event_data over nodes, for named scalar EventData and no UserData object. */
static int
node_event_data(const Doc *d, int event, PyObject **result)
{
    int user_data = member(d, event, "UserData");
    if (user_data >= 0 && d->nodes[user_data].type == T_OBJECT)
        return DECLINE;
    int data = member(d, event, "EventData");
    PyObject *out = PyDict_New(), *value = NULL;
    if (out == NULL)
        return ERROR;
    int status = OK;
    if (data >= 0 && d->nodes[data].type == T_OBJECT) {
        int at = data + 1, kept = 0, binary_kept = 0, binary_skipped = 0;
        for (int i = 0; i < d->nodes[data].count; i++) {
            const Node *name = &d->nodes[at];
            int item = at + 1;
            at = d->nodes[item].next;
            if (name_is(name, "#attributes", 11))
                continue;
            if (d->nodes[item].type == T_OBJECT || name_is(name, "Data", 4)) {
                status = DECLINE;  /* nested or positional data: _flatten and _text's work */
                goto done;
            }
            if (name_is(name, "Binary", 6)) {
                if (d->nodes[item].type == T_NULL) {
                    binary_skipped = 1;
                    continue;
                }
                binary_kept = 1;
            }
            PyObject *key = string_value(name);
            if (key == NULL) {
                status = ERROR;
                goto done;
            }
            status = value_of(d, item, &value);
            if (status == OK && PyDict_SetItem(out, key, value) < 0)
                status = ERROR;
            Py_DECREF(key);
            Py_CLEAR(value);
            if (status != OK)
                goto done;
            kept++;
        }
        if (PyDict_GET_SIZE(out) != kept || (binary_kept && binary_skipped))
            status = DECLINE;  /* a repeated name: which one a dict keeps is orjson's to say */
    }
    else if (!is_null(d, data)) {
        if ((status = value_of(d, data, &value)) == OK && PyDict_SetItem(out, keys[K_PARAM1], value) < 0)
            status = ERROR;
        Py_CLEAR(value);
    }
done:
    if (status == OK)
        *result = out;
    else
        Py_DECREF(out);
    return status;
}

/* A System text (Channel, Computer) as read_fields takes it: missing or null, or "" where
 * empty_is_missing, gives *out = missing; a string its str; anything else DECLINE. */
static int
text_field(const Doc *d, int node, PyObject *missing, int empty_is_missing, PyObject **out)
{
    if (is_null(d, node) || (empty_is_missing && d->nodes[node].type == T_STRING && d->nodes[node].length == 0)) {
        *out = Py_NewRef(missing);
        return OK;
    }
    if (d->nodes[node].type != T_STRING)
        return DECLINE;
    *out = string_value(&d->nodes[node]);
    return *out != NULL ? OK : PyErr_Occurred() ? ERROR : DECLINE;
}

/* fast_fields over the text's nodes. */
static int
json_fields(PyObject *record_number, const Doc *d, PyObject **result)
{
    if (d->nodes[0].type != T_OBJECT)
        return DECLINE;
    int event = member(d, 0, "Event");
    if (event < 0)
        event = 0;
    if (d->nodes[event].type != T_OBJECT)
        return DECLINE;
    int system = member(d, event, "System");
    if (is_null(d, system) || (d->nodes[system].type == T_OBJECT && d->nodes[system].count == 0))
        system = -1;  /* "or {}" */
    else if (d->nodes[system].type != T_OBJECT)
        return DECLINE;
    /* The System members, in one pass (a dict keeps the last of a repeated name). */
    int field[K_SECURITY + 1];
    for (int k = K_PROVIDER; k <= K_SECURITY; k++)
        field[k] = -1;
    if (system >= 0) {
        int at = system + 1;
        for (int i = 0; i < d->nodes[system].count; i++) {
            const Node *name = &d->nodes[at];
            for (int k = K_PROVIDER; k <= K_SECURITY; k++) {
                if (name_is(name, key_names[k], key_lengths[k])) {
                    field[k] = at + 1;
                    break;
                }
            }
            at = d->nodes[at + 1].next;
        }
    }

    PyObject *provider_name = NULL, *event_id = NULL, *channel = NULL, *computer = NULL, *time = NULL,
             *head = NULL, *data = NULL;
    int status = DECLINE;
    int attrs = node_attributes(d, field[K_PROVIDER]);
    if (attrs == -2)
        goto fail;
    if (attrs >= 0) {
        int name = member(d, attrs, "Name");
        if (!node_truthy(d, name))
            name = member(d, attrs, "EventSourceName");
        if (node_truthy(d, name)) {
            if (d->nodes[name].type != T_STRING)
                goto fail;
            if ((status = value_of(d, name, &provider_name)) != OK)
                goto fail;
        }
    }
    if (provider_name == NULL)
        provider_name = Py_NewRef(empty_text);

    int id = field[K_EVENT_ID];
    if (id >= 0 && d->nodes[id].type == T_OBJECT)
        id = member(d, id, "#text");
    if (is_null(d, id))
        event_id = Py_NewRef(Py_None);
    else if (d->nodes[id].type != T_INT) {
        status = DECLINE;
        goto fail;
    }
    else if ((event_id = PyLong_FromLongLong(d->nodes[id].number)) == NULL)
        goto error;

    int created = node_attributes(d, field[K_TIME_CREATED]);
    if (created == -2) {
        status = DECLINE;
        goto fail;
    }
    int time_node = created >= 0 ? member(d, created, "SystemTime") : -1;
    if (is_null(d, time_node))
        time = Py_NewRef(Py_None);
    else {
        const Node *n = &d->nodes[time_node];
        if (n->type != T_STRING || n->escaped) {
            status = DECLINE;
            goto fail;
        }
        PyObject *text = string_value(n);
        if (text == NULL)
            goto error;
        status = fast_time(text, &time);
        Py_DECREF(text);
        if (status != OK)
            goto fail;
    }

    if ((status = text_field(d, field[K_CHANNEL], empty_text, 0, &channel)) != OK
        || (status = text_field(d, field[K_COMPUTER], Py_None, 1, &computer)) != OK)
        goto fail;

    head = new_head(record_number, channel, provider_name, event_id, computer);
    if (head == NULL)
        goto error;
    for (int i = 0; i < 5; i++) {
        if ((status = put_unwrapped_node(d, head, unwrapped[i][0], field[unwrapped[i][1]])) != OK)
            goto fail;
    }
    if ((status = put_attribute_node(d, head, H_PROCESS_ID, field[K_EXECUTION], "ProcessID")) != OK
        || (status = put_attribute_node(d, head, H_THREAD_ID, field[K_EXECUTION], "ThreadID")) != OK
        || (status = put_attribute_node(d, head, H_USER_SID, field[K_SECURITY], "UserID")) != OK
        || (status = put_attribute_node(d, head, H_ACTIVITY_ID, field[K_CORRELATION], "ActivityID")) != OK)
        goto fail;
    if ((status = node_event_data(d, event, &data)) != OK)
        goto fail;
    *result = PyTuple_Pack(7, event_id, channel, provider_name, computer, time, head, data);
    status = *result == NULL ? ERROR : OK;
    goto fail;
error:
    status = ERROR;
fail:
    Py_XDECREF(provider_name);
    Py_XDECREF(event_id);
    Py_XDECREF(channel);
    Py_XDECREF(computer);
    Py_XDECREF(time);
    Py_XDECREF(head);
    Py_XDECREF(data);
    return status;
}

static PyObject *
read_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_json() takes 2 arguments");
        return NULL;
    }
    if (!PyUnicode_CheckExact(args[1]))
        Py_RETURN_NONE;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(args[1], &size);
    if (text == NULL) {  /* lone surrogates: not UTF-8 */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Node nodes[MAX_NODES];
    Doc doc = {text, text + size, nodes, 0};
    if (parse_value(&doc, 0) != 0)
        Py_RETURN_NONE;
    skip_space(&doc);
    if (doc.at != doc.end)
        Py_RETURN_NONE;
    PyObject *result = NULL;
    int status = json_fields(args[0], &doc, &result);
    if (status == OK)
        return result;
    PyErr_Clear();  /* errors included: the full decoding answers, or raises, as it would have */
    Py_RETURN_NONE;
}

static PyObject *
read_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_fields() takes 2 arguments");
        return NULL;
    }
    if (python_read_fields == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_evtxread.configure() was not called");
        return NULL;
    }
    PyObject *result = NULL;
    int status = fast_fields(args[0], args[1], &result);
    if (status == OK)
        return result;
    /* Anything else, errors included, is the Python function's to answer. */
    PyErr_Clear();
    return PyObject_Vectorcall(python_read_fields, args, 2, NULL);
}

static PyObject *
configure(PyObject *module, PyObject *function)
{
    if (!PyCallable_Check(function)) {
        PyErr_SetString(PyExc_TypeError, "configure(read_fields) takes the Python function");
        return NULL;
    }
    Py_INCREF(function);
    Py_XSETREF(python_read_fields, function);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O,
     "configure(read_fields): the Python function this one hands the other records to."},
    {"read_fields", (PyCFunction)(void (*)(void))read_fields, METH_FASTCALL,
     "read_fields(record_number, parsed) -> what parsers.evtx_events.read_fields returns."},
    {"read_json", (PyCFunction)(void (*)(void))read_json, METH_FASTCALL,
     "read_json(record_number, text) -> read_fields(record_number, orjson.loads(text)), or None "
     "where the text is to be decoded and read in full."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_evtxread",
    "The EVTX parser's per-record System block read in C (optional; see parsers/evtx_events.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__evtxread(void)
{
    for (int i = 0; i < K_COUNT; i++) {
        if (keys[i] == NULL && (keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return NULL;
        key_lengths[i] = (Py_ssize_t)strlen(key_names[i]);
    }
    if (empty_text == NULL && (empty_text = PyUnicode_InternFromString("")) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
