/*
 * recovered.c - a function decorated by brace.Recovery: the Recovered type
 * (vectorcall, the first attempt, the first-try record), the replay count
 * and correlation ids. The contract is in recovered.h.
 */
#include "recovered.h"

#include <structmember.h>

#include "capi.h"

#include "brace.h"

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *attempt;
  PyObject *state_owner;
  brc_recovery_state *state;
  PyObject *owner;
  PyObject *operation;
  PyObject *whole;
  PyObject *rest;
  PyObject *dict; /* functools.update_wrapper writes __name__, __wrapped__, ... here */
  PyObject *weakrefs;
} brc_recovered_object;

Py_ssize_t brc__recovery_replays = 0;

static PyObject *brc__correlation_prefix;
static uint64_t brc__correlation_serial;

int brc_correlation_restart(PyObject *prefix) {
  if (!PyUnicode_Check(prefix) || PyUnicode_GET_LENGTH(prefix) != 16 || PyUnicode_KIND(prefix) != PyUnicode_1BYTE_KIND ||
      PyUnicode_MAX_CHAR_VALUE(prefix) > 127) {
    PyErr_SetString(PyExc_ValueError, "prefix must be a str of 16 ASCII characters");
    return -1;
  }
  Py_INCREF(prefix);
  Py_XSETREF(brc__correlation_prefix, prefix);
  brc__correlation_serial = 0;
  return 0;
}

PyObject *brc_correlation_new(void) {
  static const char digits[] = "0123456789abcdef";
  if (!brc__correlation_prefix) {
    PyErr_SetString(PyExc_RuntimeError, "correlation ids used before brc_correlation_restart");
    return NULL;
  }
  PyObject *id = PyUnicode_New(32, 127);
  if (!id)
    return NULL;
  Py_UCS1 *out = PyUnicode_1BYTE_DATA(id);
  memcpy(out, PyUnicode_1BYTE_DATA(brc__correlation_prefix), 16);
  uint64_t serial = brc__correlation_serial++;
  for (int i = 31; i >= 16; i--, serial >>= 4)
    out[i] = (Py_UCS1)digits[serial & 0xF];
  return id;
}

/* Whether result is never a failure to ErrorClassifier's is_failure (which looks
 * for an HTTP response): exactly a builtin without instance attributes. */
static inline int brc__plain_result(PyObject *result) {
  PyTypeObject *kind = Py_TYPE(result);
  return result == Py_None || kind == &PyLong_Type || kind == &PyUnicode_Type || kind == &PyBool_Type ||
         kind == &PyFloat_Type || kind == &PyDict_Type || kind == &PyList_Type || kind == &PyTuple_Type ||
         kind == &PyBytes_Type || kind == &PySet_Type || kind == &PyFrozenSet_Type;
}

static PyObject *brc__recovered_whole(brc_recovered_object *r, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames) {
  PyObject *tuple, *kwargs;
  if (brc_pack_call(args, nargsf, kwnames, &tuple, &kwargs) < 0)
    return NULL;
  PyObject *result = PyObject_CallFunctionObjArgs(r->whole, tuple, kwargs, NULL);
  Py_DECREF(tuple);
  Py_DECREF(kwargs);
  return result;
}

/* rest(args, kwargs, start, returned, outcome); steals `outcome`, which is the
 * exception being raised when it is NULL. */
static PyObject *brc__recovered_rest(brc_recovered_object *r, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames, uint64_t start, PyObject *outcome) {
  PyObject *returned = outcome ? Py_True : Py_False;
  if (!outcome) {
    outcome = brc_take_error();
    if (!outcome)
      return NULL;
  }
  PyObject *tuple, *kwargs, *answer = NULL;
  if (brc_pack_call(args, nargsf, kwnames, &tuple, &kwargs) == 0) {
    PyObject *started = PyLong_FromUnsignedLongLong(start);
    if (started)
      answer = PyObject_CallFunctionObjArgs(r->rest, tuple, kwargs, started, returned, outcome, NULL);
    Py_XDECREF(started);
    Py_DECREF(tuple);
    Py_DECREF(kwargs);
  }
  Py_DECREF(outcome);
  return answer;
}

/* Hands the first-try record to every target; one that raises is reported and
 * the others still get it. Returns 0, or -1 with an exception set (no record). */
static int brc__recovered_tell(brc_recovered_object *r, uint64_t start, uint64_t end, PyObject *correlation_id) {
  PyObject *targets = r->state->targets;
  PyObject *record = PyTuple_New(4);
  if (!record)
    return -1;
  Py_INCREF(r->operation);
  PyTuple_SET_ITEM(record, 0, r->operation);
  PyObject *at = PyLong_FromUnsignedLongLong(start), *duration = PyLong_FromUnsignedLongLong(end - start);
  PyTuple_SET_ITEM(record, 1, at);
  PyTuple_SET_ITEM(record, 2, duration);
  Py_INCREF(correlation_id);
  PyTuple_SET_ITEM(record, 3, correlation_id);
  if (!at || !duration) {
    Py_DECREF(record);
    return -1;
  }
  Py_INCREF(targets); /* a listener added meanwhile replaces the tuple, not its items */
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(targets); i++) {
    PyObject *target = PyTuple_GET_ITEM(targets, i);
    PyObject *done = PyObject_CallOneArg(target, record);
    if (done) {
      Py_DECREF(done);
      continue;
    }
    PyObject *error = brc_take_error();
    PyObject *reported = PyObject_CallFunctionObjArgs(r->state->report, target, r->operation, error, NULL);
    Py_XDECREF(error);
    if (!reported) {
      Py_DECREF(targets);
      Py_DECREF(record);
      return -1;
    }
    Py_DECREF(reported);
  }
  Py_DECREF(targets);
  Py_DECREF(record);
  return 0;
}

