/*
 * awaiting.c - the compiled wrapper around a guarded coroutine function: the
 * GuardedCoroutine type (the decorated function) and the GuardedAwait type
 * (what a call returns: a proxy awaiting fn's coroutine). The contract is in
 * awaiting.h.
 */
#include "awaiting.h"

#include "capi.h"

#include <structmember.h>

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *fn;
  PyObject *owner;
  PyObject *dict; /* functools.update_wrapper writes __name__, __wrapped__, ... here */
  PyObject *weakrefs;
  brc_guard_enter_fn enter;
  brc_guard_success_fn success;
} brc_awaiting_guard;

/* A proxy's life: NEW (fn not called yet) -> FIRST (awaiting fn's coroutine,
 * admitted in C) -> DONE, or -> OWNER (awaiting one of the owner's
 * coroutines, whose outcome is the call's) -> DONE. */
enum { BRC__AWAIT_NEW, BRC__AWAIT_FIRST, BRC__AWAIT_OWNER, BRC__AWAIT_DONE };

typedef struct {
  PyObject_VAR_HEAD
  brc_awaiting_guard *guard;
  PyObject *iter;    /* what is awaited now: fn's coroutine, or the owner's */
  PyObject *failure; /* the first attempt's exception, handled while the owner's coroutine runs */
  PyObject *kwnames;
  uint64_t token, start;
  int state;
  int running; /* inside send, throw or close: a nested one is refused, as a coroutine's is */
  PyObject *args[1]; /* the call's arguments, then its keyword values (ob_size of them) */
} brc_awaiting_proxy;

static PyTypeObject brc__awaiting_guard_type, brc__awaiting_proxy_type;
static PyObject *brc__awaiting_str_call, *brc__awaiting_str_failed, *brc__awaiting_str_result,
    *brc__awaiting_str_throw, *brc__awaiting_str_close;

/* ------------------------------------------------------------------ the proxy */

static Py_ssize_t brc__proxy_nargs(brc_awaiting_proxy *p) {
  return Py_SIZE(p) - (p->kwnames ? PyTuple_GET_SIZE(p->kwnames) : 0);
}

/* Drops the call (fn, arguments, what is awaited): the proxy is done. */
static void brc__proxy_finish(brc_awaiting_proxy *p) {
  p->state = BRC__AWAIT_DONE;
  Py_CLEAR(p->iter);
  Py_CLEAR(p->failure);
}

/* The iterator `await awaitable` drives, as the await expression finds it. */
static PyObject *brc__proxy_await_iter(PyObject *awaitable) {
  if (PyCoro_CheckExact(awaitable)) {
    Py_INCREF(awaitable);
    return awaitable;
  }
  unaryfunc am_await = Py_TYPE(awaitable)->tp_as_async ? Py_TYPE(awaitable)->tp_as_async->am_await : NULL;
  if (!am_await)
    return PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                        Py_TYPE(awaitable)->tp_name);
  PyObject *iter = am_await(awaitable);
  if (iter && (!PyIter_Check(iter) || PyCoro_CheckExact(iter))) {
    PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'", Py_TYPE(iter)->tp_name);
    Py_CLEAR(iter);
  }
  return iter;
}

/* owner.<method>(fn, args, kwargs[, outcome, token, start]): the owner's
 * coroutine becomes what the proxy awaits (its iterator), NULL on error. */
static PyObject *brc__proxy_ask(brc_awaiting_proxy *p, PyObject *method, PyObject *outcome) {
  PyObject *tuple, *kwargs, *coroutine = NULL;
  if (brc_pack_call(p->args, (size_t)brc__proxy_nargs(p), p->kwnames, &tuple, &kwargs) < 0)
    return NULL;
  if (!outcome) {
    coroutine = PyObject_CallMethodObjArgs(p->guard->owner, method, p->guard->fn, tuple, kwargs, NULL);
  } else {
    PyObject *t = PyLong_FromUnsignedLongLong(p->token), *s = PyLong_FromUnsignedLongLong(p->start);
    if (t && s)
      coroutine =
          PyObject_CallMethodObjArgs(p->guard->owner, method, p->guard->fn, tuple, kwargs, outcome, t, s, NULL);
    Py_XDECREF(t);
    Py_XDECREF(s);
  }
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  if (!coroutine)
    return NULL;
  PyObject *iter = brc__proxy_await_iter(coroutine);
  Py_DECREF(coroutine);
  return iter;
}

