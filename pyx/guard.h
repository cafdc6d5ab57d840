/*
 * guard.h - the compiled wrapper around a guarded function (binding layer).
 *
 * A decorated function is called millions of times; a Python closure costs
 * ~70 ns and a Cython __call__(*args, **kwargs) ~67 ns before doing anything.
 * This small extension type forwards with PyObject_Vectorcall instead (no
 * tuple, no dict), and asks its owner - a Cython object - through two C hooks
 * whether the call may go ahead and what its outcome means. Anything rare
 * (rejection, an exception, a result to check) goes to the owner's Python
 * methods, which get the call itself, so that they can also make it again:
 *   owner._guard_call(fn, args, kwargs)
 *       the whole call, when enter() says so
 *   owner._guard_failed(fn, args, kwargs, error, token, start)
 *       after fn raised `error`; returns what the call returns, raises, or
 *       returns RERAISE (given to brc_guard_ready) to re-raise `error` as it was
 *   owner._guard_result(fn, args, kwargs, result, token, start)
 *       after fn returned, when success() says so; returns what the call returns
 *   owner._guard_awaitable(fn, args, kwargs, awaitable, token, start)
 *       after a plain (sync) fn returned an awaitable (a coroutine, a Future):
 *       its work has not happened yet, so success() is not called; the owner
 *       returns an awaitable that guards the real, awaited outcome
 */
#ifndef BRACE_GUARD_H
#define BRACE_GUARD_H

#include <Python.h>
#include <structmember.h>
#include <stdint.h>

/* 0: go ahead (*token and *start set); 1: take owner._guard_call; -1: error set. */
typedef int (*brc_guard_enter_fn)(PyObject *owner, uint64_t *token, uint64_t *start);
/* 0: done; 1: call owner._guard_result; -1: error set. */
typedef int (*brc_guard_success_fn)(PyObject *owner, uint64_t token, uint64_t start);

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *fn;
  PyObject *owner;
  PyObject *dict; /* functools.update_wrapper writes __name__, __wrapped__, ... here */
  PyObject *weakrefs;
  brc_guard_enter_fn enter;
  brc_guard_success_fn success;
} brc_guard_object;

static PyObject *brc__guard_str_call, *brc__guard_str_failed, *brc__guard_str_result, *brc__guard_str_awaitable,
    *brc__guard_reraise;

/* Whether `obj` can be awaited: a coroutine, a Future, anything with __await__.
 * One load and a branch for the results of plain functions. */
static inline int brc_guard_is_awaitable(PyObject *obj) {
  PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
  return am != NULL && am->am_await != NULL;
}

/* The call's arguments as a tuple and a dict (rare paths only). */
static int brc__guard_pack(PyObject *const *args, size_t nargsf, PyObject *kwnames, PyObject **tuple,
                           PyObject **kwargs) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  *tuple = PyTuple_New(nargs);
  *kwargs = PyDict_New();
  if (!*tuple || !*kwargs)
    goto fail;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(*tuple, i, args[i]);
  }
  for (Py_ssize_t i = 0; i < nkw; i++)
    if (PyDict_SetItem(*kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
      goto fail;
  return 0;
fail:
  Py_CLEAR(*tuple);
  Py_CLEAR(*kwargs);
  return -1;
}

static PyObject *brc__guard_slow_call(brc_guard_object *g, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames) {
  PyObject *tuple, *kwargs;
  if (brc__guard_pack(args, nargsf, kwnames, &tuple, &kwargs) < 0)
    return NULL;
  PyObject *result = PyObject_CallMethodObjArgs(g->owner, brc__guard_str_call, g->fn, tuple, kwargs, NULL);
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  return result;
}

/* owner.<method>(fn, args, kwargs, outcome, token, start) */
static PyObject *brc__guard_ask(brc_guard_object *g, PyObject *method, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames, PyObject *outcome, uint64_t token, uint64_t start) {
  PyObject *tuple, *kwargs, *answer = NULL;
  if (brc__guard_pack(args, nargsf, kwnames, &tuple, &kwargs) < 0)
    return NULL;
  PyObject *t = PyLong_FromUnsignedLongLong(token), *s = PyLong_FromUnsignedLongLong(start);
  if (t && s)
    answer = PyObject_CallMethodObjArgs(g->owner, method, g->fn, tuple, kwargs, outcome, t, s, NULL);
  Py_XDECREF(t);
  Py_XDECREF(s);
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  return answer;
}

static PyObject *brc__guard_failed(brc_guard_object *g, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                                   uint64_t token, uint64_t start) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback)
    PyException_SetTraceback(value, traceback);
  PyObject *answer = brc__guard_ask(g, brc__guard_str_failed, args, nargsf, kwnames, value, token, start);
  if (answer == brc__guard_reraise) { /* the call's own exception, untouched */
    Py_DECREF(answer);
    PyErr_Restore(type, value, traceback);
    return NULL;
  }
  if (!answer) { /* the owner raised: its error, with the call's as context */
    PyObject *t2, *v2, *tb2;
    PyErr_Fetch(&t2, &v2, &tb2);
    PyErr_NormalizeException(&t2, &v2, &tb2);
    PyObject *context = v2 ? PyException_GetContext(v2) : NULL; /* a new reference */
    if (context)
      Py_DECREF(context);
    else if (v2 && v2 != value) {
      Py_INCREF(value);
      PyException_SetContext(v2, value); /* steals the reference */
    }
    PyErr_Restore(t2, v2, tb2);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return answer;
}

