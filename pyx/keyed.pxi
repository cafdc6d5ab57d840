# brace._core: KeyedRateLimiterCore, the compiled base of brace.KeyedRateLimiter; included by _core.pyx.

from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_Check, PyUnicode_CheckExact
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport uint8_t

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size)  # NULL: not UTF-8 (lone surrogates)
    void *PyMem_Calloc(size_t count, size_t size)
    unsigned long long PyLong_AsUnsignedLongLong(object number) except? <unsigned long long>-1

KEYED_CAPACITY_MIN = c.BRC_KEYED_CAPACITY_MIN
KEYED_CAPACITY_MAX = c.BRC_KEYED_CAPACITY_MAX
KEYED_PROBE = c.BRC_KEYED_PROBE
KEYED_STALE_NS = c.BRC_KEYED_STALE_NS


cdef inline uint64_t _key_hash(object key) except? 0:
    """The key's stable 64-bit hash: a str's UTF-8 bytes, bytes as they are, an int in
    [-2**63, 2**64) its 64-bit two's complement (so -1 and 2**64 - 1 are one key); see key_hash."""
    cdef Py_ssize_t size
    cdef const char *data
    cdef int overflow = 0
    cdef long long value
    if PyUnicode_CheckExact(key):
        data = PyUnicode_AsUTF8AndSize(key, &size)
        if data != NULL:
            return c.brc_hash64(data, <size_t>size)
    elif PyLong_CheckExact(key):
        value = PyLong_AsLongLongAndOverflow(key, &overflow)
        if overflow == 0:
            return c.brc_hash64_u64(<uint64_t>value)
    return _key_hash_slow(key)


