/*
 * capi.h - small CPython helpers shared by the compiled types (guard.c,
 * recovered.c, entries.c): one copy of each, inline. Call with the GIL held.
 */
#ifndef BRACE_CAPI_H
#define BRACE_CAPI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* A vectorcall's arguments as a new tuple and a new dict (for the Python
 * paths, which take them so). Returns 0, or -1 with an exception set and
 * both left NULL. */
static inline int brc_pack_call(PyObject *const *args, size_t nargsf, PyObject *kwnames, PyObject **tuple,
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

/* The exception being raised, taken out of the thread state (a new
 * reference, normalised, its traceback attached; NULL if none), and the
 * reverse (steals the reference). Python 3.12 keeps only the exception
 * object and deprecates PyErr_Fetch / PyErr_Restore; before 3.12 those are
 * the way. */
static inline PyObject *brc_take_error(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback && value)
    PyException_SetTraceback(value, traceback);
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return value;
#endif
}

static inline void brc_restore_error(PyObject *error) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(error);
#else
  if (!error)
    return;
  PyObject *type = (PyObject *)Py_TYPE(error);
  Py_INCREF(type);
  PyErr_Restore(type, error, PyException_GetTraceback(error));
#endif
}

/* tp_descr_get of a wrapper that decorates methods: binds like a function. */
static inline PyObject *brc_bind_as_method(PyObject *self, PyObject *obj, PyObject *type) {
  (void)type;
  if (obj == NULL || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

#endif /* BRACE_CAPI_H */