static PyObject *brc__guard_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  brc_guard_object *g = (brc_guard_object *)self;
  uint64_t token = 0, start = 0;
  int rc = g->enter(g->owner, &token, &start);
  if (rc != 0)
    return rc > 0 ? brc__guard_slow_call(g, args, nargsf, kwnames) : NULL;
  PyObject *result = PyObject_Vectorcall(g->fn, args, nargsf, kwnames);
  if (!result)
    return brc__guard_failed(g, args, nargsf, kwnames, token, start);
  if (brc_guard_is_awaitable(result)) { /* its work runs when awaited: guard that */
    PyObject *adopted = brc__guard_ask(g, brc__guard_str_awaitable, args, nargsf, kwnames, result, token, start);
    Py_DECREF(result);
    return adopted;
  }
  rc = g->success(g->owner, token, start);
  if (rc == 0)
    return result;
  PyObject *given = rc < 0 ? NULL : brc__guard_ask(g, brc__guard_str_result, args, nargsf, kwnames, result, token, start);
  Py_DECREF(result);
  return given;
}

static int brc__guard_traverse(PyObject *self, visitproc visit, void *arg) {
  brc_guard_object *g = (brc_guard_object *)self;
  Py_VISIT(g->fn);
  Py_VISIT(g->owner);
  Py_VISIT(g->dict);
  return 0;
}

static int brc__guard_clear(PyObject *self) {
  brc_guard_object *g = (brc_guard_object *)self;
  Py_CLEAR(g->fn);
  Py_CLEAR(g->owner);
  Py_CLEAR(g->dict);
  return 0;
}

static void brc__guard_dealloc(PyObject *self) {
  brc_guard_object *g = (brc_guard_object *)self;
  PyObject_GC_UnTrack(self);
  if (g->weakrefs)
    PyObject_ClearWeakRefs(self);
  brc__guard_clear(self);
  Py_TYPE(self)->tp_free(self);
}