cdef uint64_t _key_hash_slow(object key) except? 0:
    cdef Py_ssize_t size
    cdef const char *data
    if PyBytes_Check(key):
        return c.brc_hash64(PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key))
    if PyUnicode_Check(key):
        data = PyUnicode_AsUTF8AndSize(key, &size)
        if data == NULL:
            PyErr_Clear()
            raise ValueError(f"key must be a str that UTF-8 can encode (no lone surrogates), got {key!r}")
        return c.brc_hash64(data, <size_t>size)
    if isinstance(key, int) and not isinstance(key, bool):
        number = int(key)
        if 0 <= number < (1 << 64):
            return c.brc_hash64_u64(PyLong_AsUnsignedLongLong(number))
        if -(1 << 63) <= number < 0:
            return c.brc_hash64_u64(<uint64_t>(<long long>number))
        raw = number.to_bytes((number.bit_length() + 8) // 8, "little", signed=True)
        return c.brc_hash64(PyBytes_AS_STRING(raw), <size_t>PyBytes_GET_SIZE(raw))
    raise TypeError(f"key must be a str, bytes or int, got {type(key).__name__}")


def key_hash(key):
    """The 64-bit hash a keyed limiter files `key` under (the C core's brc_hash64 of a
    str's UTF-8 or of bytes; brc_hash64_u64 of an int in [-2**63, 2**64), else of its
    little-endian two's-complement bytes): the same in every process."""
    return _key_hash(key)


cdef object _numpy_empty = None  # numpy.empty, once a batch has looked for numpy
cdef object _numpy_bool = None   # numpy's bool dtype
cdef bint _numpy_looked = False


cdef object _bools(Py_ssize_t count):
    """An array of count bools for a batch to fill (the C loop writes every one):
    numpy's when it can be imported, else a memoryview of format '?' over a
    bytearray (numpy stays optional for brace)."""
    global _numpy_empty, _numpy_bool, _numpy_looked
    if not _numpy_looked:
        try:
            import numpy
        except ImportError:
            numpy = None
        if numpy is not None:  # None too when sys.modules says numpy is not to be imported
            _numpy_empty = numpy.empty
            _numpy_bool = numpy.dtype(numpy.bool_)
        _numpy_looked = True
    if _numpy_empty is not None:
        return _numpy_empty(count, _numpy_bool)
    return memoryview(bytearray(count)).cast("?")


cdef bint _is_8_byte_int(const char *format):
    """Whether a buffer format is one 8-byte integer ('q', 'Q', 'l', 'L' on LP64, with
    an optional native or little-endian byte order)."""
    if format == NULL:
        return False
    if format[0] == b"@" or format[0] == b"=" or format[0] == b"<":
        format += 1
    return (format[0] == b"q" or format[0] == b"Q" or format[0] == b"l" or format[0] == b"L") and format[1] == 0


cdef class KeyedRateLimiterCore:
    """A keyed GCRA table in one block of this object's own (PyMem_Calloc'd once, at
    configuration); configured by brace.KeyedRateLimiter. Every decision is C on
    the block: no allocation, no Python object per key."""

    cdef c.brc_keyed_t *_table     # this object's block, or the shared slot's table
    cdef SharedRegion _region      # keeps a shared table's mapping alive (None: the block is ours)
    cdef uint64_t _capacity
    cdef uint64_t _burst
    cdef object _name

    def __dealloc__(self):
        if self._region is None:
            PyMem_Free(self._table)

    def _configure(self, uint64_t capacity, uint64_t interval_ns, uint64_t burst, name):
        """Allocates and configures the table (once)."""
        if self._table != NULL:
            raise RuntimeError("a keyed limiter's table is configured once")
        cdef uint64_t size = c.brc_keyed_bytes(capacity)
        if size == 0:
            raise ValueError(f"capacity must be a power of two from {KEYED_CAPACITY_MIN} to "
                             f"{KEYED_CAPACITY_MAX}, got {capacity}")
        cdef c.brc_keyed_t *table = <c.brc_keyed_t *>PyMem_Calloc(1, <size_t>size)
        if table == NULL:
            raise MemoryError(f"a keyed limiter's table of {size} bytes")
        cdef int status = c.brc_keyed_init(table, capacity, interval_ns, burst)
        if status != c.BRC_OK:
            PyMem_Free(table)
            _check(status, "rate and burst")
        self._table = table
        self._capacity = capacity
        self._burst = burst
        self._name = name

    def _attach(self, SharedRegion region, str slot, uint64_t capacity, uint64_t interval_ns, uint64_t burst,
                name):
        """Uses the table in region's slot `slot`, claiming and configuring it if no process has;
        False when the slot holds another kind or configuration."""
        cdef c.brc_keyed_t *shared = NULL
        cdef bytes encoded = slot.encode()
        cdef const char *slot_name = encoded
        cdef int status
        if self._table != NULL:
            raise RuntimeError("a keyed limiter's table is configured once")
        with nogil:  # it may wait (bounded) for another process to finish claiming the slot
            status = c.brc_region_keyed(region._region, slot_name, capacity, interval_ns, burst, &shared)
        if status == c.BRC_EEXIST:
            return False
        _region_check(status, f"shm://{region.name}, slot {slot!r}")
        self._table = shared
        self._region = region
        self._capacity = capacity
        self._burst = burst
        self._name = name
        return True

    cdef int _raise(self, int status, object n, c.brc_gcra_report_t *report, object admitted) except -1:
        if status == c.BRC_FULL:
            raise KeyTableFull(name=self._name, capacity=self._capacity,
                               retry_after=report.retry_after / 1e9, admitted=admitted)
        if status == c.BRC_E2BIG:
            raise ValueError(f"n={n} can never be admitted: n must be an int from 1 to "
                             f"burst={self._burst}")
        return _check(status, "keyed limiter (not configured)")

    def try_acquire(self, key, n=1):
        """Takes n tokens from key's bucket if all are available now; returns whether it did.

        Raises KeyTableFull when the table has no room for the key."""
        cdef c.brc_gcra_report_t report
        cdef uint64_t hash = _key_hash(key)
        cdef int status = c.brc_keyed_acquire(self._table, hash, _as_n(n), c.brc_now_ns(), &report) \
            if self._table != NULL else c.BRC_EINVAL
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return self._raise(status, n, &report, None)

    def try_acquire_many(self, keys):
        """One token for each key of a buffer of 8-byte ints (a numpy int64 or uint64
        array, an array.array('q'), ...), in order, in one C loop; returns the
        decisions as an array of bools (numpy's when numpy is importable).

        Raises KeyTableFull (every key decided, the decisions in its `admitted`)
        when some key found no room."""
        cdef Py_buffer keys_view, out_view
        cdef c.brc_gcra_report_t full
        cdef int status
        cdef Py_ssize_t count
        if self._table == NULL:
            return _check(c.BRC_EINVAL, "keyed limiter (not configured)")
        PyObject_GetBuffer(keys, &keys_view, PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS)
        try:
            if keys_view.itemsize != 8 or not _is_8_byte_int(keys_view.format):
                raise TypeError(
                    "keys must be a contiguous buffer of 8-byte ints (numpy int64 or uint64, "
                    f"array.array('q')), got format {keys_view.format.decode(errors='replace')!r}")
            count = keys_view.len // 8
            admitted = _bools(count)
            PyObject_GetBuffer(admitted, &out_view, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
            try:
                status = c.brc_keyed_acquire_many_u64(self._table, <const uint64_t *>keys_view.buf, <size_t>count,
                                                      c.brc_now_ns(), <uint8_t *>out_view.buf, &full)
            finally:
                PyBuffer_Release(&out_view)
        finally:
            PyBuffer_Release(&keys_view)
        if status != c.BRC_OK:
            self._raise(status, 1, &full, admitted)
        return admitted

    def _report(self, key):
        """(limit, remaining, retry_after_ns, reset_after_ns) of key's bucket at brace's now."""
        cdef c.brc_gcra_report_t r
        cdef uint64_t hash = _key_hash(key)
        _check(c.brc_keyed_state(self._table, hash, c.brc_now_ns(), &r) if self._table != NULL
               else c.BRC_EINVAL, "keyed limiter (not configured)")
        return r.limit, r.remaining, r.retry_after, r.reset_after

    def _counters(self):
        """(admitted, rejected, full, evictions): the table's decision counters."""
        cdef c.brc_keyed_counters_t k
        _check(c.brc_keyed_counters(self._table, &k) if self._table != NULL else c.BRC_EINVAL,
               "keyed limiter (not configured)")
        return k.admitted, k.rejected, k.full, k.evictions
