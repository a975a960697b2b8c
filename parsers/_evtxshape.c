/* parsers._evtxshape: the EVTX parser's common record (parsers.evtx._Builder.fast with
 * parsers.evtx_events.describe), in C.
 *
 * Optional speed-up (built by setup.py where a C compiler is available; the parser uses the
 * Python methods without it). configure(shapers, data_types, message_chars) hands it the
 * channel shapers, the kind -> record type cache and the message length; then
 *
 *   shape(context, order, fields, offset)
 *
 * returns the Record that _Builder.fast(order, fields, offset) returns, built the way
 * Record.quick builds it, or None, and the Python method makes it as if this did not exist:
 * for a byte offset (a carved record), fields not as read_fields gives them, or a shaper's
 * answer not of the form (str, dict, dict, str). It declines before it changes anything (the
 * System fields' dict becomes the attributes, as in describe). The channel shapers stay Python
 * (called from here), so what each channel means is written once. context is the file's
 * (Record class, provenance, parser name, default host, default user, recovered, time label).
 * tests/parsers/test_evtx_native.py checks both give the same records.
 *
 * Why: after the library's JSON and its decoding, building the record (the attribute dict, the
 * user, the "key=value" summary and its one-line message, the record itself) was the parser's
 * largest cost, some 35 k instructions a record spread over small Python steps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_MESSAGE 1024 /* bound on message_chars (the line is on the stack) */
#define SUMMARY_PAIRS 6  /* _pairs_summary: the first six non-empty data fields */

static PyObject *shapers;       /* channel -> shaper(event_id, provider, data) */
static PyObject *data_types;    /* kind -> "windows:evtx:" + kind */
static int message_chars = -1;  /* one_line's limit */

enum { K_USER_SID, K_USER_NAME, K_CONTEXT_USER, K_RECORD, K_DATA_TYPE_PREFIX, K_DASH, K_EMPTY,
       K_DICT, K_BACKSLASH, K_ELLIPSIS,
       R_DATA_TYPE, R_MESSAGE, R_PROVENANCE, R_PARSER, R_ORDER, R_TIMESTAMPS, R_TIME_BOUNDS,
       R_ATTRIBUTES, R_HOST, R_USER, R_RECOVERED, R_CORRUPTED, R_TAGS,
       U_SUBJECT_DOMAIN, U_SUBJECT_USER, U_TARGET_DOMAIN, U_TARGET_USER, U_USER, U_USER_ID,
       U_USER_NAME, U_CALLER, K_COUNT };
static const char *key_names[K_COUNT] = {
    "user_sid", "user_name", "context_User", "record", "windows:evtx:", "-", "",
    "__dict__", "\\", "\xe2\x80\xa6",
    "data_type", "message", "provenance", "parser", "order", "timestamps", "time_bounds",
    "attributes", "host", "user", "recovered", "corrupted", "tags",
    "SubjectDomainName", "SubjectUserName", "TargetDomainName", "TargetUserName", "User", "UserId",
    "UserName", "caller"};
static PyObject *keys[K_COUNT];
static PyObject *empty_tuple;

/* _USER_FIELDS of evtx_events, and _user_from's order: (domain, name) pairs, then single keys. */
static const int user_fields[] = {U_SUBJECT_USER, U_TARGET_USER, U_USER, U_USER_ID, U_USER_NAME, U_CALLER};
static const int user_pairs[][2] = {{U_SUBJECT_DOMAIN, U_SUBJECT_USER}, {U_TARGET_DOMAIN, U_TARGET_USER}};
static const int user_keys[] = {U_USER, U_USER_ID, U_USER_NAME, U_CALLER};

enum { C_RECORD_TYPE, C_PROVENANCE, C_PARSER, C_HOST, C_USER, C_RECOVERED, C_TIME_DESC, C_COUNT };

/* -- one_line: whitespace runs collapsed, ends stripped, cut to message_chars --------------------- */

/* The message as it is written: " ".join(text.split()) of everything put, keeping one character
 * more than the limit so that the cut is known. */
