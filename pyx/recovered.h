/*
 * recovered.h - a function decorated by brace.Recovery (binding layer): its
 * first attempt, in C.
 *
 * A recovered call's first attempt usually succeeds, millions of times. A
 * Recovered (made by brc_recovered_new) is called with vectorcall (no tuple,
 * no dict for the arguments) and decides that success here when its
 * Recovery's state says a success needs nothing from Python but a count and,
 * when someone listens, one compact record handed to the listeners' first-try
 * targets: (operation, start ns, duration ns, correlation id), a tuple that
 * brace.recovery._events.first_try_event turns into the RecoveryEvent the
 * Python steps would have made. Everything else goes to the Recovery's Python
 * callables, which get the arguments as a tuple and a dict:
 *
 *   whole(args, kwargs)
 *       The whole call (write-ahead: its record comes before the attempt).
 *   rest(args, kwargs, start, returned, outcome)
 *       The call after a first attempt made here, which started at `start`
 *       (ns, brace's clock) and returned `outcome` (returned true) or raised
 *       it: a failure, a result that is not plain, an awaitable, or a
 *       success that needs more than a count.
 *
 * When listened to, the call runs within a correlation id (the caller's, or a
 * new one set on the correlation context variable for the call), which the
 * operation, `rest` and the record see. All of it with the GIL held.
 */
#ifndef BRACE_RECOVERED_H
#define BRACE_RECOVERED_H

#include <Python.h>
#include <stdint.h>

/* What a Recovery's configuration means for the compiled first attempt. Owned
 * by brace._core.RecoveryCore, which holds references to the objects below
 * (borrowed here) and changes them only with the GIL held. */
typedef struct {
  int fast;                 /* a first-try success with a plain result needs only the count and the targets */
  int whole_call_in_python; /* whole() makes every call */
  PyObject *targets;        /* tuple of callables taking a first-try record; empty when nobody listens */
  PyObject *correlation_var; /* the correlation id's contextvars.ContextVar */
  PyObject *report;         /* report(target, operation, error): a target raised */
  uint64_t first_tries;     /* first-try successes decided here (not while a replay is open) */
} brc_recovery_state;

/* A new Recovered calling `attempt` for `owner` (its guarded_by), reading
 * `state` (kept alive by a reference to `state_owner`): a new reference, or
 * NULL with an exception set. `operation` is the name its records carry. */
PyObject *brc_recovered_new(PyObject *attempt, PyObject *state_owner, brc_recovery_state *state, PyObject *owner,
                            PyObject *operation, PyObject *whole, PyObject *rest);

/* Readies the Recovered type, once per process. Returns 0, or -1 with an exception set. */
int brc_recovered_ready(void);

/* `Recovery.replaying()` blocks open in the process (while there is one, a
 * success may belong to a replay's books, which only Python tells apart). */
extern Py_ssize_t brc__recovery_replays;

/* Correlation ids: `prefix` (a str of 16 ASCII characters, random per process)
 * and a serial from 0 in 16 hex digits. Restarting sets the prefix and the
 * serial back to 0 (after a fork). Returns 0, or -1 with an exception set. */
int brc_correlation_restart(PyObject *prefix);

/* A fresh correlation id (a new reference), or NULL with an exception set. */
PyObject *brc_correlation_new(void);

#endif /* BRACE_RECOVERED_H */
