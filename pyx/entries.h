/*
 * entries.h - compiled entry points of the primitives: `call(fn, ...)`,
 * `with` (__enter__ / __exit__) and `async with` (__aenter__ / __aexit__)
 * (binding layer).
 *
 * Written as Cython `def` methods they cost more than their work: `def
 * call(self, fn, /, *args, **kwargs)` builds a tuple and a dict per call,
 * an exception leaving a Cython function gets a traceback entry made for it
 * (a rejection costs more for it than for the rest), `with` makes a bound
 * method object per lookup, and an `async def __aenter__` a coroutine per
 * block. An entry is a method descriptor written in C instead: called
 * through CPython's method-call path it gets its arguments as a C array
 * with no bound object; looked up by `with` it binds through a free list;
 * its async forms return a compiled awaitable that is already done.
 *
 * Each primitive's cdef class (the .pxi of its primitive) fills one
 * brc_entry_hooks_t with C functions written in Cython and installs the
 * entries it has on its type with brc_entry_install. What each entry does:
 *
 *   call(fn, /, *args, **kwargs)
 *       A plain function (brc_guard_callable_kind says SYNC) is run as a
 *       guard runs it (guard.h): enter(), fn, then success() or
 *       owner._guard_failed(...); an awaitable result is refused (what
 *       enter() took is given back with give_back(), and the error made by
 *       refuse() is raised). Anything else - a coroutine function, a
 *       callable Python must look at, or enter() answering 1 - goes whole
 *       to owner._call_slow(fn, args, kwargs).
 *   __enter__()
 *       enter(): 0 opens the block (its token and start kept in scopes.h
 *       when `scoped`), 1 returns enter_slow(owner), -1 raises.
 *   __exit__(exc_type, exc, tb)
 *       Closes the block: success() when exc is None (and exit_result()
 *       when it answers 1), else exit_failed(owner, exc, ...). Returns None:
 *       the block's exception propagates.
 *   __aenter__(), __aexit__(exc_type, exc, tb)
 *       The same, done when called: a rejection raises from the call, which
 *       `async with` reports at the same line. They return an awaitable
 *       already done with the owner (or None), or, when enter() answers 1,
 *       enter_slow_async(owner), a coroutine that waits.
 */
#ifndef BRACE_ENTRIES_H
#define BRACE_ENTRIES_H

#include <Python.h>
#include <stdint.h>

#include "guard.h"

typedef struct {
  const char *name;                /* the public class, for messages: "CircuitBreaker" */
  int scoped;                      /* with blocks keep their (token, start) in scopes.h */
  brc_guard_enter_fn enter;
  brc_guard_success_fn success;
  /* Gives back what enter() took for a call that did not run: 0, or -1 with an exception set. */
  int (*give_back)(PyObject *owner, uint64_t token);
  /* The error for a plain fn that returned an awaitable to call() (a new reference). */
  PyObject *(*refuse)(PyObject *result, PyObject *fn, const char *entry);
  /* enter() answered 1: what __enter__ returns once admitted (waits), or NULL with an exception set.
   * This and the hooks below may be NULL for an owner whose enter() never answers 1, whose
   * success() never answers 1 (exit_result), or that has no entry using them. */
  PyObject *(*enter_slow)(PyObject *owner);
  /* The same for __aenter__: an awaitable, or NULL with an exception set. */
  PyObject *(*enter_slow_async)(PyObject *owner);
  /* success() answered 1 at the end of a block: 0, or -1 with an exception set. */
  int (*exit_result)(PyObject *owner, uint64_t token, uint64_t start);
  /* The block raised `error`: 0, or -1 with an exception set. */
  int (*exit_failed)(PyObject *owner, PyObject *error, uint64_t token, uint64_t start);
} brc_entry_hooks_t;

/* Which entries brc_entry_install puts on a type. */
#define BRC_ENTRY_CALL 1
#define BRC_ENTRY_WITH 2
#define BRC_ENTRY_ASYNC_WITH 4

/* Installs the entries `which` on `type` (a static type, not yet
 * subclassed), running under `hooks` (static storage: kept, not copied).
 * Returns 0, or -1 with an exception set. Call with the GIL held. */
int brc_entry_install(PyObject *type, const brc_entry_hooks_t *hooks, int which);

/* An awaitable already done with `value` (awaiting it returns value at once;
 * a new reference, or NULL with an exception set). */
PyObject *brc_entry_done(PyObject *value);

#endif /* BRACE_ENTRIES_H */