/* Decorating a method: bind like a function does. */
static PyObject *brc__guard_get(PyObject *self, PyObject *obj, PyObject *type) {
  (void)type;
  if (obj == NULL || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

static PyObject *brc__guard_repr(PyObject *self) {
  return PyUnicode_FromFormat("<brace guarded %R>", ((brc_guard_object *)self)->fn);
}

static PyMemberDef brc__guard_members[] = {
    {"guarded_by", T_OBJECT, offsetof(brc_guard_object, owner), READONLY, "The policy object guarding the call."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef brc__guard_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject brc_guard_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.Guarded",
    .tp_basicsize = sizeof(brc_guard_object),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A function guarded by a brace policy (compiled wrapper).",
    .tp_vectorcall_offset = offsetof(brc_guard_object, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dictoffset = offsetof(brc_guard_object, dict),
    .tp_weaklistoffset = offsetof(brc_guard_object, weakrefs),
    .tp_traverse = brc__guard_traverse,
    .tp_clear = brc__guard_clear,
    .tp_dealloc = brc__guard_dealloc,
    .tp_descr_get = brc__guard_get,
    .tp_repr = brc__guard_repr,
    .tp_members = brc__guard_members,
    .tp_getset = brc__guard_getset,
};

/* Readies the type once; `reraise` is the owners' "re-raise as it was"
 * answer (a reference is kept). 0 or -1 with an error set. */
static int brc_guard_ready(PyObject *reraise) {
  if (!brc__guard_str_call) {
    brc__guard_str_call = PyUnicode_InternFromString("_guard_call");
    brc__guard_str_failed = PyUnicode_InternFromString("_guard_failed");
    brc__guard_str_result = PyUnicode_InternFromString("_guard_result");
    brc__guard_str_awaitable = PyUnicode_InternFromString("_guard_awaitable");
    if (!brc__guard_str_call || !brc__guard_str_failed || !brc__guard_str_result || !brc__guard_str_awaitable)
      return -1;
    Py_INCREF(reraise);
    brc__guard_reraise = reraise;
  }
  return PyType_Ready(&brc_guard_type);
}

/* A new guard calling fn under owner's hooks (new reference, or NULL). */
static PyObject *brc_guard_new(PyObject *fn, PyObject *owner, brc_guard_enter_fn enter, brc_guard_success_fn success) {
  brc_guard_object *g = PyObject_GC_New(brc_guard_object, &brc_guard_type);
  if (!g)
    return NULL;
  g->vectorcall = brc__guard_vectorcall;
  Py_INCREF(fn);
  g->fn = fn;
  Py_INCREF(owner);
  g->owner = owner;
  g->dict = NULL;
  g->weakrefs = NULL;
  g->enter = enter;
  g->success = success;
  PyObject_GC_Track((PyObject *)g);
  return (PyObject *)g;
}

/* What the sync entry points (cb.call(fn, ...), ...) learn about fn before
 * calling it, cheaply for plain functions, methods and builtins:
 *   BRC_CALLABLE_SYNC     a plain function (or a guard of another owner)
 *   BRC_CALLABLE_ASYNC    a coroutine function: its calls return coroutines
 *   BRC_CALLABLE_GUARDED  already guarded by `owner` (its decorator or a
 *                         Python wrapper of owner's with guarded_by = owner)
 *   BRC_CALLABLE_UNKNOWN  anything else: Python must look (partials,
 *                         objects with __call__, functions with attributes)
 * A bound method is judged by its function. Never fails. */
#define BRC_CALLABLE_SYNC 0
#define BRC_CALLABLE_ASYNC 1
#define BRC_CALLABLE_GUARDED 2
#define BRC_CALLABLE_UNKNOWN 3

static int brc_guard_callable_kind(PyObject *fn, PyObject *owner) {
  if (PyMethod_Check(fn))
    fn = PyMethod_GET_FUNCTION(fn);
  if (Py_TYPE(fn) == &brc_guard_type)
    return ((brc_guard_object *)fn)->owner == owner ? BRC_CALLABLE_GUARDED : BRC_CALLABLE_SYNC;
  if (PyCFunction_Check(fn))
    return BRC_CALLABLE_SYNC;
  if (!PyFunction_Check(fn))
    return BRC_CALLABLE_UNKNOWN;
  /* A function with attributes may be a wrapper (functools.wraps, a marked
   * coroutine function, one of brace's own async wrappers): Python looks. */
  if (((PyFunctionObject *)fn)->func_dict != NULL && PyDict_GET_SIZE(((PyFunctionObject *)fn)->func_dict) > 0)
    return BRC_CALLABLE_UNKNOWN;
  int flags = ((PyCodeObject *)PyFunction_GET_CODE(fn))->co_flags;
  return flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE) ? BRC_CALLABLE_ASYNC : BRC_CALLABLE_SYNC;
}

#endif /* BRACE_GUARD_H */
