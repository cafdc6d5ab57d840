# Mirrors csrc/brace.h: only what the binding reads. Structs are opaque to
# Cython; the C compiler knows their size, so cdef classes embed them by value.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "brace.h" nogil:
    int BRC_OK
    int BRC_REFUSED
    int BRC_EINVAL
    int BRC_E2BIG
    int BRC_ERANGE
    const char *brc_strerror(int status)
    const char *brc_status_name(int status)

    uint64_t BRC_DURATION_MAX

    uint64_t brc_now_ns()
    const char *brc_clock_source()
    int brc_clock_freeze(uint64_t now)
    int brc_clock_advance(uint64_t delta)
    int brc_clock_advance_to(uint64_t target)
    int brc_clock_thaw()
    int brc_clock_is_frozen()

    void brc_rng_seed(uint64_t seed)
    double brc_rng_uniform()

    ctypedef struct brc_gcra_t:
        pass
    ctypedef struct brc_gcra_report_t:
        uint64_t limit
        uint64_t remaining
        uint64_t retry_after
        uint64_t reset_after
    int brc_gcra_init(brc_gcra_t *g, uint64_t interval, uint64_t burst)
    int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t max_wait, uint64_t *wait)
    int brc_gcra_peek(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t *retry_after)
    int brc_gcra_refund(brc_gcra_t *g, uint64_t n, uint64_t now)
    int brc_gcra_report(brc_gcra_t *g, uint64_t now, brc_gcra_report_t *out)
    int brc_gcra_reconfigure(brc_gcra_t *g, uint64_t interval, uint64_t burst, uint64_t now)

    # ---- windows and breaker
    int BRC_WINDOW_COUNT
    int BRC_WINDOW_TIME
    uint64_t BRC_WINDOW_COUNT_MAX
    uint64_t BRC_WINDOW_TIME_MAX
    uint64_t BRC_WINDOW_CALLS_MAX
    uint64_t BRC_HALF_OPEN_CALLS_MAX
    uint64_t BRC_BREAKER_PROBE_LEASES
    uint64_t BRC_BREAKER_LEASED
    unsigned BRC_OUTCOME_FAILURE
    unsigned BRC_OUTCOME_SLOW
    int BRC_WOULD_OPEN
    int BRC_STALE
    int BRC_OPEN

    ctypedef struct brc_window_t:
        pass
    ctypedef struct brc_window_snapshot_t:
        uint64_t calls
        uint64_t failures
        uint64_t slow_calls
        uint64_t slow_failures
        uint64_t duration
    uint64_t brc_window_bytes(uint64_t kind, uint64_t size)
    int brc_window_init(brc_window_t *w, uint64_t kind, uint64_t size, uint64_t bucket)
    int brc_window_carry(brc_window_t *to, brc_window_t *source)
    int brc_window_record(brc_window_t *w, unsigned outcome, uint64_t duration, uint64_t now)
    int brc_window_snapshot(brc_window_t *w, uint64_t now, brc_window_snapshot_t *out)

    ctypedef struct brc_breaker_config_t:
        double failure_rate
        double slow_rate
        uint64_t minimum_calls
        uint64_t consecutive_failures
        uint64_t half_open_calls
        uint64_t max_half_open
        uint64_t wait_base
        double wait_multiplier
        uint64_t wait_max
        double wait_jitter
    ctypedef struct brc_breaker_t:
        pass
    ctypedef struct brc_breaker_transition_t:
        int to "to"
        int from_ "from"
    ctypedef struct brc_breaker_report_t:
        int state
        uint64_t generation
        uint64_t openings
        uint64_t not_permitted
        uint64_t probes_out
        uint64_t retry_after
        uint64_t consecutive
        uint64_t successful
        uint64_t failed
        uint64_t slow
        uint64_t ignored
    int brc_breaker_init(brc_breaker_t *b, const brc_breaker_config_t *config)
    int brc_breaker_acquire(brc_breaker_t *b, uint64_t now, uint64_t *ticket, uint64_t *retry_after,
                            brc_breaker_transition_t *t)
    int brc_breaker_record(brc_breaker_t *b, brc_window_t *w, uint64_t ticket, unsigned outcome,
                           uint64_t duration, uint64_t now, brc_breaker_transition_t *t)
    int brc_breaker_release(brc_breaker_t *b, uint64_t ticket)
    int brc_breaker_count_ignored(brc_breaker_t *b)
    int brc_breaker_try_permit(brc_breaker_t *b, uint64_t *ticket)
    int brc_breaker_acquire_leased(brc_breaker_t *b, uint64_t tag, uint64_t now, uint64_t *ticket,
                                   uint64_t *retry_after, brc_breaker_transition_t *t)
    int brc_breaker_record_leased(brc_breaker_t *b, brc_window_t *w, uint64_t tag, uint64_t ticket,
                                  unsigned outcome, uint64_t duration, uint64_t now, brc_breaker_transition_t *t)
    int brc_breaker_release_leased(brc_breaker_t *b, uint64_t tag, uint64_t ticket)
    int brc_breaker_sweep_probes(brc_breaker_t *b, uint64_t now)
    int brc_breaker_transition(brc_breaker_t *b, brc_window_t *w, int state, uint64_t now,
                               brc_breaker_transition_t *t)
    int brc_breaker_set_open_until(brc_breaker_t *b, uint64_t generation, uint64_t until)
    int brc_breaker_report(brc_breaker_t *b, uint64_t now, brc_breaker_report_t *out)
    int brc_breaker_reconfigure(brc_breaker_t *b, brc_window_t *w, const brc_breaker_config_t *config,
                                uint64_t now, brc_breaker_transition_t *t)