typedef struct {
    Py_UCS4 chars[MAX_MESSAGE + 1];
    int count;
    int space;  /* whitespace seen since the last character kept (and after one) */
} Line;

static inline int line_full(const Line *line) { return line->count > message_chars; }

static void
line_put_char(Line *line, Py_UCS4 c)
{
    if (line_full(line))
        return;
    if (Py_UNICODE_ISSPACE(c)) {
        line->space = line->count > 0;
        return;
    }
    if (line->space) {
        line->space = 0;
        line->chars[line->count++] = ' ';
        if (line_full(line))
            return;
    }
    line->chars[line->count++] = c;
}

static void
line_put_ascii(Line *line, const char *text)
{
    for (; *text && !line_full(line); text++)
        line_put_char(line, (unsigned char)*text);
}

static void
line_put_text(Line *line, PyObject *text)
{
    if (PyUnicode_IS_ASCII(text)) {  /* most text: one byte a character */
        const unsigned char *ascii = PyUnicode_1BYTE_DATA(text);
        Py_ssize_t length = PyUnicode_GET_LENGTH(text);
        for (Py_ssize_t i = 0; i < length && !line_full(line); i++)
            line_put_char(line, ascii[i]);
        return;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < length && !line_full(line); i++)
        line_put_char(line, PyUnicode_READ(kind, data, i));
}

/* f"{value}" put on the line. */
static int
line_put_formatted(Line *line, PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        line_put_text(line, value);
        return 0;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(number == -1 && PyErr_Occurred())) {
            char digits[24], *end = digits + sizeof digits - 1, *start = end;
            unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number
                                                      : (unsigned long long)number;
            *end = '\0';
            do {
                *--start = (char)('0' + magnitude % 10);
                magnitude /= 10;
            } while (magnitude);
            if (number < 0)
                *--start = '-';
            line_put_ascii(line, start);
            return 0;
        }
        PyErr_Clear();
    }
    PyObject *text = PyObject_Format(value, keys[K_EMPTY]);
    if (text == NULL)
        return -1;
    if (PyUnicode_Check(text))
        line_put_text(line, text);
    Py_DECREF(text);
    return 0;
}

static PyObject *
line_text(const Line *line)
{
    if (!line_full(line))
        return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, line->chars, line->count);
    PyObject *head = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, line->chars, message_chars - 1);
    if (head == NULL)
        return NULL;
    PyObject *text = PyUnicode_Concat(head, keys[K_ELLIPSIS]);
    Py_DECREF(head);
    return text;
}

/* -- describe's pieces ----------------------------------------------------------------------- */

/* value is not None and value != "" and value != "-": 1, 0, or -1 on an error. */
static int
non_empty(PyObject *value)
{
    if (value == Py_None)
        return 0;
    if (PyUnicode_CheckExact(value))
        return PyUnicode_GET_LENGTH(value) != 0 && PyUnicode_Compare(value, keys[K_DASH]) != 0;
    int differs = PyObject_RichCompareBool(value, keys[K_EMPTY], Py_NE);
    if (differs <= 0)
        return differs;
    return PyObject_RichCompareBool(value, keys[K_DASH], Py_NE);
}

/* _pairs_summary(data) put on the line: "key=value" of the first six non-empty fields. */
static int
put_pairs(Line *line, PyObject *data)
{
    Py_ssize_t position = 0;
    PyObject *key, *value;
    int pairs = 0;
    while (pairs < SUMMARY_PAIRS && !line_full(line) && PyDict_Next(data, &position, &key, &value)) {
        int keep = non_empty(value);
        if (keep < 0)
            return -1;
        if (!keep)
            continue;
        if (pairs++)
            line_put_ascii(line, " ");
        if (line_put_formatted(line, key) < 0)
            return -1;
        line_put_ascii(line, "=");
        if (line_put_formatted(line, value) < 0)
            return -1;
    }
    return 0;
}

