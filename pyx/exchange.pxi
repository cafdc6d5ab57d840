# brace._core: ExchangeCore, the compiled base of the HTTP integrations' Exchange
# (brace.integrations._exchange); included by _core.pyx after policy.pxi and recovery.pxi.

cdef class ExchangePlan:
    """One logical HTTP request: what every attempt of it shares."""

    cdef readonly str method
    cdef readonly str host
    cdef readonly str correlation
    cdef public long attempts        # attempts sent so far (resend_count is this less one)

    def __cinit__(self, str method, str host, str correlation):
        self.method, self.host, self.correlation = method, host, correlation


cdef class ExchangeCore:
    """The success path of one HTTP request through brace, compiled: its plan (host, policy,
    correlation id and idempotency key put on), the attempt's sync driver, its bound and its
    answer's status and quota test. What is rare - the waits before an attempt, what an
    answer teaches every caller, the log, the async driver - is the subclass's
    (brace._hooks.ExchangeHooks)."""

    cdef readonly object wire
    cdef readonly object hosts
    cdef readonly object credentials
    cdef readonly object correlation_header
    cdef readonly bint idempotency_key
    cdef readonly object log
    cdef frozenset _idempotent_methods
    cdef str _idempotency_header
    cdef object _correlation_var

    def _configure_core(self, *, wire, hosts, credentials, correlation_header, bint idempotency_key, log,
                        frozenset idempotent_methods, str idempotency_header, correlation_var):
        self.wire, self.hosts, self.credentials, self.log = wire, hosts, credentials, log
        self.correlation_header, self.idempotency_key = correlation_header, idempotency_key
        self._idempotent_methods, self._idempotency_header = idempotent_methods, idempotency_header
        self._correlation_var = correlation_var

    def _plan(self, request, discard):
        """(host, plan, policy) of a request; the headers of all its attempts put on."""
        wire = self.wire
        method = wire.method(request).upper()
        host = self.hosts.host(wire.host(request))
        correlation = self._correlation_var.get()
        if correlation is None:
            correlation = brc_correlation_new()
        plan = ExchangePlan(method, host.key, correlation)
        key = made = None
        if method not in self._idempotent_methods:  # a key of the caller's own stays as it is
            key = wire.header(request, self._idempotency_header)  # read before any header is put on
            if key is None and self.idempotency_key:
                key = made = brc_correlation_new()
        if self.correlation_header is not None:
            wire.set_header(request, self.correlation_header, correlation)
        if made is not None:
            wire.set_header(request, self._idempotency_header, made)
        if key is None and method not in self._idempotent_methods:
            return host, plan, host.once
        return host, plan, host.policy if not host.releases else self._releasing(host, discard)

    def send(self, request, send, release, discard):
        """The request through its host's policy, in this thread: `send` sends one attempt
        (the request and its timeout, None: the client's), `release` reads a failed answer's
        body, `discard` closes the answer of a hedged copy that lost."""
        host, plan, policy = self._plan(request, discard)
        # Policy.call, knowing the attempt to be sync (a compiled method, which call would look at in Python).
        return _policy_call(<PolicyCore?>policy, self._attempt, (host, request, plan, send, release), None)

    def _attempt(self, host, request, ExchangePlan plan, send, release):
        """One attempt in this thread (its async twin is the subclass's _attempt_async)."""
        cdef uint64_t start
        token = None
        if host.gate.until_ns or host.adaptive is not None or self.credentials is not None:
            token = self._wait(host)
        timeout = self._ready(request, plan, token)
        start = c.brc_now_ns()
        try:
            response = send(request, timeout)
        except Exception as error:
            self._unanswered(host, plan, start, error)
            raise
        if self._answered(host, response, token, start) >= 400:
            release(response)  # read to its end, so that the client returns the connection to its pool
        if self.log is not None:
            self._logged(plan, start, response)
        return response

    def _ready(self, request, ExchangePlan plan, token):
        """Puts the token on; the attempt's timeout: the time left of brace's deadline
        (brace.deadline_remaining(); None: none)."""
        cdef uint64_t now
        plan.attempts += 1
        credentials = self.credentials
        if token is not None and credentials is not None:
            self.wire.set_header(request, credentials.header, credentials.value(token))
        bound = _bound.get()
        if bound is None:
            return None
        now = c.brc_now_ns()
        if bound <= now:
            raise AttemptTimeout(timeout=0.0)
        return (bound - now) / 1e9

    def _answered(self, host, response, token, uint64_t start):
        """Learns what an answer says for every caller; its status."""
        wire = self.wire
        status = wire.status(response)
        # The common success has no quota fields to read, and nothing to learn.
        told = (status >= 400 or wire.may_have_quota_fields(response)) and self._learn(host, response, status, token)
        if host.adaptive is not None:
            self._adapt(host, response, status, told, start)
        return status