static PySendResult brc__proxy_throw_into(PyObject *iter, PyObject *args, PyObject **result);

/* An exception thrown in that comes out of the owner's coroutine passed
 * through the `except` block handling `failure`: as Python does, it gets
 * `failure` as its __context__ (unless that would make a cycle). */
static void brc__proxy_chain(PyObject *failure) {
  PyObject *error = brc_take_error();
  if (error && error != failure) {
    PyObject *link = failure, *context;
    while ((context = PyException_GetContext(link)) != NULL) {
      Py_DECREF(context); /* only compared: the chain holds it */
      if (context == error) {
        PyException_SetContext(link, NULL);
        break;
      }
      link = context;
    }
    Py_INCREF(failure);
    PyException_SetContext(error, failure);
  }
  brc_restore_error(error);
}

/* One step of the owner's coroutine - a send of `arg`, or a throw of
 * `thrown` (throw's arguments) - with the first attempt's failure (if any)
 * as the exception being handled, as inside an `except` block. */
static PySendResult brc__proxy_step_owner(brc_awaiting_proxy *p, PyObject *arg, PyObject *thrown,
                                          PyObject **result) {
#define BRC__STEP (thrown ? brc__proxy_throw_into(p->iter, thrown, result) : PyIter_Send(p->iter, arg, result))
  if (!p->failure)
    return BRC__STEP;
#if PY_VERSION_HEX >= 0x030B0000
  PyObject *handled = PyErr_GetHandledException();
  PyErr_SetHandledException(p->failure);
  PySendResult status = BRC__STEP;
  PyErr_SetHandledException(handled);
  Py_XDECREF(handled);
#else
  PyObject *type, *value, *traceback;
  PyErr_GetExcInfo(&type, &value, &traceback);
  Py_INCREF(Py_TYPE(p->failure));
  Py_INCREF(p->failure);
  PyErr_SetExcInfo((PyObject *)Py_TYPE(p->failure), p->failure, PyException_GetTraceback(p->failure));
  PySendResult status = BRC__STEP;
  PyErr_SetExcInfo(type, value, traceback);
#endif
#undef BRC__STEP
  if (thrown && status == PYGEN_ERROR)
    brc__proxy_chain(p->failure);
  return status;
}

/* The owner's coroutine takes the call over: its first step. */
static PySendResult brc__proxy_hand_over(brc_awaiting_proxy *p, PyObject *iter, PyObject **result) {
  Py_XSETREF(p->iter, iter);
  if (!iter) {
    brc__proxy_finish(p);
    *result = NULL;
    return PYGEN_ERROR;
  }
  p->state = BRC__AWAIT_OWNER;
  PySendResult status = brc__proxy_step_owner(p, Py_None, NULL, result);
  if (status != PYGEN_NEXT)
    brc__proxy_finish(p);
  return status;
}

/* The first attempt raised (the exception is set): the owner's failure path. */
static PySendResult brc__proxy_failed(brc_awaiting_proxy *p, PyObject **result) {
  PyObject *error = brc_take_error();
  Py_CLEAR(p->iter);
  if (!error) {
    PyErr_SetString(PyExc_SystemError, "brace: an awaited attempt failed with no exception set");
    return brc__proxy_hand_over(p, NULL, result);
  }
  PyObject *iter = brc__proxy_ask(p, brc__awaiting_str_failed, error);
  Py_XSETREF(p->failure, error);
  return brc__proxy_hand_over(p, iter, result);
}

/* The first attempt returned *result: booked in C, or the owner's. */
static PySendResult brc__proxy_returned(brc_awaiting_proxy *p, PyObject **result) {
  int rc = p->guard->success(p->guard->owner, p->token, p->start);
  if (rc == 0) {
    brc__proxy_finish(p);
    return PYGEN_RETURN;
  }
  PyObject *value = *result;
  PyObject *iter = rc < 0 ? NULL : brc__proxy_ask(p, brc__awaiting_str_result, value);
  Py_DECREF(value);
  return brc__proxy_hand_over(p, iter, result);
}

