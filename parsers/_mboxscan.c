/* parsers._mboxscan: the two per-message scans of the mbox parser, in C.
 *
 * Optional speed-up of parsers/mbox.py (built by setup.py where a C compiler is available; the
 * parser falls back to its pure-Python twins without it). Each function returns exactly what its
 * Python twin returns, which tests/parsers/test_mbox_native.py checks on generated input:
 *
 *   header_fields(block)          -> mbox._header_fields_py(block) for a UTF-8 block without CR,
 *                                    None otherwise (the caller then runs the Python twin)
 *   find_separator(buf, start, end) -> offset of the first b"\nFrom " wholly inside
 *                                    buf[start:end], or -1 (re.search(rb"\nFrom ", ...) twin)
 *
 * Why: per message, the regex ``findall`` of the wanted headers cost ~10 us and the separator
 * search ~8 us of ~50 us (realistic mail), and neither can go faster in Python. Input is hostile
 * evidence: every read is bounds-checked against the buffer's length, nothing is written to it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>
/* The vector separator search needs GCC/Clang builtins (__builtin_ctz, target attributes) and
 * SSE2 (every x86_64 CPU); elsewhere (other compilers, other CPUs) the memchr loop runs alone. */
#if defined(__GNUC__) && defined(__SSE2__)
#define HAVE_SSE2_PATH 1
#include <emmintrin.h>
#endif

#define MAX_NAMES 64
#define MAX_NAME_LEN 64

/* The wanted header names (lower case), set once by configure(); by first letter, longest first. */
static PyObject *keys[MAX_NAMES];
static unsigned char names[MAX_NAMES][MAX_NAME_LEN];
static Py_ssize_t lengths[MAX_NAMES];
static int name_count = 0;
static int received_index = -1;
static int by_first[256][MAX_NAMES + 1]; /* name indexes per lower-case first byte, -1 ended */

static PyObject *
configure(PyObject *module, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "configure() takes a sequence of header names");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (count < 1 || count > MAX_NAMES) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "configure() takes 1 to %d header names", MAX_NAMES);
        return NULL;
    }
    /* Checked in full first: a refused list leaves the previous configuration in place. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t size;
        const char *text = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &size) : NULL;
        int good = text != NULL && size >= 1 && size < MAX_NAME_LEN && text[0] >= 'a' && text[0] <= 'z';
        for (Py_ssize_t j = 1; good && j < size; j++) {
            unsigned char c = (unsigned char)text[j];
            /* lower-case printable ASCII without the colon (RFC 5322 field names) */
            good = c >= 0x21 && c <= 0x7e && c != ':' && !(c >= 'A' && c <= 'Z');
        }
        if (!good) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "not a lower-case header name: %R", item);
            return NULL;
        }
    }
    for (int i = 0; i < name_count; i++)
        Py_CLEAR(keys[i]);
    received_index = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(item, &size);
        memcpy(names[i], text, (size_t)size);
        Py_INCREF(item);
        PyUnicode_InternInPlace(&item);
        keys[i] = item;
        lengths[i] = size;
        if (size == 8 && memcmp(text, "received", 8) == 0)
            received_index = (int)i;
    }
    name_count = (int)count;
    Py_DECREF(seq);
    for (int c = 0; c < 256; c++) {
        int n = 0;
        for (int i = 0; i < name_count; i++)
            if (names[i][0] == c)
                by_first[c][n++] = i;
        /* longest first: the regex's trie tries a longer name before a shorter prefix of it */
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && lengths[by_first[c][b]] > lengths[by_first[c][b - 1]]; b--) {
                int t = by_first[c][b];
                by_first[c][b] = by_first[c][b - 1];
                by_first[c][b - 1] = t;
            }
        by_first[c][n] = -1;
    }
    Py_RETURN_NONE;
}

/* Index of the wanted name that starts line ``p`` (``[ \t]*:`` after it), or -1; ``*value`` is
 * set to where its value starts (after ``[ \t]*:[ \t]*``). */
