/*
 * scopes.h - which `with` block a __exit__ closes (binding layer).
 *
 * A compiled context manager (`with cb:`) takes a permission in __enter__
 * and must hand the same (token, start) to its __exit__, but CPython calls
 * both on the manager, which many threads and tasks share. The open blocks
 * are kept per thread, each tagged with its owner and the context it was
 * entered in: threads never see each other's, and the asyncio tasks of one
 * thread, which each run in their own context and interleave at their
 * awaits, find their own. Pushing and popping allocate nothing once a
 * thread's stack has grown to its deepest nesting. Implemented in scopes.c.
 */
#ifndef BRACE_SCOPES_H
#define BRACE_SCOPES_H

#include <Python.h>
#include <stdint.h>

/* Opens a block of `owner` in the current thread and context. Returns 0, or
 * -1 with MemoryError set. Keeps references to owner and the context until
 * the block is closed. Call with the GIL held. */
int brc_scope_push(PyObject *owner, uint64_t token, uint64_t start);

/* Closes the newest open block of `owner` in the current thread and context:
 * 1 with *token and *start set, or 0 when there is none (an __exit__ without
 * its __enter__). Never fails. Call with the GIL held. */
int brc_scope_pop(PyObject *owner, uint64_t *token, uint64_t *start);

#endif /* BRACE_SCOPES_H */