cdef extern from "guard.h":
    ctypedef int (*brc_guard_enter_fn)(object owner, uint64_t *token, uint64_t *start) except -1
    ctypedef int (*brc_guard_success_fn)(object owner, uint64_t token, uint64_t start) except -1
    int brc_guard_ready(object reraise) except -1
    object brc_guard_new(object fn, object owner, brc_guard_enter_fn enter, brc_guard_success_fn success)
    bint brc_guard_is_awaitable(object obj)
    int brc_guard_callable_kind(object fn, object owner)
    object brc_guard_rejection(object type, tuple args)
    enum:
        BRC_CALLABLE_SYNC
        BRC_CALLABLE_ASYNC
        BRC_CALLABLE_GUARDED
        BRC_CALLABLE_UNKNOWN


cdef extern from "awaiting.h":
    int brc_awaiting_ready() except -1
    object brc_awaiting_new(object fn, object owner, brc_guard_enter_fn enter, brc_guard_success_fn success)


cdef extern from "entries.h":
    ctypedef struct brc_entry_hooks_t:
        const char *name
        int scoped
        brc_guard_enter_fn enter
        brc_guard_success_fn success
        int (*give_back)(object owner, uint64_t token) except -1
        object (*refuse)(object result, object fn, const char *entry)
        object (*enter_slow)(object owner)
        object (*enter_slow_async)(object owner)
        int (*exit_result)(object owner, uint64_t token, uint64_t start) except -1
        int (*exit_failed)(object owner, object error, uint64_t token, uint64_t start) except -1
    enum:
        BRC_ENTRY_CALL
        BRC_ENTRY_WITH
        BRC_ENTRY_ASYNC_WITH
    int brc_entry_install(object type, const brc_entry_hooks_t *hooks, int which) except -1


cdef extern from "scopes.h":
    int brc_scope_push(object owner, uint64_t token, uint64_t start) except -1
    int brc_scope_pop(object owner, uint64_t *token, uint64_t *start)