/* The first send: admission, then fn's call. */
static PySendResult brc__proxy_start(brc_awaiting_proxy *p, PyObject **result) {
  brc_awaiting_guard *g = p->guard;
  int rc = g->enter(g->owner, &p->token, &p->start);
  if (rc != 0) {
    if (rc < 0) {
      brc__proxy_finish(p);
      *result = NULL;
      return PYGEN_ERROR;
    }
    return brc__proxy_hand_over(p, brc__proxy_ask(p, brc__awaiting_str_call, NULL), result);
  }
  p->state = BRC__AWAIT_FIRST;
  PyObject *awaitable = PyObject_Vectorcall(g->fn, p->args, (size_t)brc__proxy_nargs(p), p->kwnames);
  if (!awaitable)
    return brc__proxy_failed(p, result);
  p->iter = brc__proxy_await_iter(awaitable);
  Py_DECREF(awaitable);
  if (!p->iter)
    return brc__proxy_failed(p, result);
  return PYGEN_NEXT; /* the caller sends on */
}

static PySendResult brc__proxy_advance(PyObject *self, PyObject *arg, PyObject **result) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  PySendResult status;
  switch (p->state) {
  case BRC__AWAIT_NEW:
    if (arg != Py_None) {
      PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
      *result = NULL;
      return PYGEN_ERROR;
    }
    status = brc__proxy_start(p, result);
    if (p->state != BRC__AWAIT_FIRST)
      return status;
    /* fallthrough: fn's coroutine takes its first step */
  case BRC__AWAIT_FIRST:
    status = PyIter_Send(p->iter, arg, result);
    if (status == PYGEN_NEXT)
      return status;
    return status == PYGEN_RETURN ? brc__proxy_returned(p, result) : brc__proxy_failed(p, result);
  case BRC__AWAIT_OWNER:
    status = brc__proxy_step_owner(p, arg, NULL, result);
    if (status != PYGEN_NEXT)
      brc__proxy_finish(p);
    return status;
  default:
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    *result = NULL;
    return PYGEN_ERROR;
  }
}

/* An am_send outcome as a method's: the value yielded, or StopIteration(value). */
static PyObject *brc__proxy_as_method(PySendResult status, PyObject *result) {
  if (status != PYGEN_RETURN)
    return result;
  PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
  Py_DECREF(result);
  if (stop) {
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
  }
  return NULL;
}

/* Whether the proxy is running already (a ValueError is set); else it is, now. */
static int brc__proxy_busy(brc_awaiting_proxy *p) {
  if (!p->running) {
    p->running = 1;
    return 0;
  }
  PyErr_SetString(PyExc_ValueError, "coroutine already executing");
  return 1;
}

static PySendResult brc__proxy_am_send(PyObject *self, PyObject *arg, PyObject **result) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  if (brc__proxy_busy(p)) {
    *result = NULL;
    return PYGEN_ERROR;
  }
  PySendResult status = brc__proxy_advance(self, arg, result);
  p->running = 0;
  return status;
}

static PyObject *brc__proxy_send(PyObject *self, PyObject *arg) {
  PyObject *result;
  PySendResult status = brc__proxy_am_send(self, arg, &result);
  return brc__proxy_as_method(status, result);
}

static PyObject *brc__proxy_iternext(PyObject *self) {
  return brc__proxy_send(self, Py_None);
}

/* The exception throw(...)'s arguments name, raised (set). */
static void brc__proxy_raise(PyObject *args) {
  PyObject *type = PyTuple_GET_ITEM(args, 0);
  PyObject *value = PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1) : Py_None;
  if (PyExceptionInstance_Check(type))
    PyErr_SetObject((PyObject *)Py_TYPE(type), type);
  else if (PyExceptionClass_Check(type))
    PyErr_SetObject(type, value);
  else
    PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
}

/* iter.throw(*args) (or the exception raised here when iter has no throw):
 * an am_send outcome. */
static PySendResult brc__proxy_throw_into(PyObject *iter, PyObject *args, PyObject **result) {
  PyObject *throw = PyObject_GetAttr(iter, brc__awaiting_str_throw);
  if (!throw) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
      *result = NULL;
      return PYGEN_ERROR;
    }
    PyErr_Clear();
    brc__proxy_raise(args);
    *result = NULL;
    return PYGEN_ERROR;
  }
  *result = PyObject_Call(throw, args, NULL);
  Py_DECREF(throw);
  if (*result)
    return PYGEN_NEXT;
  if (!PyErr_ExceptionMatches(PyExc_StopIteration))
    return PYGEN_ERROR;
  PyObject *error = brc_take_error();
  *result = PyObject_GetAttrString(error, "value");
  Py_DECREF(error);
  return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

