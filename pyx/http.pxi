# brace._core: what the HTTP integrations read on every answer, in C; included by _core.pyx.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE


def any_name_holds(fields, bytes mark):
    """Whether the name (the first item, bytes) of any (name, value) field in `fields` holds
    `mark` (lowercase ASCII letters) in any case: one pass, nothing copied.

    Raises:
        TypeError: A name that is not bytes.
    """
    cdef const char *wanted = PyBytes_AS_STRING(mark)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(mark)
    for field in fields:
        name = field[0]
        if not PyBytes_CheckExact(name):
            raise TypeError(f"a field's name must be bytes, got {type(name).__name__}")
        if _holds(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), wanted, size):
            return True
    return False


cdef bint _holds(const char *text, Py_ssize_t length, const char *mark, Py_ssize_t size) noexcept nogil:
    """Whether text holds mark, ASCII letters in any case (a byte | 0x20 equals a lowercase
    letter only when it is that letter in either case)."""
    cdef Py_ssize_t start, i
    for start in range(length - size + 1):
        i = 0
        while i < size and (text[start + i] | 0x20) == mark[i]:
            i += 1
        if i == size:
            return True
    return False


def bound_phases(dict phases, tuple names, timeout):
    """None when each named phase of `phases` (seconds) is bounded and no longer than
    `timeout`: the common case, in one pass; else a new dict of the named phases, each no
    longer than `timeout` (a phase left out, or None, is unbounded: it gets `timeout`)."""
    for name in names:
        value = phases.get(name)
        if value is None or not value <= timeout:
            break
    else:
        return None
    return {name: timeout if phases.get(name) is None else min(phases[name], timeout) for name in names}
