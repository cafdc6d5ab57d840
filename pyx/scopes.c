/*
 * scopes.c - the open `with` blocks of compiled context managers, per thread
 * (see scopes.h).
 */
#include "scopes.h"

typedef struct {
  PyObject *owner;
  PyObject *context;
  uint64_t token;
  uint64_t start;
} brc__scope_t;

/* Grown, never shrunk: a thread's deepest nesting (blocks open at once in
 * all its tasks) costs its memory once, and then no call allocates. One
 * thread-local struct, so each call looks its address up once. */
typedef struct {
  brc__scope_t *scopes;
  size_t depth;
  size_t capacity;
} brc__stack_t;

static _Thread_local brc__stack_t brc__stack;

/* The current context object, created if the thread has none yet, so that
 * it stays the same object from __enter__ to __exit__. Borrowed. */
static PyObject *brc__current_context(void) {
  PyThreadState *tstate = PyThreadState_Get();
  if (tstate->context == NULL) {
    PyObject *copy = PyContext_CopyCurrent(); /* creates the thread's context */
    if (copy == NULL)
      return NULL;
    Py_DECREF(copy);
  }
  return tstate->context;
}

int brc_scope_push(PyObject *owner, uint64_t token, uint64_t start) {
  PyObject *context = brc__current_context();
  if (context == NULL)
    return -1;
  brc__stack_t *stack = &brc__stack;
  if (stack->depth == stack->capacity) {
    size_t capacity = stack->capacity ? 2 * stack->capacity : 8;
    brc__scope_t *grown = PyMem_RawRealloc(stack->scopes, capacity * sizeof *grown);
    if (grown == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    stack->scopes = grown;
    stack->capacity = capacity;
  }
  Py_INCREF(owner);
  Py_INCREF(context);
  stack->scopes[stack->depth++] = (brc__scope_t){owner, context, token, start};
  return 0;
}

int brc_scope_pop(PyObject *owner, uint64_t *token, uint64_t *start) {
  PyObject *context = PyThreadState_Get()->context;
  brc__stack_t *stack = &brc__stack;
  for (size_t i = stack->depth; i-- > 0;) {
    brc__scope_t *scope = &stack->scopes[i];
    if (scope->owner != owner || scope->context != context)
      continue;
    *token = scope->token;
    *start = scope->start;
    PyObject *held_owner = scope->owner, *held_context = scope->context;
    /* Blocks of other tasks above it stay open, in order. */
    memmove(scope, scope + 1, (stack->depth - i - 1) * sizeof *scope);
    stack->depth--;
    Py_DECREF(held_owner);
    Py_DECREF(held_context);
    return 1;
  }
  return 0;
}