static int
match_name(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, Py_ssize_t *value)
{
    if (p >= n)
        return -1;
    unsigned char first = s[p];
    if (first >= 'A' && first <= 'Z')
        first |= 0x20;
    for (const int *k = by_first[first]; *k >= 0; k++) {
        Py_ssize_t len = lengths[*k];
        if (len > n - p)
            continue;
        const unsigned char *name = names[*k];
        Py_ssize_t j = 1;
        for (; j < len; j++) {
            unsigned char c = s[p + j];
            if (c >= 'A' && c <= 'Z')
                c |= 0x20;
            if (c != name[j])
                break;
        }
        if (j < len)
            continue;
        Py_ssize_t q = p + len;
        while (q < n && (s[q] == ' ' || s[q] == '\t'))
            q++;
        if (q >= n || s[q] != ':')
            continue;
        q++;
        while (q < n && (s[q] == ' ' || s[q] == '\t'))
            q++;
        *value = q;
        return *k;
    }
    return -1;
}

/* Where the value starting at ``q`` ends: the first LF not followed by a space or tab, or ``n``. */
static Py_ssize_t
value_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t q)
{
    for (;;) {
        const unsigned char *lf = memchr(s + q, '\n', (size_t)(n - q));
        if (lf == NULL)
            return n;
        Py_ssize_t e = lf - s;
        if (e + 1 < n && (s[e + 1] == ' ' || s[e + 1] == '\t')) {
            q = e + 1;
            continue;
        }
        return e;
    }
}

static int
is_ascii(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        acc |= word;
    }
    for (; i < n; i++)
        acc |= s[i];
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

typedef struct {
    int name;
    Py_ssize_t start;
    Py_ssize_t end;
} Match;

static PyObject *
header_fields(PyObject *module, PyObject *arg)
{
    if (name_count == 0) {
        PyErr_SetString(PyExc_RuntimeError, "_mboxscan.configure() was not called");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "header_fields() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (memchr(s, '\r', (size_t)n) != NULL)
        Py_RETURN_NONE;
    if (!is_ascii(s, n)) {
        PyObject *check = PyUnicode_DecodeUTF8((const char *)s, n, "strict");
        if (check == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return NULL;
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        Py_DECREF(check);
    }
    Match local[64];
    Match *matches = local;
    Py_ssize_t count = 0, capacity = 64;
    PyObject *result = NULL, *first = NULL, *last = NULL;
    Py_ssize_t p = 0; /* a line start: the Python twin searches "\n" + the block */
    for (;;) {
        Py_ssize_t value;
        int name = match_name(s, n, p, &value);
        if (name >= 0) {
            Py_ssize_t end = value_end(s, n, value);
            if (count == capacity) {
                Py_ssize_t grown = capacity * 2;
                Match *more = PyMem_Malloc((size_t)grown * sizeof(Match));
                if (more == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                memcpy(more, matches, (size_t)count * sizeof(Match));
                if (matches != local)
                    PyMem_Free(matches);
                matches = more;
                capacity = grown;
            }
            matches[count].name = name;
            matches[count].start = value;
            matches[count].end = end;
            count++;
            if (end >= n)
                break;
            p = end + 1;
        }
        else {
            if (p >= n)
                break;
            const unsigned char *lf = memchr(s + p, '\n', (size_t)(n - p));
            if (lf == NULL)
                break;
            p = lf - s + 1;
        }
    }
    first = PyDict_New();
    if (first == NULL)
        goto done;
    long received = 0;
    /* The first value of each name wins, and the dictionary's key order is that of
     * ``dict(zip(reversed(keys), reversed(values)))``: filled from the last match back. */
    for (Py_ssize_t i = count - 1; i >= 0; i--) {
        PyObject *text = PyUnicode_DecodeUTF8((const char *)s + matches[i].start,
                                              matches[i].end - matches[i].start, "strict");
        if (text == NULL)
            goto done;
        if (matches[i].name == received_index) {
            if (received++ == 0) {
                Py_INCREF(text);
                last = text;
            }
        }
        int failed = PyDict_SetItem(first, keys[matches[i].name], text);
        Py_DECREF(text);
        if (failed)
            goto done;
    }
    result = Py_BuildValue("(OlO)", first, received, last != NULL ? last : Py_None);
done:
    if (matches != local)
        PyMem_Free(matches);
    Py_XDECREF(first);
    Py_XDECREF(last);
    return result;
}

#ifdef HAVE_SSE2_PATH
/* The candidates of one step: bit j set where s[at + j] is LF and s[at + j + 1] is 'F'; the
 * rest of the separator ("rom ") is compared for each. Returns the separator's offset, -1 if
 * none (or a candidate beyond ``last`` was reached: ``*stop`` is set then). */
static inline Py_ssize_t
check_candidates(const unsigned char *s, Py_ssize_t at, unsigned mask, Py_ssize_t last, int *stop)
{
    while (mask) {
        Py_ssize_t pos = at + __builtin_ctz(mask);
        if (pos > last) {
            *stop = 1;
            return -1;
        }
        if (memcmp(s + pos + 2, "rom ", 4) == 0)
            return pos;
        mask &= mask - 1;
    }
    return -1;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
/* 32 candidates per step; used only where the CPU has AVX2 (checked once at import). */
__attribute__((target("avx2"))) static Py_ssize_t
find_from_avx2(const unsigned char *s, Py_ssize_t *start, Py_ssize_t end, Py_ssize_t last, int *stop)
{
    const __m256i lf = _mm256_set1_epi8('\n');
    const __m256i upper_f = _mm256_set1_epi8('F');
    Py_ssize_t i = *start;
    for (; i + 33 <= end; i += 32) {
        __m256i here = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(s + i)), lf);
        if (_mm256_testz_si256(here, here))
            continue; /* no LF in these 32 bytes: base64 and most text */
        __m256i next = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(s + i + 1)), upper_f);
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_and_si256(here, next));
        Py_ssize_t found = check_candidates(s, i, mask, last, stop);
        if (found >= 0 || *stop)
            return found;
    }
    *start = i;
    return -1;
}
static int have_avx2 = 0;
#endif /* __x86_64__ */
#endif /* HAVE_SSE2_PATH */