# ---- bulkhead permits
cdef extern from "brace.h" nogil:
    int BRC_HANDOFF
    uint64_t BRC_BULKHEAD_MAX

    ctypedef struct brc_bulkhead_t:
        pass
    ctypedef struct brc_bulkhead_report_t:
        uint64_t in_use
        uint64_t max
        uint64_t waiters_queued
    int brc_bulkhead_init(brc_bulkhead_t *b, uint64_t max)
    int brc_bulkhead_try_acquire(brc_bulkhead_t *b)
    int brc_bulkhead_release(brc_bulkhead_t *b)
    int brc_bulkhead_enqueue(brc_bulkhead_t *b)
    int brc_bulkhead_handoff(brc_bulkhead_t *b, uint64_t queued)
    int brc_bulkhead_grant(brc_bulkhead_t *b, uint64_t queued)
    int brc_bulkhead_unflag(brc_bulkhead_t *b)
    int brc_bulkhead_report(brc_bulkhead_t *b, brc_bulkhead_report_t *out)
    int brc_bulkhead_reconfigure(brc_bulkhead_t *b, uint64_t max)


# ---- leased permits (a bulkhead shared by processes)
cdef extern from "brace.h" nogil:
    uint64_t BRC_LEASES_MAX
    uint64_t BRC_LEASES_SWEEP_NS

    ctypedef struct brc_leases_t:
        pass
    ctypedef struct brc_leases_report_t:
        uint64_t in_use
        uint64_t max
        uint64_t mine
    uint64_t brc_leases_bytes(uint64_t max)
    int brc_leases_init(brc_leases_t *l, uint64_t max)
    uint64_t brc_lease_tag(uint64_t pid)
    int brc_leases_acquire(brc_leases_t *l, uint64_t tag, uint64_t now, uint64_t *index)
    int brc_leases_release(brc_leases_t *l, uint64_t tag, uint64_t hint)
    int brc_leases_sweep(brc_leases_t *l, uint64_t now)
    int brc_leases_report(brc_leases_t *l, uint64_t tag, brc_leases_report_t *out)


# ---- backoff and jitter
cdef extern from "brace.h" nogil:
    int BRC_BACKOFF_EXPONENTIAL
    int BRC_BACKOFF_LINEAR
    int BRC_BACKOFF_CONSTANT
    int BRC_JITTER_NONE
    int BRC_JITTER_FULL
    int BRC_JITTER_EQUAL
    int BRC_JITTER_DECORRELATED
    int BRC_JITTER_PROPORTIONAL

    ctypedef struct brc_backoff_t:
        pass
    int brc_backoff_init(brc_backoff_t *b, int kind, uint64_t initial, uint64_t max,
                         double multiplier, uint64_t increment, int jitter, double factor)
    int brc_backoff_delay(const brc_backoff_t *b, uint64_t attempt, uint64_t previous, uint64_t *delay)


# ---- retry budget
from libc.stdint cimport int64_t

cdef extern from "brace.h" nogil:
    int BRC_BUDGET_BUCKETS
    int BRC_BUDGET_TOKEN
    uint64_t BRC_BUDGET_RATIO_MAX
    uint64_t BRC_BUDGET_MIN_PER_SECOND_MAX
    uint64_t BRC_BUDGET_TTL_MIN
    uint64_t BRC_BUDGET_TTL_MAX

    ctypedef struct brc_budget_t:
        pass
    int brc_budget_init(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns)
    int brc_budget_reconfigure(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns)
    int brc_budget_deposit(brc_budget_t *b, uint64_t now)
    int brc_budget_try_withdraw(brc_budget_t *b, uint64_t now)
    int brc_budget_balance(brc_budget_t *b, uint64_t now, int64_t *out)


# ---- latency histogram
from libc.stdint cimport uint32_t

cdef extern from "brace.h" nogil:
    int BRC_HISTOGRAM_BUCKETS
    uint64_t BRC_HISTOGRAM_WINDOW_MIN
    uint64_t BRC_HISTOGRAM_WINDOW_MAX
    uint32_t BRC_HISTOGRAM_PPM

    ctypedef struct brc_histogram_t:
        pass
    int brc_histogram_init(brc_histogram_t *h, uint64_t window_ns)
    int brc_histogram_record(brc_histogram_t *h, uint64_t now, uint64_t duration_ns)
    int brc_histogram_percentile(brc_histogram_t *h, uint64_t now, uint32_t q_ppm, uint64_t *value_ns,
                                 uint64_t *count)