/* not _USER_FIELDS.isdisjoint(data) */
static int
names_user(PyObject *data)
{
    for (size_t i = 0; i < sizeof user_fields / sizeof *user_fields; i++) {
        int found = PyDict_Contains(data, keys[user_fields[i]]);
        if (found != 0)
            return found;
    }
    return 0;
}

/* name and name != "-": 1, 0, or -1. */
static int
named(PyObject *name)
{
    if (name == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int truth = PyObject_IsTrue(name);
    if (truth <= 0)
        return truth;
    return PyObject_RichCompareBool(name, keys[K_DASH], Py_NE);
}

/* _user_from(attributes): a new reference, Py_None included; NULL on an error. */
static PyObject *
user_from(PyObject *attributes)
{
    for (size_t i = 0; i < sizeof user_pairs / sizeof *user_pairs; i++) {
        PyObject *name = PyDict_GetItemWithError(attributes, keys[user_pairs[i][1]]);
        int status = named(name);
        if (status < 0)
            return NULL;
        if (!status)
            continue;
        PyObject *domain = PyDict_GetItemWithError(attributes, keys[user_pairs[i][0]]);
        if ((status = named(domain)) < 0)
            return NULL;
        if (!status)
            return PyObject_Str(name);
        PyObject *domain_text = PyObject_Format(domain, keys[K_EMPTY]);
        PyObject *name_text = domain_text != NULL ? PyObject_Format(name, keys[K_EMPTY]) : NULL;
        PyObject *user = name_text != NULL ? PyUnicode_FromFormat("%U\\%U", domain_text, name_text) : NULL;
        Py_XDECREF(domain_text);
        Py_XDECREF(name_text);
        return user;
    }
    for (size_t i = 0; i < sizeof user_keys / sizeof *user_keys; i++) {
        PyObject *value = PyDict_GetItemWithError(attributes, keys[user_keys[i]]);
        if (value == NULL) {
            if (PyErr_Occurred())
                return NULL;
            continue;
        }
        int truth = PyObject_IsTrue(value);
        if (truth < 0)
            return NULL;
        if (truth)
            return PyObject_Str(value);
    }
    Py_RETURN_NONE;
}

/* _DATA_TYPES' entry for kind, filled as describe fills it; borrowed. */
static PyObject *
data_type_of(PyObject *kind)
{
    PyObject *data_type = PyDict_GetItemWithError(data_types, kind);
    if (data_type != NULL || PyErr_Occurred())
        return data_type;
    PyObject *made = PyUnicode_Concat(keys[K_DATA_TYPE_PREFIX], kind);
    if (made == NULL)
        return NULL;
    data_type = PyDict_SetDefault(data_types, kind, made);
    Py_DECREF(made);
    return data_type;
}

/* A shaper's answer, checked: borrowed pieces, or 0 when it is not (str, dict, dict, str). */
static int
shape_parts(PyObject *shaped, PyObject **kind, PyObject **data, PyObject **extra, PyObject **summary)
{
    if (!PyTuple_CheckExact(shaped) || PyTuple_GET_SIZE(shaped) != 4)
        return 0;
    *kind = PyTuple_GET_ITEM(shaped, 0);
    *data = PyTuple_GET_ITEM(shaped, 1);
    *extra = PyTuple_GET_ITEM(shaped, 2);
    *summary = PyTuple_GET_ITEM(shaped, 3);
    return PyUnicode_CheckExact(*kind) && PyDict_CheckExact(*data) && PyDict_CheckExact(*extra)
        && PyUnicode_CheckExact(*summary);
}

/* -- the record ------------------------------------------------------------------------------ */

/* Record.quick(...): the frozen dataclass with its instance dictionary filled at once. */
static PyObject *
make_record(PyObject *record_type, PyObject *fields_dict)
{
    PyObject *record = PyBaseObject_Type.tp_new((PyTypeObject *)record_type, empty_tuple, NULL);
    if (record == NULL)
        return NULL;
    if (PyObject_GenericSetAttr(record, keys[K_DICT], fields_dict) < 0) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

static PyObject *
shape(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "shape() takes 4 arguments");
        return NULL;
    }
    if (shapers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_evtxshape.configure() was not called");
        return NULL;
    }
    PyObject *context = args[0], *order = args[1], *fields = args[2], *offset = args[3];
    if (!PyTuple_CheckExact(context) || PyTuple_GET_SIZE(context) != C_COUNT
        || !PyType_Check(PyTuple_GET_ITEM(context, C_RECORD_TYPE))) {
        PyErr_SetString(PyExc_TypeError, "shape(): context is not the file's tuple");
        return NULL;
    }
    if (offset != Py_None || !PyTuple_CheckExact(fields) || PyTuple_GET_SIZE(fields) != 7)
        Py_RETURN_NONE;
    PyObject *event_id = PyTuple_GET_ITEM(fields, 0), *channel = PyTuple_GET_ITEM(fields, 1),
             *provider = PyTuple_GET_ITEM(fields, 2), *computer = PyTuple_GET_ITEM(fields, 3),
             *time = PyTuple_GET_ITEM(fields, 4), *attributes = PyTuple_GET_ITEM(fields, 5),
             *data = PyTuple_GET_ITEM(fields, 6);
    if (!PyUnicode_CheckExact(channel) || !PyDict_CheckExact(attributes) || !PyDict_CheckExact(data))
        Py_RETURN_NONE;

    /* describe: the channel's shaper, if any; None means the channel's common form. */
    PyObject *shaped = NULL, *kind = keys[K_RECORD], *extra = NULL, *summary = NULL;
    PyObject *shaper = PyDict_GetItemWithError(shapers, channel);
    if (shaper == NULL && PyErr_Occurred())
        return NULL;
    if (shaper != NULL) {
        PyObject *call_args[3] = {event_id, provider, data};
        shaped = PyObject_Vectorcall(shaper, call_args, 3, NULL);
        if (shaped == NULL)
            return NULL;
        if (shaped != Py_None && !shape_parts(shaped, &kind, &data, &extra, &summary)) {
            Py_DECREF(shaped);
            Py_RETURN_NONE;  /* nothing changed yet: the Python method asks the shaper again */
        }
    }
    PyObject *result = NULL, *user = NULL, *message = NULL, *timestamps = NULL, *time_bounds = NULL,
             *record_dict = NULL;
    Line line_buffer, *line = &line_buffer;
    line->count = line->space = 0;

    if (PyDict_Update(attributes, data) < 0)
        goto done;
    int user_named = names_user(data);
    if (user_named < 0)
        goto done;
    if (extra != NULL && PyDict_GET_SIZE(extra)) {
        if (PyDict_Update(attributes, extra) < 0)
            goto done;
        if (!user_named && (user_named = names_user(extra)) < 0)
            goto done;
    }
    /* message: one_line(f"[{event_id}] {channel}: {summary}"), summary or the pairs */
    line_put_ascii(line, "[");
    if (line_put_formatted(line, event_id) < 0)
        goto done;
    line_put_ascii(line, "] ");
    line_put_text(line, channel);
    line_put_ascii(line, ": ");
    if (summary != NULL && PyUnicode_GET_LENGTH(summary))
        line_put_text(line, summary);
    else if (put_pairs(line, data) < 0)
        goto done;
    if ((message = line_text(line)) == NULL)
        goto done;

    /* user: (_user_from(attributes) if named else None) or attributes.get("context_User") */
    if (user_named) {
        if ((user = user_from(attributes)) == NULL)
            goto done;
    }
    else {
        user = Py_NewRef(Py_None);
    }
    int truth = PyObject_IsTrue(user);
    if (truth < 0)
        goto done;
    if (!truth) {
        PyObject *context_user = PyDict_GetItemWithError(attributes, keys[K_CONTEXT_USER]);
        if (context_user == NULL && PyErr_Occurred())
            goto done;
        Py_SETREF(user, Py_NewRef(context_user != NULL ? context_user : Py_None));
        if ((truth = PyObject_IsTrue(user)) < 0)
            goto done;
    }
    /* _Builder.fast: the user named by the event, else the record's SID, else the file's */
    PyObject *sid = PyDict_GetItemWithError(attributes, keys[K_USER_SID]);
    if (sid == NULL && PyErr_Occurred())
        goto done;
    int has_sid = sid != NULL ? PyObject_IsTrue(sid) : 0;
    if (has_sid < 0)
        goto done;
    if (truth) {
        if (has_sid) {
            if (PyDict_SetDefault(attributes, keys[K_USER_NAME], user) == NULL)
                goto done;
        }
        else if (PyDict_SetItem(attributes, keys[K_USER_NAME], user) < 0)
            goto done;
    }
    else {
        Py_SETREF(user, Py_NewRef(has_sid ? sid : PyTuple_GET_ITEM(context, C_USER)));
    }

    PyObject *data_type = data_type_of(kind);
    if (data_type == NULL)
        goto done;
    timestamps = PyDict_New();
    time_bounds = PyDict_New();
    if (timestamps == NULL || time_bounds == NULL)
        goto done;
    if (time != Py_None && PyDict_SetItem(timestamps, PyTuple_GET_ITEM(context, C_TIME_DESC), time) < 0)
        goto done;
    int has_computer = PyObject_IsTrue(computer);
    if (has_computer < 0)
        goto done;
    PyObject *host = has_computer ? computer : PyTuple_GET_ITEM(context, C_HOST);
    record_dict = _PyDict_NewPresized(13);
    if (record_dict == NULL)
        goto done;
    PyObject *items[][2] = {
        {keys[R_DATA_TYPE], data_type}, {keys[R_MESSAGE], message},
        {keys[R_PROVENANCE], PyTuple_GET_ITEM(context, C_PROVENANCE)},
        {keys[R_PARSER], PyTuple_GET_ITEM(context, C_PARSER)}, {keys[R_ORDER], order},
        {keys[R_TIMESTAMPS], timestamps}, {keys[R_TIME_BOUNDS], time_bounds},
        {keys[R_ATTRIBUTES], attributes}, {keys[R_HOST], host}, {keys[R_USER], user},
        {keys[R_RECOVERED], PyTuple_GET_ITEM(context, C_RECOVERED)}, {keys[R_CORRUPTED], Py_False},
        {keys[R_TAGS], empty_tuple}};
    for (size_t i = 0; i < sizeof items / sizeof *items; i++) {
        if (PyDict_SetItem(record_dict, items[i][0], items[i][1]) < 0)
            goto done;
    }
    result = make_record(PyTuple_GET_ITEM(context, C_RECORD_TYPE), record_dict);
done:
    Py_XDECREF(shaped);
    Py_XDECREF(user);
    Py_XDECREF(message);
    Py_XDECREF(timestamps);
    Py_XDECREF(time_bounds);
    Py_XDECREF(record_dict);
    return result;
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "configure(shapers: dict, data_types: dict, message_chars: int)");
        return NULL;
    }
    long chars = PyLong_AsLong(args[2]);
    if (chars == -1 && PyErr_Occurred())
        return NULL;
    if (chars < 2 || chars > MAX_MESSAGE) {
        PyErr_Format(PyExc_ValueError, "message_chars must be 2..%d", MAX_MESSAGE);
        return NULL;
    }
    Py_XSETREF(shapers, Py_NewRef(args[0]));
    Py_XSETREF(data_types, Py_NewRef(args[1]));
    message_chars = (int)chars;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(shapers, data_types, message_chars): the channel shapers, the record type cache "
     "and the message length of parsers.evtx_events."},
    {"shape", (PyCFunction)(void (*)(void))shape, METH_FASTCALL,
     "shape(context, order, fields, offset) -> the Record _Builder.fast makes, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_evtxshape",
    "The EVTX parser's common record built in C (optional; see parsers/evtx.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__evtxshape(void)
{
    for (int i = 0; i < K_COUNT; i++) {
        if (keys[i] == NULL && (keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return NULL;
    }
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