/* The first attempt, within the call's correlation id when listened to. */
static PyObject *brc__recovered_first(brc_recovered_object *r, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames, int fast, PyObject *correlation_id) {
  uint64_t start = brc_now_ns();
  PyObject *result = PyObject_Vectorcall(r->attempt, args, nargsf, kwnames);
  if (!result)
    return brc__recovered_rest(r, args, nargsf, kwnames, start, NULL);
  if (!fast || !brc__plain_result(result))
    return brc__recovered_rest(r, args, nargsf, kwnames, start, result);
  r->state->first_tries++;
  if (correlation_id && brc__recovered_tell(r, start, brc_now_ns(), correlation_id) < 0)
    Py_CLEAR(result);
  return result;
}

static PyObject *brc__recovered_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames) {
  brc_recovered_object *r = (brc_recovered_object *)self;
  brc_recovery_state *state = r->state;
  if (state->whole_call_in_python)
    return brc__recovered_whole(r, args, nargsf, kwnames);
  int fast = state->fast && brc__recovery_replays == 0;
  if (PyTuple_GET_SIZE(state->targets) == 0)
    return brc__recovered_first(r, args, nargsf, kwnames, fast, NULL);
  PyObject *correlation_var = state->correlation_var; /* held: a reconfiguration may drop it meanwhile */
  Py_INCREF(correlation_var);
  PyObject *correlation_id = NULL, *token = NULL, *result = NULL;
  if (PyContextVar_Get(correlation_var, NULL, &correlation_id) < 0)
    goto done;
  if (correlation_id == Py_None) {
    Py_DECREF(correlation_id);
    correlation_id = brc_correlation_new();
    if (!correlation_id || !(token = PyContextVar_Set(correlation_var, correlation_id)))
      goto done;
  }
  result = brc__recovered_first(r, args, nargsf, kwnames, fast, correlation_id);
  if (token) {
    PyObject *error = brc_take_error();
    if (PyContextVar_Reset(correlation_var, token) < 0) {
      Py_CLEAR(result);
      Py_XDECREF(error);
    } else {
      brc_restore_error(error);
    }
  }
done:
  Py_XDECREF(token);
  Py_XDECREF(correlation_id);
  Py_DECREF(correlation_var);
  return result;
}

static int brc__recovered_traverse(PyObject *self, visitproc visit, void *arg) {
  brc_recovered_object *r = (brc_recovered_object *)self;
  Py_VISIT(r->attempt);
  Py_VISIT(r->state_owner);
  Py_VISIT(r->owner);
  Py_VISIT(r->operation);
  Py_VISIT(r->whole);
  Py_VISIT(r->rest);
  Py_VISIT(r->dict);
  return 0;
}

static int brc__recovered_clear(PyObject *self) {
  brc_recovered_object *r = (brc_recovered_object *)self;
  Py_CLEAR(r->attempt);
  Py_CLEAR(r->owner);
  Py_CLEAR(r->operation);
  Py_CLEAR(r->whole);
  Py_CLEAR(r->rest);
  Py_CLEAR(r->dict);
  /* state_owner last and only at dealloc: `state` points into it */
  return 0;
}

static void brc__recovered_dealloc(PyObject *self) {
  brc_recovered_object *r = (brc_recovered_object *)self;
  PyObject_GC_UnTrack(self);
  if (r->weakrefs)
    PyObject_ClearWeakRefs(self);
  brc__recovered_clear(self);
  Py_CLEAR(r->state_owner);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *brc__recovered_repr(PyObject *self) {
  return PyUnicode_FromFormat("<brace recovered %R>", ((brc_recovered_object *)self)->attempt);
}

static PyMemberDef brc__recovered_members[] = {
    {"guarded_by", T_OBJECT, offsetof(brc_recovered_object, owner), READONLY, "The Recovery of the calls."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef brc__recovered_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject brc__recovered_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.Recovered",
    .tp_basicsize = sizeof(brc_recovered_object),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A sync function decorated by a brace.Recovery (compiled first attempt).",
    .tp_vectorcall_offset = offsetof(brc_recovered_object, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dictoffset = offsetof(brc_recovered_object, dict),
    .tp_weaklistoffset = offsetof(brc_recovered_object, weakrefs),
    .tp_traverse = brc__recovered_traverse,
    .tp_clear = brc__recovered_clear,
    .tp_dealloc = brc__recovered_dealloc,
    .tp_descr_get = brc_bind_as_method,
    .tp_repr = brc__recovered_repr,
    .tp_members = brc__recovered_members,
    .tp_getset = brc__recovered_getset,
};

int brc_recovered_ready(void) { return PyType_Ready(&brc__recovered_type); }

PyObject *brc_recovered_new(PyObject *attempt, PyObject *state_owner, brc_recovery_state *state, PyObject *owner,
                            PyObject *operation, PyObject *whole, PyObject *rest) {
  brc_recovered_object *r = PyObject_GC_New(brc_recovered_object, &brc__recovered_type);
  if (!r)
    return NULL;
  r->vectorcall = brc__recovered_vectorcall;
  Py_INCREF(attempt);
  r->attempt = attempt;
  Py_INCREF(state_owner);
  r->state_owner = state_owner;
  r->state = state;
  Py_INCREF(owner);
  r->owner = owner;
  Py_INCREF(operation);
  r->operation = operation;
  Py_INCREF(whole);
  r->whole = whole;
  Py_INCREF(rest);
  r->rest = rest;
  r->dict = NULL;
  r->weakrefs = NULL;
  PyObject_GC_Track((PyObject *)r);
  return (PyObject *)r;
}
