# brace._core: RetryBudgetCore, the compiled base of brace.RetryBudget; included by _core.pyx.

BUDGET_BUCKETS = c.BRC_BUDGET_BUCKETS
BUDGET_TOKEN = c.BRC_BUDGET_TOKEN
BUDGET_RATIO_MAX = c.BRC_BUDGET_RATIO_MAX
BUDGET_MIN_PER_SECOND_MAX = c.BRC_BUDGET_MIN_PER_SECOND_MAX
BUDGET_TTL_MIN = c.BRC_BUDGET_TTL_MIN
BUDGET_TTL_MAX = c.BRC_BUDGET_TTL_MAX


cdef class RetryBudgetCore:
    """A retry budget's state embedded by value; configured by brace.RetryBudget.

    deposit and try_withdraw are one C call each on brace's clock: a deposit
    is one atomic add, a withdrawal reads the window and takes one CAS. Each
    deposit is also counted here (`_deposits`), for a subclass that sends this
    host's calls elsewhere (a Redis store) without a hook on the success path.
    """

    cdef c.brc_budget_t _state
    cdef c.brc_budget_t *_b          # &_state, or the shared slot's state
    cdef SharedRegion _region        # keeps a shared state's mapping alive
    cdef uint64_t _deposited         # deposits made through this object, ever
    cdef uint64_t _refused           # withdrawals this object refused, ever: read by metrics

    def __cinit__(self):
        self._b = &self._state

    def _configure(self, uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns,
                   SharedRegion region=None, str slot=None):
        """Configures the budget: in this object, or (region and slot) in a shared region's
        slot, claimed by the first process. False (nothing changed) when the slot holds another
        configuration."""
        cdef c.brc_budget_t *shared = NULL
        cdef bytes encoded
        cdef const char *slot_name
        cdef int status
        if region is None:
            _check(c.brc_budget_init(&self._state, ratio_milli, min_per_second, ttl_ns),
                   "ratio, min_per_second and ttl")
            return True
        encoded = slot.encode()
        slot_name = encoded
        with nogil:  # it may wait (bounded) for another process to finish initialising it
            status = c.brc_region_budget(region._region, slot_name, ratio_milli, min_per_second,
                                         ttl_ns, &shared)
        if status == c.BRC_EEXIST:
            return False
        _region_check(status, f"shm://{region.name}, slot {slot!r}")
        self._b, self._region = shared, region
        return True

    def deposit(self):
        """Records one call: its `ratio` tokens count for the next `ttl`."""
        cdef int status = c.brc_budget_deposit(self._b, c.brc_now_ns())
        if status < 0:
            _check(status, "retry budget (not configured)")
        # A plain add: the GIL is held through this method, so no other thread's add
        # interleaves (the C budget's add is atomic because other processes share it).
        self._deposited += 1

    def _deposits(self):
        """Deposits made through this object since it was made (it never goes back)."""
        return self._deposited

    def try_withdraw(self):
        """Takes one token for a retry if the balance covers it; returns whether it did."""
        cdef int status = c.brc_budget_try_withdraw(self._b, c.brc_now_ns())
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return _check(status, "retry budget (not configured)")

    def _reconfigure(self, uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns):
        """A new ratio and floor for this object's budget (two atomic stores; the window stays)."""
        _check(c.brc_budget_reconfigure(self._b, ratio_milli, min_per_second, ttl_ns),
               "ratio and min_per_second")

    def _count_refusal(self):
        """Counts one withdrawal refused in Python (one add under the GIL: exact across threads)."""
        self._refused += 1

    def _refusals(self):
        return self._refused

    def _balance(self):
        """The balance now, in milli-tokens (negative when overdrawn by expiry)."""
        cdef int64_t out = 0
        _check(c.brc_budget_balance(self._b, c.brc_now_ns(), &out),
               "retry budget (not configured)")
        return out