/* Offset of the first "\nFrom " wholly inside s[start:end], or -1. */
static Py_ssize_t
find_from(const unsigned char *s, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t last = end - 6; /* the last offset a whole separator can start at */
    Py_ssize_t i = start;
#ifdef HAVE_SSE2_PATH
    int stop = 0;
#endif
#ifdef HAVE_AVX2_PATH
    if (have_avx2) {
        Py_ssize_t found = find_from_avx2(s, &i, end, last, &stop);
        if (found >= 0 || stop)
            return found;
    }
#endif
#ifdef HAVE_SSE2_PATH
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i upper_f = _mm_set1_epi8('F');
    /* 16 candidate offsets per step: an LF at i + j followed by an F at i + j + 1. */
    for (; i + 17 <= end; i += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i next = _mm_loadu_si128((const __m128i *)(s + i + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(here, lf), _mm_cmpeq_epi8(next, upper_f)));
        Py_ssize_t found = check_candidates(s, i, mask, last, &stop);
        if (found >= 0 || stop)
            return found;
    }
#endif
    while (i <= last) {
        const unsigned char *lf_at = memchr(s + i, '\n', (size_t)(last + 1 - i));
        if (lf_at == NULL)
            return -1;
        Py_ssize_t at = lf_at - s;
        if (memcmp(s + at + 1, "From ", 5) == 0)
            return at;
        i = at + 1;
    }
    return -1;
}

static PyObject *
find_separator(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "find_separator(buf, start, end) takes 3 arguments");
        return NULL;
    }
    Py_ssize_t start = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t end = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    /* the bounds of re.Pattern.search(buf, start, end) */
    if (start < 0)
        start = 0;
    if (end > view.len)
        end = view.len;
    Py_ssize_t found = -1;
    if (end - start >= 6)
        found = find_from((const unsigned char *)view.buf, start, end);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(found);
}

/* For the tests: turn the AVX2 path off (or back on where the CPU has it), so that the SSE2
 * path that CPUs without AVX2 take is checked on this one too. Returns whether it is on. */
static PyObject *
use_avx2(PyObject *module, PyObject *arg)
{
    int wanted = PyObject_IsTrue(arg);
    if (wanted < 0)
        return NULL;
#ifdef HAVE_AVX2_PATH
    have_avx2 = wanted && __builtin_cpu_supports("avx2");
    return PyBool_FromLong(have_avx2);
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"use_avx2", use_avx2, METH_O,
     "use_avx2(flag) -> bool: the separator search's AVX2 path on or off (tests); whether it is on."},
    {"configure", configure, METH_O,
     "configure(names): the lower-case header names header_fields() reads (mbox.WANTED_HEADERS)."},
    {"header_fields", header_fields, METH_O,
     "header_fields(block) -> (first values by name, Received count, last Received) or None."},
    {"find_separator", (PyCFunction)(void (*)(void))find_separator, METH_FASTCALL,
     "find_separator(buf, start, end) -> offset of the first b'\\nFrom ' in buf[start:end], or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_mboxscan",
    "The mbox parser's per-message scans in C (optional; see parsers/mbox.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__mboxscan(void)
{
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module_def);
}
