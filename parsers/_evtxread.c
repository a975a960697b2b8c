/* parsers._evtxread: parsers.evtx_events.read_fields, in C.
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
 * Python function, whose result or exception is returned as it is. tests/parsers/
 * test_evtx_native.py checks both agree on generated and real records.
 *
 * Why: read_fields ran once per record and cost about a quarter of the EVTX parser's time, in
 * some twenty dictionary reads and tests that are cheap in C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    head = PyDict_New();
    if (head == NULL)
        goto error;
    if (PyDict_SetItem(head, keys[H_CHANNEL], channel) < 0
        || PyDict_SetItem(head, keys[H_PROVIDER], provider_name) < 0
        || PyDict_SetItem(head, keys[H_EVENT_ID], event_id) < 0
        || PyDict_SetItem(head, keys[H_RECORD_NUMBER], record_number) < 0
        || (computer != Py_None && PyDict_SetItem(head, keys[H_COMPUTER], computer) < 0))
        goto error;
    static const int unwrapped[5][2] = {{H_LEVEL, K_LEVEL}, {H_TASK, K_TASK}, {H_OPCODE, K_OPCODE},
                                        {H_KEYWORDS, K_KEYWORDS}, {H_VERSION, K_VERSION}};
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
    }
    if (empty_text == NULL && (empty_text = PyUnicode_InternFromString("")) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