static PyObject *brc__proxy_throw_step(brc_awaiting_proxy *p, PyObject *args) {
  if (PyTuple_GET_SIZE(args) < 1 || PyTuple_GET_SIZE(args) > 3)
    return PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", PyTuple_GET_SIZE(args));
  PyObject *result;
  PySendResult status;
  switch (p->state) {
  case BRC__AWAIT_FIRST:
    status = brc__proxy_throw_into(p->iter, args, &result);
    if (status == PYGEN_RETURN)
      status = brc__proxy_returned(p, &result);
    else if (status == PYGEN_ERROR)
      status = brc__proxy_failed(p, &result);
    return brc__proxy_as_method(status, result);
  case BRC__AWAIT_OWNER:
    status = brc__proxy_step_owner(p, NULL, args, &result);
    if (status != PYGEN_NEXT)
      brc__proxy_finish(p);
    return brc__proxy_as_method(status, result);
  default: /* not started (nothing runs) or done: the exception comes straight out */
    brc__proxy_finish(p);
    brc__proxy_raise(args);
    return NULL;
  }
}

static PyObject *brc__proxy_close_step(brc_awaiting_proxy *p) {
  PyObject *result = NULL;
  PySendResult status;
  switch (p->state) {
  case BRC__AWAIT_FIRST: { /* as a coroutine closes: fn's coroutine closed, GeneratorExit at the await */
    PyObject *closed = PyObject_CallMethodNoArgs(p->iter, brc__awaiting_str_close);
    if (closed) {
      Py_DECREF(closed);
      PyErr_SetNone(PyExc_GeneratorExit);
    }
    status = brc__proxy_failed(p, &result);
    break;
  }
  case BRC__AWAIT_OWNER: {
    PyObject *closed = PyObject_CallMethodNoArgs(p->iter, brc__awaiting_str_close);
    brc__proxy_finish(p);
    return closed;
  }
  default:
    brc__proxy_finish(p);
    Py_RETURN_NONE;
  }
  if (status == PYGEN_NEXT) {
    Py_DECREF(result);
    PyObject *closed = PyObject_CallMethodNoArgs(p->iter, brc__awaiting_str_close);
    Py_XDECREF(closed);
    brc__proxy_finish(p);
    PyErr_SetString(PyExc_RuntimeError, "coroutine ignored GeneratorExit");
    return NULL;
  }
  if (status == PYGEN_RETURN) {
    Py_DECREF(result);
    Py_RETURN_NONE;
  }
  if (PyErr_ExceptionMatches(PyExc_GeneratorExit) || PyErr_ExceptionMatches(PyExc_StopIteration)) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  return NULL;
}

static PyObject *brc__proxy_throw(PyObject *self, PyObject *args) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  if (brc__proxy_busy(p))
    return NULL;
  PyObject *result = brc__proxy_throw_step(p, args);
  p->running = 0;
  return result;
}

static PyObject *brc__proxy_close(PyObject *self, PyObject *unused) {
  (void)unused;
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  if (brc__proxy_busy(p))
    return NULL;
  PyObject *result = brc__proxy_close_step(p);
  p->running = 0;
  return result;
}

static PyObject *brc__proxy_await(PyObject *self) {
  Py_INCREF(self);
  return self;
}

/* Like a coroutine: one left suspended is closed when it goes (the owner
 * gets its permit, slot and token back); one never awaited is reported. */
static void brc__proxy_finalize(PyObject *self) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  if (p->state == BRC__AWAIT_DONE)
    return;
  PyObject *error = brc_take_error();
  if (p->state == BRC__AWAIT_NEW) {
    PyObject *name = PyObject_GetAttrString(p->guard->fn, "__qualname__");
    if (!name || PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine '%S' was never awaited", name) < 0)
      PyErr_WriteUnraisable(self);
    Py_XDECREF(name);
    brc__proxy_finish(p);
  } else {
    PyObject *closed = brc__proxy_close(self, NULL);
    if (!closed)
      PyErr_WriteUnraisable(self);
    Py_XDECREF(closed);
  }
  brc_restore_error(error);
}

