/*
 * guard.h - the compiled wrapper around a guarded function (binding layer).
 *
 * A decorated function is called millions of times; a Python closure costs
 * ~70 ns and a Cython __call__(*args, **kwargs) ~67 ns before doing anything.
 * A guard (brace._core.Guarded, made by brc_guard_new) forwards with
 * PyObject_Vectorcall instead (no tuple, no dict), and asks its owner - an
 * instance of a Cython base class of brace.RateLimiter, CircuitBreaker, ... -
 * through two C hooks whether the call may go ahead and what its outcome
 * means. Implemented in guard.c.
 *
 * The owner's contract. Anything rare (a call the enter hook will not let
 * through in C, an exception, a result to check, an awaitable) goes to the
 * owner's Python methods, which get the call itself (fn, the positional
 * arguments as a tuple, the keyword arguments as a dict), so that they can
 * also make it again. An owner whose hooks can answer 1, or whose calls can
 * fail, must define (brace._hooks.GuardOwner declares them for type checkers):
 *
 *   owner._guard_call(fn, args, kwargs)
 *       The whole call, when enter() returned 1 (wait for a slot, retry, ...).
 *       Returns what the call returns, or raises.
 *   owner._guard_failed(fn, args, kwargs, error, token, start)
 *       fn raised `error` (token and start are enter()'s). Returns what the
 *       call returns instead, raises (the guard sets `error` as its context),
 *       or returns RERAISE (the object given to brc_guard_ready) to re-raise
 *       `error` as it was, traceback included.
 *   owner._guard_result(fn, args, kwargs, result, token, start)
 *       fn returned `result` and success() returned 1. Returns what the call
 *       returns, or raises.
 *   owner._guard_awaitable(fn, args, kwargs, awaitable, token, start)
 *       A plain (sync) fn returned an awaitable (a coroutine, a Future): its
 *       work has not happened yet, so success() is not called. Returns an
 *       awaitable that guards the real, awaited outcome.
 */
#ifndef BRACE_GUARD_H
#define BRACE_GUARD_H

#include <Python.h>
#include <stdint.h>

/* Whether the call may go ahead. Returns 0 (go ahead; *token and *start are
 * the owner's, passed back to success() and the Python hooks), 1 (the guard
 * calls owner._guard_call instead, with nothing taken), or -1 with an
 * exception set (the call is refused: that exception is the call's). */
typedef int (*brc_guard_enter_fn)(PyObject *owner, uint64_t *token, uint64_t *start);

/* fn returned a value that is not awaitable. Returns 0 (done: the guard
 * returns the value), 1 (the guard returns owner._guard_result(...)), or -1
 * with an exception set. */
typedef int (*brc_guard_success_fn)(PyObject *owner, uint64_t token, uint64_t start);

/* Readies the Guarded type and the hook names, once per process; `reraise`
 * is the owners' "re-raise as it was" answer (a reference is kept). Returns
 * 0, or -1 with an exception set. Call with the GIL held. */
int brc_guard_ready(PyObject *reraise);

/* A new guard calling `fn` under `owner`'s hooks: a new reference, or NULL
 * with an exception set. It keeps references to fn and owner, and binds
 * like a function when it decorates a method. */
PyObject *brc_guard_new(PyObject *fn, PyObject *owner, brc_guard_enter_fn enter,
                        brc_guard_success_fn success);

/* The guard's steps, shared with the compiled entry points (entries.h), for
 * a call of `fn` with a vectorcall's arguments under `owner`. Each returns a
 * new reference, or NULL with an exception set; call with the GIL held.
 *   brc_guard_slow_call  owner.<method>(fn, args, kwargs): a whole call in Python
 *   brc_guard_failed     fn raised (the exception is set): owner._guard_failed(...)
 *   brc_guard_succeeded  fn returned `result` (stolen): success(), and
 *                        owner._guard_result(...) when it answers 1 */
PyObject *brc_guard_slow_call(PyObject *owner, PyObject *method, PyObject *fn, PyObject *const *args,
                              size_t nargsf, PyObject *kwnames);
PyObject *brc_guard_failed(PyObject *owner, PyObject *fn, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                           uint64_t token, uint64_t start);
PyObject *brc_guard_succeeded(PyObject *owner, PyObject *fn, brc_guard_success_fn success, PyObject *const *args,
                              size_t nargsf, PyObject *kwnames, PyObject *result, uint64_t token, uint64_t start);

/* A rejection's exception (CircuitOpen, BulkheadFull, RateLimited: their
 * facts are their args), made as BaseException.__new__(type, *args) makes
 * it - no __init__, no message formatted - but by a direct call of the
 * type's tp_new, with no argument tuple built for the call itself. A new
 * reference, or NULL with an exception set. */
PyObject *brc_guard_rejection(PyObject *type, PyObject *args);

/* What the sync entry points (cb.call(fn, ...), ...) learn about fn before
 * calling it, cheaply for plain functions, methods and builtins:
 *   BRC_CALLABLE_SYNC     a plain function (or a guard of another owner)
 *   BRC_CALLABLE_ASYNC    a coroutine function: its calls return coroutines
 *                         (also another owner's coroutine guard, awaiting.h)
 *   BRC_CALLABLE_GUARDED  already guarded by `owner` (its decorator or a
 *                         Python wrapper of owner's with guarded_by = owner)
 *   BRC_CALLABLE_UNKNOWN  anything else: Python must look (partials,
 *                         objects with __call__, functions with attributes)
 * A bound method is judged by its function. Never fails. */
#define BRC_CALLABLE_SYNC 0
#define BRC_CALLABLE_ASYNC 1
#define BRC_CALLABLE_GUARDED 2
#define BRC_CALLABLE_UNKNOWN 3

int brc_guard_callable_kind(PyObject *fn, PyObject *owner);

/* Whether `obj` can be awaited: a coroutine, a Future, anything with __await__.
 * One load and a branch for the results of plain functions (inline: it runs
 * after every guarded call). Never fails. */
static inline int brc_guard_is_awaitable(PyObject *obj) {
  PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
  return am != NULL && am->am_await != NULL;
}

#endif /* BRACE_GUARD_H */