# ---- shared-memory region
cdef extern from "brace.h" nogil:
    int BRC_ENOENT
    int BRC_EIO
    int BRC_EACCES
    int BRC_EEXIST
    int BRC_ENOSPC
    int BRC_ETIMEDOUT
    int BRC_EVERSION
    int BRC_EOWNERDEAD
    uint64_t BRC_REGION_CAPACITY_MIN
    uint64_t BRC_REGION_CAPACITY_MAX
    int BRC_REGION_NAME_MAX
    int BRC_REGION_CONFIG_MAX
    int BRC_REGION_SLOTS
    int BRC_KIND_GCRA
    int BRC_KIND_BREAKER
    int BRC_KIND_BUDGET
    int BRC_KIND_LEASES

    ctypedef struct brc_region_t:
        pass
    ctypedef struct brc_region_slot_info_t:
        uint32_t kind
        uint32_t config_len
        uint64_t state_bytes
        unsigned char config[128]
    int brc_region_open(const char *name, uint64_t capacity, brc_region_t **out)
    void brc_region_close(brc_region_t *r)
    int brc_region_unlink(const char *name)
    uint64_t brc_region_capacity(const brc_region_t *r)
    uint64_t brc_region_used(const brc_region_t *r)
    int brc_region_slot_info(brc_region_t *r, const char *slot_name, brc_region_slot_info_t *out)
    int brc_region_gcra(brc_region_t *r, const char *slot_name, uint64_t interval, uint64_t burst,
                        brc_gcra_t **out)
    int brc_region_breaker(brc_region_t *r, const char *slot_name, const brc_breaker_config_t *config,
                           uint64_t window_kind, uint64_t window_size, uint64_t bucket,
                           brc_breaker_t **breaker, brc_window_t **window)
    int brc_region_budget(brc_region_t *r, const char *slot_name, uint64_t ratio_milli,
                          uint64_t min_per_second, uint64_t ttl_ns, brc_budget_t **out)
    int brc_region_leases(brc_region_t *r, const char *slot_name, uint64_t max, brc_leases_t **out)


# ---- keyed rate limiter and stable hashes
from libc.stdint cimport uint8_t

cdef extern from "brace.h" nogil:
    int BRC_FULL
    int BRC_KEYED_PROBE
    uint64_t BRC_KEYED_CAPACITY_MIN
    uint64_t BRC_KEYED_CAPACITY_MAX
    uint64_t BRC_KEYED_STALE_NS

    ctypedef struct brc_keyed_t:
        pass
    ctypedef struct brc_keyed_counters_t:
        uint64_t admitted
        uint64_t rejected
        uint64_t full
        uint64_t evictions
    uint64_t brc_keyed_bytes(uint64_t capacity)
    int brc_keyed_init(brc_keyed_t *t, uint64_t capacity, uint64_t interval, uint64_t burst)
    int brc_keyed_acquire(brc_keyed_t *t, uint64_t hash, uint64_t n, uint64_t now, brc_gcra_report_t *report)
    int brc_keyed_state(brc_keyed_t *t, uint64_t hash, uint64_t now, brc_gcra_report_t *report)
    int brc_keyed_acquire_many(brc_keyed_t *t, const uint64_t *hashes, size_t count, uint64_t now,
                               uint8_t *admitted, brc_gcra_report_t *full)
    int brc_keyed_acquire_many_u64(brc_keyed_t *t, const uint64_t *values, size_t count, uint64_t now,
                                   uint8_t *admitted, brc_gcra_report_t *full)
    int brc_keyed_counters(brc_keyed_t *t, brc_keyed_counters_t *out)
    int BRC_KIND_KEYED
    int brc_region_keyed(brc_region_t *r, const char *slot_name, uint64_t capacity, uint64_t interval,
                         uint64_t burst, brc_keyed_t **out)
    uint64_t brc_hash64(const void *bytes, size_t len)
    uint64_t brc_hash64_u64(uint64_t value)