static int brc__proxy_traverse(PyObject *self, visitproc visit, void *arg) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  Py_VISIT(p->guard);
  Py_VISIT(p->iter);
  Py_VISIT(p->failure);
  for (Py_ssize_t i = 0; i < Py_SIZE(p); i++)
    Py_VISIT(p->args[i]);
  return 0;
}

static int brc__proxy_clear(PyObject *self) {
  brc_awaiting_proxy *p = (brc_awaiting_proxy *)self;
  brc__proxy_finish(p);
  for (Py_ssize_t i = 0; i < Py_SIZE(p); i++)
    Py_CLEAR(p->args[i]);
  Py_CLEAR(p->kwnames);
  Py_CLEAR(p->guard);
  return 0;
}

/* Proxies of calls with few arguments are kept for the next calls (an
 * await is done with its proxy at once): a call then allocates only fn's
 * coroutine. Touched with the GIL held only. */
#define BRC__PROXY_KEPT_SIZES 4
#ifdef Py_GIL_DISABLED /* no GIL to guard the kept ones */
#define BRC__PROXY_KEPT_EACH 0
#else
#define BRC__PROXY_KEPT_EACH 16
#endif
static brc_awaiting_proxy *brc__proxy_kept[BRC__PROXY_KEPT_SIZES][BRC__PROXY_KEPT_EACH + 1];
static int brc__proxy_kept_count[BRC__PROXY_KEPT_SIZES];

static void brc__proxy_dealloc(PyObject *self) {
  /* A finished proxy has nothing to finalize (the common case: skip the call). */
  if (((brc_awaiting_proxy *)self)->state != BRC__AWAIT_DONE && PyObject_CallFinalizerFromDealloc(self) < 0)
    return; /* resurrected */
  PyObject_GC_UnTrack(self);
  brc__proxy_clear(self);
  Py_ssize_t size = Py_SIZE(self);
  /* One the garbage collector finalized stays marked so: it is not kept, or a later
   * call's proxy would never be finalized. */
  if (size < BRC__PROXY_KEPT_SIZES && brc__proxy_kept_count[size] < BRC__PROXY_KEPT_EACH &&
      !PyObject_GC_IsFinalized(self)) {
    brc__proxy_kept[size][brc__proxy_kept_count[size]++] = (brc_awaiting_proxy *)self;
    return;
  }
  Py_TYPE(self)->tp_free(self);
}

/* A proxy for n arguments: a kept one, or a new one (untracked; NULL with an
 * exception set). */
static brc_awaiting_proxy *brc__proxy_new(Py_ssize_t n) {
  if (n < BRC__PROXY_KEPT_SIZES && brc__proxy_kept_count[n] > 0) {
    brc_awaiting_proxy *p = brc__proxy_kept[n][--brc__proxy_kept_count[n]];
    return (brc_awaiting_proxy *)PyObject_InitVar((PyVarObject *)p, &brc__awaiting_proxy_type, n);
  }
  return PyObject_GC_NewVar(brc_awaiting_proxy, &brc__awaiting_proxy_type, n);
}

static PyAsyncMethods brc__proxy_async = {
    .am_await = brc__proxy_await,
    .am_send = brc__proxy_am_send,
};

static PyMethodDef brc__proxy_methods[] = {
    {"send", brc__proxy_send, METH_O, "Sends a value into the awaited coroutine."},
    {"throw", brc__proxy_throw, METH_VARARGS, "Raises an exception in the awaited coroutine."},
    {"close", brc__proxy_close, METH_NOARGS, "Closes the awaited coroutine (its attempt is booked as failed)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject brc__awaiting_proxy_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.GuardedAwait",
    .tp_basicsize = offsetof(brc_awaiting_proxy, args),
    .tp_itemsize = sizeof(PyObject *),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A call of a coroutine function guarded by a brace policy, to await (compiled proxy).",
    .tp_as_async = &brc__proxy_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = brc__proxy_iternext,
    .tp_methods = brc__proxy_methods,
    .tp_traverse = brc__proxy_traverse,
    .tp_clear = brc__proxy_clear,
    .tp_finalize = brc__proxy_finalize,
    .tp_dealloc = brc__proxy_dealloc,
};

/* ------------------------------------------------------------------ the guard */

static PyObject *brc__awaiting_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf) + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  brc_awaiting_proxy *p = brc__proxy_new(n);
  if (!p)
    return NULL;
  Py_INCREF(self);
  p->guard = (brc_awaiting_guard *)self;
  p->iter = NULL;
  p->failure = NULL;
  Py_XINCREF(kwnames);
  p->kwnames = kwnames;
  p->token = p->start = 0;
  p->state = BRC__AWAIT_NEW;
  p->running = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    Py_INCREF(args[i]);
    p->args[i] = args[i];
  }
  PyObject_GC_Track((PyObject *)p);
  return (PyObject *)p;
}

