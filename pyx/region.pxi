# brace._core: SharedRegion, a shared-memory region (csrc/region.c) mapped in this process;
# included by _core.pyx. brace._stores opens them (one per name per process).

REGION_CAPACITY_MIN = c.BRC_REGION_CAPACITY_MIN
REGION_CAPACITY_MAX = c.BRC_REGION_CAPACITY_MAX
REGION_NAME_MAX = c.BRC_REGION_NAME_MAX
REGION_SLOTS = c.BRC_REGION_SLOTS
KIND_GCRA = c.BRC_KIND_GCRA
KIND_BREAKER = c.BRC_KIND_BREAKER
KIND_BUDGET = c.BRC_KIND_BUDGET
KIND_KEYED = c.BRC_KIND_KEYED
KIND_LEASES = c.BRC_KIND_LEASES


cdef int _region_check(int status, str what) except -1:
    """A region's status as an OSError of the matching kind (its errno for BRC_EIO)."""
    if status >= 0:
        return status
    cdef int error = errno
    message = f"{what}: {c.brc_strerror(status).decode()}"
    if status == c.BRC_EIO:
        raise OSError(error, f"{message}: {os.strerror(error)}")
    if status == c.BRC_EACCES:
        raise PermissionError(message)
    if status == c.BRC_ENOENT:
        raise FileNotFoundError(message)
    if status == c.BRC_ETIMEDOUT:
        raise TimeoutError(message)
    if status in (c.BRC_EINVAL, c.BRC_ERANGE):
        return _check(status, what)
    raise OSError(message)


cdef class SharedRegion:
    """A named shared-memory region mapped in this process (a brc_region_t).

    The mapping lives as long as this object: every shared primitive keeps a
    reference to its region. A fork()ed child inherits the mapping and uses it
    as it is.
    """

    cdef c.brc_region_t *_region
    cdef readonly str name

    def __cinit__(self, str name, uint64_t capacity):
        cdef bytes encoded = name.encode()
        cdef const char *path = encoded
        cdef int status
        self.name = name
        with nogil:  # it may wait (bounded) for another process to finish creating it
            status = c.brc_region_open(path, capacity, &self._region)
        _region_check(status, f"shm://{name}")

    def __dealloc__(self):
        c.brc_region_close(self._region)

    @property
    def capacity(self):
        """Bytes in the region."""
        return c.brc_region_capacity(self._region)

    @property
    def used(self):
        """Bytes of the region its header, slot table and states use."""
        return c.brc_region_used(self._region)

    def slot_info(self, str slot):
        """(kind, config bytes) of the slot `slot`, or None when it has none."""
        cdef c.brc_region_slot_info_t info
        status = c.brc_region_slot_info(self._region, slot.encode(), &info)
        if status == c.BRC_ENOENT:
            return None
        _region_check(status, f"shm://{self.name}")
        return info.kind, bytes(info.config[:info.config_len])

    @staticmethod
    def unlink(str name):
        """Removes the region's name; False when there was no region of that name."""
        status = c.brc_region_unlink(name.encode())
        if status == c.BRC_ENOENT:
            return False
        _region_check(status, f"shm://{name}")
        return True


# -- this process's lease tag: bulkheads' leased permits, shared breakers' probe leases

from posix.unistd cimport getpid

cdef uint64_t _lease_tag = 0  # this process's tag (brc_lease_tag); 0 until first used


cdef inline uint64_t _my_lease_tag() noexcept:
    global _lease_tag
    if _lease_tag == 0:
        _lease_tag = c.brc_lease_tag(<uint64_t>getpid())
    return _lease_tag


def _forget_lease_tag():
    """A fork()ed child is another holder: it computes its own tag when it first needs it."""
    global _lease_tag
    _lease_tag = 0


os.register_at_fork(after_in_child=_forget_lease_tag)
