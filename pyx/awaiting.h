/*
 * awaiting.h - the compiled wrapper around a guarded coroutine function
 * (binding layer).
 *
 * A Python `async def` wrapper costs a coroutine, its frame and the packing
 * of its positional and keyword arguments on every call (~300 ns on a
 * loaded machine) before it admits anything. A coroutine guard (brace._core.GuardedCoroutine, made
 * by brc_awaiting_new) is called by vectorcall and returns an awaiting proxy
 * (brace._core.GuardedAwait) holding the call's arguments in itself. The
 * proxy is a coroutine to asyncio (send, throw, close, __await__): on its
 * first send it asks the owner's enter hook (guard.h) whether the attempt may
 * go ahead, calls fn, and forwards every send, throw and close to fn's
 * coroutine; when that coroutine returns, the owner's success hook books it.
 * Implemented in awaiting.c.
 *
 * The owner's contract. Everything else goes to the owner's Python methods,
 * each of which returns a coroutine that the proxy then runs to the end in
 * place of fn's (its outcome is the call's); they get fn, the positional
 * arguments as a tuple and the keyword arguments as a dict, so that they can
 * make the call again (brace._hooks.CoroutineGuardOwner declares them):
 *
 *   owner._guard_call_async(fn, args, kwargs)
 *       The whole call, when enter() returned 1 (wait, reject, retry, ...).
 *   owner._guard_failed_async(fn, args, kwargs, error, token, start)
 *       The attempt admitted with (token, start) raised `error` (fn itself,
 *       its coroutine, or a CancelledError / GeneratorExit thrown into it);
 *       what it took must be given back or booked.
 *   owner._guard_result_async(fn, args, kwargs, result, token, start)
 *       The attempt returned `result` and success() returned 1.
 *
 * While such a coroutine runs after a failure, the failure is the exception
 * being handled (as in an `except` block), so that what it raises carries
 * the failure as its __context__, as a Python wrapper's would.
 */
#ifndef BRACE_AWAITING_H
#define BRACE_AWAITING_H

#include <Python.h>

#include "guard.h"

/* Readies the GuardedCoroutine and GuardedAwait types and the hook names,
 * once per process. Returns 0, or -1 with an exception set. Call with the
 * GIL held. */
int brc_awaiting_ready(void);

/* A new coroutine guard calling the coroutine function `fn` under `owner`'s
 * hooks: a new reference, or NULL with an exception set. It keeps
 * references to fn and owner, binds like a function when it decorates a
 * method, and has a __dict__ (for functools.update_wrapper). Each call
 * allocates one GuardedAwait (sized for its arguments) besides whatever
 * fn's call allocates. */
PyObject *brc_awaiting_new(PyObject *fn, PyObject *owner, brc_guard_enter_fn enter, brc_guard_success_fn success);

/* Whether `fn` is a coroutine guard; if so *owner is its owner (borrowed).
 * Never fails. */
int brc_awaiting_is_guard(PyObject *fn, PyObject **owner);

#endif /* BRACE_AWAITING_H */