static int brc__awaiting_traverse(PyObject *self, visitproc visit, void *arg) {
  brc_awaiting_guard *g = (brc_awaiting_guard *)self;
  Py_VISIT(g->fn);
  Py_VISIT(g->owner);
  Py_VISIT(g->dict);
  return 0;
}

static int brc__awaiting_clear(PyObject *self) {
  brc_awaiting_guard *g = (brc_awaiting_guard *)self;
  Py_CLEAR(g->fn);
  Py_CLEAR(g->owner);
  Py_CLEAR(g->dict);
  return 0;
}

static void brc__awaiting_dealloc(PyObject *self) {
  brc_awaiting_guard *g = (brc_awaiting_guard *)self;
  PyObject_GC_UnTrack(self);
  if (g->weakrefs)
    PyObject_ClearWeakRefs(self);
  brc__awaiting_clear(self);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *brc__awaiting_repr(PyObject *self) {
  return PyUnicode_FromFormat("<brace guarded coroutine function %R>", ((brc_awaiting_guard *)self)->fn);
}

static PyMemberDef brc__awaiting_members[] = {
    {"guarded_by", T_OBJECT, offsetof(brc_awaiting_guard, owner), READONLY, "The policy object guarding the call."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef brc__awaiting_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject brc__awaiting_guard_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.GuardedCoroutine",
    .tp_basicsize = sizeof(brc_awaiting_guard),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A coroutine function guarded by a brace policy (compiled wrapper).",
    .tp_vectorcall_offset = offsetof(brc_awaiting_guard, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dictoffset = offsetof(brc_awaiting_guard, dict),
    .tp_weaklistoffset = offsetof(brc_awaiting_guard, weakrefs),
    .tp_traverse = brc__awaiting_traverse,
    .tp_clear = brc__awaiting_clear,
    .tp_dealloc = brc__awaiting_dealloc,
    .tp_descr_get = brc_bind_as_method,
    .tp_repr = brc__awaiting_repr,
    .tp_members = brc__awaiting_members,
    .tp_getset = brc__awaiting_getset,
};

int brc_awaiting_ready(void) {
  if (!brc__awaiting_str_call) {
    brc__awaiting_str_call = PyUnicode_InternFromString("_guard_call_async");
    brc__awaiting_str_failed = PyUnicode_InternFromString("_guard_failed_async");
    brc__awaiting_str_result = PyUnicode_InternFromString("_guard_result_async");
    brc__awaiting_str_throw = PyUnicode_InternFromString("throw");
    brc__awaiting_str_close = PyUnicode_InternFromString("close");
    if (!brc__awaiting_str_call || !brc__awaiting_str_failed || !brc__awaiting_str_result ||
        !brc__awaiting_str_throw || !brc__awaiting_str_close)
      return -1;
  }
  if (PyType_Ready(&brc__awaiting_proxy_type) < 0)
    return -1;
  return PyType_Ready(&brc__awaiting_guard_type);
}

PyObject *brc_awaiting_new(PyObject *fn, PyObject *owner, brc_guard_enter_fn enter, brc_guard_success_fn success) {
  brc_awaiting_guard *g = PyObject_GC_New(brc_awaiting_guard, &brc__awaiting_guard_type);
  if (!g)
    return NULL;
  g->vectorcall = brc__awaiting_vectorcall;
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

int brc_awaiting_is_guard(PyObject *fn, PyObject **owner) {
  if (Py_TYPE(fn) != &brc__awaiting_guard_type)
    return 0;
  *owner = ((brc_awaiting_guard *)fn)->owner;
  return 1;
}
