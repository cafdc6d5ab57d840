/*
 * guard.c - the compiled wrapper around a guarded function: the Guarded type
 * (vectorcall forwarding, the enter/success hooks, the owner's Python slow
 * paths). The contract is in guard.h.
 */
#include "guard.h"

#include "awaiting.h"

#include <structmember.h>

#include "capi.h"

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

PyObject *brc_guard_slow_call(PyObject *owner, PyObject *method, PyObject *fn, PyObject *const *args,
                              size_t nargsf, PyObject *kwnames) {
  PyObject *tuple, *kwargs;
  if (brc_pack_call(args, nargsf, kwnames, &tuple, &kwargs) < 0)
    return NULL;
  PyObject *result = PyObject_CallMethodObjArgs(owner, method, fn, tuple, kwargs, NULL);
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  return result;
}

/* owner.<method>(fn, args, kwargs, outcome, token, start) */
static PyObject *brc__guard_ask(PyObject *owner, PyObject *fn, PyObject *method, PyObject *const *args,
                                size_t nargsf, PyObject *kwnames, PyObject *outcome, uint64_t token,
                                uint64_t start) {
  PyObject *tuple, *kwargs, *answer = NULL;
  if (brc_pack_call(args, nargsf, kwnames, &tuple, &kwargs) < 0)
    return NULL;
  PyObject *t = PyLong_FromUnsignedLongLong(token), *s = PyLong_FromUnsignedLongLong(start);
  if (t && s)
    answer = PyObject_CallMethodObjArgs(owner, method, fn, tuple, kwargs, outcome, t, s, NULL);
  Py_XDECREF(t);
  Py_XDECREF(s);
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  return answer;
}

PyObject *brc_guard_failed(PyObject *owner, PyObject *fn, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                           uint64_t token, uint64_t start) {
  PyObject *error = brc_take_error();
  PyObject *answer = brc__guard_ask(owner, fn, brc__guard_str_failed, args, nargsf, kwnames, error, token, start);
  if (answer == brc__guard_reraise) { /* the call's own exception, untouched */
    Py_DECREF(answer);
    brc_restore_error(error);
    return NULL;
  }
  if (!answer) { /* the owner raised: its error, with the call's as context */
    PyObject *raised = brc_take_error();
    PyObject *context = raised ? PyException_GetContext(raised) : NULL; /* a new reference */
    if (context)
      Py_DECREF(context);
    else if (raised && error && raised != error) {
      Py_INCREF(error);
      PyException_SetContext(raised, error); /* steals the reference */
    }
    brc_restore_error(raised);
  }
  Py_XDECREF(error);
  return answer;
}

static PyObject *brc__guard_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  brc_guard_object *g = (brc_guard_object *)self;
  uint64_t token = 0, start = 0;
  int rc = g->enter(g->owner, &token, &start);
  if (rc != 0)
    return rc > 0 ? brc_guard_slow_call(g->owner, brc__guard_str_call, g->fn, args, nargsf, kwnames) : NULL;
  PyObject *result = PyObject_Vectorcall(g->fn, args, nargsf, kwnames);
  if (!result)
    return brc_guard_failed(g->owner, g->fn, args, nargsf, kwnames, token, start);
  if (brc_guard_is_awaitable(result)) { /* its work runs when awaited: guard that */
    PyObject *adopted =
        brc__guard_ask(g->owner, g->fn, brc__guard_str_awaitable, args, nargsf, kwnames, result, token, start);
    Py_DECREF(result);
    return adopted;
  }
  return brc_guard_succeeded(g->owner, g->fn, g->success, args, nargsf, kwnames, result, token, start);
}

PyObject *brc_guard_succeeded(PyObject *owner, PyObject *fn, brc_guard_success_fn success, PyObject *const *args,
                              size_t nargsf, PyObject *kwnames, PyObject *result, uint64_t token, uint64_t start) {
  int rc = success(owner, token, start);
  if (rc == 0)
    return result;
  PyObject *given =
      rc < 0 ? NULL : brc__guard_ask(owner, fn, brc__guard_str_result, args, nargsf, kwnames, result, token, start);
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

static PyTypeObject brc__guard_type = {
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
    .tp_descr_get = brc_bind_as_method,
    .tp_repr = brc__guard_repr,
    .tp_members = brc__guard_members,
    .tp_getset = brc__guard_getset,
};

int brc_guard_ready(PyObject *reraise) {
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
  return PyType_Ready(&brc__guard_type);
}

PyObject *brc_guard_new(PyObject *fn, PyObject *owner, brc_guard_enter_fn enter,
                        brc_guard_success_fn success) {
  brc_guard_object *g = PyObject_GC_New(brc_guard_object, &brc__guard_type);
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

int brc_guard_callable_kind(PyObject *fn, PyObject *owner) {
  if (PyMethod_Check(fn))
    fn = PyMethod_GET_FUNCTION(fn);
  if (Py_TYPE(fn) == &brc__guard_type)
    return ((brc_guard_object *)fn)->owner == owner ? BRC_CALLABLE_GUARDED : BRC_CALLABLE_SYNC;
  if (PyCFunction_Check(fn))
    return BRC_CALLABLE_SYNC;
  PyObject *guarded_by;
  if (brc_awaiting_is_guard(fn, &guarded_by))
    return guarded_by == owner ? BRC_CALLABLE_GUARDED : BRC_CALLABLE_ASYNC;
  if (!PyFunction_Check(fn))
    return BRC_CALLABLE_UNKNOWN;
  /* A function with attributes may be a wrapper (functools.wraps, a marked
   * coroutine function, one of brace's own async wrappers): Python looks. */
  if (((PyFunctionObject *)fn)->func_dict != NULL && PyDict_GET_SIZE(((PyFunctionObject *)fn)->func_dict) > 0)
    return BRC_CALLABLE_UNKNOWN;
  int flags = ((PyCodeObject *)PyFunction_GET_CODE(fn))->co_flags;
  return flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE) ? BRC_CALLABLE_ASYNC : BRC_CALLABLE_SYNC;
}

PyObject *brc_guard_rejection(PyObject *type, PyObject *args) {
  return ((PyTypeObject *)type)->tp_new((PyTypeObject *)type, args, NULL);
}
