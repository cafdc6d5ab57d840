/*
 * entries.c - the compiled entry points (call, with, async with) of the
 * primitives: a method descriptor type, its bound form, and an awaitable
 * already done. The contract is in entries.h.
 */
#include "entries.h"

#include <structmember.h>

#include "scopes.h"

typedef PyObject *(*brc__entry_fn)(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                   Py_ssize_t nargs, PyObject *kwnames);

/* One entry on one type: a method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR,
 * so that `owner.call(f, 1)` calls it with owner as args[0], unbound). */
typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyTypeObject *type;
  PyObject *name;
  const char *doc;
  const char *signature;
  brc__entry_fn fn;
  const brc_entry_hooks_t *hooks;
} brc__entry_object;

/* The entry bound to an owner (what `with` looks up, or `f = owner.call`). */
typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  brc__entry_object *entry;
  PyObject *owner;
} brc__bound_object;

typedef struct {
  PyObject_HEAD
  PyObject *value;
} brc__done_object;

static PyTypeObject brc__entry_type, brc__bound_type, brc__done_type;
static PyObject *brc__bound_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames);
static PyObject *brc__str_call_slow;

/* Free lists: a `with` block binds two entries and an `async with` makes two
 * done awaitables; reusing their memory keeps the allocator out of the block.
 * Neither type is tracked by the garbage collector (each holds one owner or
 * value, and lives for one lookup or one await). The GIL guards the lists. */
#define BRC__FREE_MAX 16
static brc__bound_object *brc__bound_free[BRC__FREE_MAX];
static int brc__bound_free_n;
static brc__done_object *brc__done_free[BRC__FREE_MAX];
static int brc__done_free_n;

/* -- the entries -------------------------------------------------------- */

static int brc__no_arguments(const brc_entry_hooks_t *h, const char *method, Py_ssize_t nargs, PyObject *kwnames,
                             Py_ssize_t expected) {
  if (nargs == expected && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
    return 0;
  PyErr_Format(PyExc_TypeError, "%s.%s() takes %zd positional argument(s)", h->name, method, expected);
  return -1;
}

static PyObject *brc__entry_call(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs < 1) {
    PyErr_Format(PyExc_TypeError, "%s.call() missing its function argument", h->name);
    return NULL;
  }
  PyObject *fn = args[0];
  uint64_t token = 0, start = 0;
  if (brc_guard_callable_kind(fn, owner) != BRC_CALLABLE_SYNC)
    return brc_guard_slow_call(owner, brc__str_call_slow, fn, args + 1, (size_t)(nargs - 1), kwnames);
  int rc = h->enter(owner, &token, &start);
  if (rc < 0)
    return NULL;
  if (rc > 0)
    return brc_guard_slow_call(owner, brc__str_call_slow, fn, args + 1, (size_t)(nargs - 1), kwnames);
  /* args[0] is this call's own: fn may borrow its slot (the offset flag). */
  size_t nargsf = (size_t)(nargs - 1) | PY_VECTORCALL_ARGUMENTS_OFFSET;
  PyObject *result = PyObject_Vectorcall(fn, args + 1, nargsf, kwnames);
  if (!result)
    return brc_guard_failed(owner, fn, args + 1, nargsf, kwnames, token, start);
  if (brc_guard_is_awaitable(result)) { /* its work would run after call() returned, unguarded */
    char entry[64];
    PyOS_snprintf(entry, sizeof entry, "%s.call", h->name);
    PyObject *misuse = h->give_back(owner, token) < 0 ? NULL : h->refuse(result, fn, entry);
    Py_DECREF(result);
    if (misuse) {
      PyErr_SetObject((PyObject *)Py_TYPE(misuse), misuse);
      Py_DECREF(misuse);
    }
    return NULL;
  }
  return brc_guard_succeeded(owner, fn, h->success, args + 1, nargsf, kwnames, result, token, start);
}

/* Admits a block: 0 (admitted; owner's scope open when scoped), 1 (enter() said 1), -1. */
static int brc__admit_block(PyObject *owner, const brc_entry_hooks_t *h) {
  uint64_t token = 0, start = 0;
  int rc = h->enter(owner, &token, &start);
  if (rc != 0 || !h->scoped)
    return rc;
  if (brc_scope_push(owner, token, start) == 0)
    return 0;
  PyObject *type, *value, *traceback; /* the MemoryError wins over a failure to give back */
  PyErr_Fetch(&type, &value, &traceback);
  if (h->give_back(owner, token) < 0)
    PyErr_Clear();
  PyErr_Restore(type, value, traceback);
  return -1;
}

static PyObject *brc__entry_enter(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames) {
  (void)args;
  if (brc__no_arguments(h, "__enter__", nargs, kwnames, 0) < 0)
    return NULL;
  int rc = brc__admit_block(owner, h);
  if (rc < 0)
    return NULL;
  if (rc > 0)
    return h->enter_slow(owner);
  Py_INCREF(owner);
  return owner;
}

/* Closes the block this thread and context opened last: 0, or -1. */
static int brc__close_block(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames, const char *method) {
  uint64_t token = 0, start = 0;
  if (brc__no_arguments(h, method, nargs, kwnames, 3) < 0)
    return -1;
  if (h->scoped && !brc_scope_pop(owner, &token, &start)) {
    PyErr_Format(PyExc_RuntimeError, "%s.%s without its __enter__ in this thread and context", h->name, method);
    return -1;
  }
  PyObject *error = args[1];
  if (error != Py_None)
    return h->exit_failed(owner, error, token, start);
  int rc = h->success(owner, token, start);
  return rc > 0 ? h->exit_result(owner, token, start) : rc;
}

static PyObject *brc__entry_exit(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames) {
  if (brc__close_block(owner, h, args, nargs, kwnames, "__exit__") < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *brc__entry_aenter(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                   Py_ssize_t nargs, PyObject *kwnames) {
  (void)args;
  if (brc__no_arguments(h, "__aenter__", nargs, kwnames, 0) < 0)
    return NULL;
  int rc = brc__admit_block(owner, h);
  if (rc < 0)
    return NULL;
  if (rc > 0)
    return h->enter_slow_async(owner);
  return brc_entry_done(owner);
}

static PyObject *brc__entry_aexit(PyObject *owner, const brc_entry_hooks_t *h, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames) {
  if (brc__close_block(owner, h, args, nargs, kwnames, "__aexit__") < 0)
    return NULL;
  return brc_entry_done(Py_None);
}

/* -- the descriptor ------------------------------------------------------- */

static PyObject *brc__entry_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  brc__entry_object *e = (brc__entry_object *)self;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1 || !PyObject_TypeCheck(args[0], e->type)) {
    PyErr_Format(PyExc_TypeError, "%U() needs a %s as its first argument", e->name, e->type->tp_name);
    return NULL;
  }
  return e->fn(args[0], e->hooks, args + 1, nargs - 1, kwnames);
}

static PyObject *brc__entry_get(PyObject *self, PyObject *owner, PyObject *type) {
  (void)type;
  if (owner == NULL || owner == Py_None) {
    Py_INCREF(self);
    return self;
  }
  brc__bound_object *b;
  if (brc__bound_free_n > 0) {
    b = brc__bound_free[--brc__bound_free_n];
    PyObject_Init((PyObject *)b, &brc__bound_type);
  } else if (!(b = PyObject_New(brc__bound_object, &brc__bound_type))) {
    return NULL;
  }
  b->vectorcall = brc__bound_vectorcall;
  Py_INCREF(self);
  b->entry = (brc__entry_object *)self;
  Py_INCREF(owner);
  b->owner = owner;
  return (PyObject *)b;
}

static PyObject *brc__entry_doc(PyObject *self, void *closure) {
  (void)closure;
  return PyUnicode_FromString(((brc__entry_object *)self)->doc);
}

static PyObject *brc__entry_signature(PyObject *self, void *closure) {
  (void)closure;
  return PyUnicode_FromString(((brc__entry_object *)self)->signature);
}

static PyObject *brc__entry_qualname(PyObject *self, void *closure) {
  (void)closure;
  brc__entry_object *e = (brc__entry_object *)self;
  return PyUnicode_FromFormat("%s.%U", e->type->tp_name, e->name);
}

static PyObject *brc__entry_repr(PyObject *self) {
  brc__entry_object *e = (brc__entry_object *)self;
  return PyUnicode_FromFormat("<compiled method %U of %s objects>", e->name, e->type->tp_name);
}

static PyMemberDef brc__entry_members[] = {
    {"__name__", T_OBJECT, offsetof(brc__entry_object, name), READONLY, NULL},
    {"__objclass__", T_OBJECT, offsetof(brc__entry_object, type), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef brc__entry_getset[] = {
    {"__doc__", brc__entry_doc, NULL, NULL, NULL},
    {"__text_signature__", brc__entry_signature, NULL, NULL, NULL},
    {"__qualname__", brc__entry_qualname, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject brc__entry_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.CompiledMethod",
    .tp_basicsize = sizeof(brc__entry_object),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A compiled method of a brace primitive (an entry point: call, with, async with).",
    .tp_vectorcall_offset = offsetof(brc__entry_object, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = brc__entry_get,
    .tp_repr = brc__entry_repr,
    .tp_members = brc__entry_members,
    .tp_getset = brc__entry_getset,
};

/* -- the bound entry ------------------------------------------------------ */

static PyObject *brc__bound_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  brc__bound_object *b = (brc__bound_object *)self;
  return b->entry->fn(b->owner, b->entry->hooks, args, PyVectorcall_NARGS(nargsf), kwnames);
}

static void brc__bound_dealloc(PyObject *self) {
  brc__bound_object *b = (brc__bound_object *)self;
  Py_DECREF(b->entry);
  Py_DECREF(b->owner);
  if (brc__bound_free_n < BRC__FREE_MAX)
    brc__bound_free[brc__bound_free_n++] = b;
  else
    PyObject_Free(b);
}

static PyObject *brc__bound_repr(PyObject *self) {
  brc__bound_object *b = (brc__bound_object *)self;
  return PyUnicode_FromFormat("<bound compiled method %U of %R>", b->entry->name, b->owner);
}

static PyObject *brc__bound_getattro(PyObject *self, PyObject *name) {
  /* __self__ is the owner; the rest (__name__, __doc__, ...) is the entry's. */
  PyObject *found = PyObject_GenericGetAttr(self, name);
  if (found || !PyErr_ExceptionMatches(PyExc_AttributeError))
    return found;
  PyErr_Clear();
  return PyObject_GetAttr((PyObject *)((brc__bound_object *)self)->entry, name);
}

static PyMemberDef brc__bound_members[] = {
    {"__self__", T_OBJECT, offsetof(brc__bound_object, owner), READONLY, NULL},
    {"__func__", T_OBJECT, offsetof(brc__bound_object, entry), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject brc__bound_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.BoundCompiledMethod",
    .tp_basicsize = sizeof(brc__bound_object),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A compiled method of a brace primitive, bound to it.",
    .tp_vectorcall_offset = offsetof(brc__bound_object, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dealloc = brc__bound_dealloc,
    .tp_repr = brc__bound_repr,
    .tp_getattro = brc__bound_getattro,
    .tp_members = brc__bound_members,
};

/* -- the awaitable already done ----------------------------------------- */

PyObject *brc_entry_done(PyObject *value) {
  brc__done_object *d;
  if (brc__done_free_n > 0) {
    d = brc__done_free[--brc__done_free_n];
    PyObject_Init((PyObject *)d, &brc__done_type);
  } else if (!(d = PyObject_New(brc__done_object, &brc__done_type))) {
    return NULL;
  }
  Py_INCREF(value);
  d->value = value;
  return (PyObject *)d;
}

static void brc__done_dealloc(PyObject *self) {
  brc__done_object *d = (brc__done_object *)self;
  Py_DECREF(d->value);
  if (brc__done_free_n < BRC__FREE_MAX)
    brc__done_free[brc__done_free_n++] = d;
  else
    PyObject_Free(d);
}

static PyObject *brc__done_await(PyObject *self) {
  Py_INCREF(self);
  return self;
}

/* What `await` uses (PyIter_Send): the value, with no StopIteration made. */
static PySendResult brc__done_send(PyObject *self, PyObject *arg, PyObject **result) {
  (void)arg;
  *result = ((brc__done_object *)self)->value;
  Py_INCREF(*result);
  return PYGEN_RETURN;
}

/* The iterator protocol, for code that drives it by hand. */
static PyObject *brc__done_stop(PyObject *self) {
  PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, ((brc__done_object *)self)->value);
  if (stop) {
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
  }
  return NULL;
}

static PyObject *brc__done_send_method(PyObject *self, PyObject *arg) {
  (void)arg;
  return brc__done_stop(self);
}

static PyObject *brc__done_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs < 1 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
    return NULL;
  }
  PyObject *type = args[0], *value = nargs > 1 ? args[1] : Py_None;
  if (PyExceptionInstance_Check(type))
    PyErr_SetObject((PyObject *)Py_TYPE(type), type);
  else if (PyExceptionClass_Check(type))
    PyErr_SetObject(type, value);
  else
    PyErr_SetString(PyExc_TypeError, "throw() needs an exception");
  return NULL;
}

static PyObject *brc__done_close(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  Py_RETURN_NONE;
}

static PyAsyncMethods brc__done_async = {
    .am_await = brc__done_await,
    .am_send = brc__done_send,
};

static PyMethodDef brc__done_methods[] = {
    {"send", brc__done_send_method, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))brc__done_throw, METH_FASTCALL, NULL},
    {"close", brc__done_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject brc__done_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brace._core.Done",
    .tp_basicsize = sizeof(brc__done_object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An awaitable already done: awaiting it returns its value at once.",
    .tp_dealloc = brc__done_dealloc,
    .tp_as_async = &brc__done_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = brc__done_stop,
    .tp_methods = brc__done_methods,
};

/* -- installing ------------------------------------------------------------ */

static int brc__ready(void) {
  if (brc__str_call_slow)
    return 0;
  if (PyType_Ready(&brc__entry_type) < 0 || PyType_Ready(&brc__bound_type) < 0 || PyType_Ready(&brc__done_type) < 0)
    return -1;
  brc__str_call_slow = PyUnicode_InternFromString("_call_slow");
  return brc__str_call_slow ? 0 : -1;
}

static int brc__install(PyTypeObject *type, const brc_entry_hooks_t *hooks, const char *name, brc__entry_fn fn,
                        const char *signature, const char *doc) {
  brc__entry_object *e = PyObject_New(brc__entry_object, &brc__entry_type);
  if (!e)
    return -1;
  e->vectorcall = brc__entry_vectorcall;
  e->type = type;
  e->doc = doc;
  e->signature = signature;
  e->fn = fn;
  e->hooks = hooks;
  e->name = PyUnicode_InternFromString(name);
  int rc = e->name ? PyDict_SetItem(type->tp_dict, e->name, (PyObject *)e) : -1;
  Py_DECREF(e); /* the type's dict keeps it, for the life of the process */
  return rc;
}

int brc_entry_install(PyObject *type_object, const brc_entry_hooks_t *hooks, int which) {
  if (!PyType_Check(type_object)) {
    PyErr_SetString(PyExc_TypeError, "brc_entry_install needs a type");
    return -1;
  }
  PyTypeObject *type = (PyTypeObject *)type_object;
  if (brc__ready() < 0)
    return -1;
  if ((which & BRC_ENTRY_CALL) &&
      brc__install(type, hooks, "call", brc__entry_call, "($self, fn, /, *args, **kwargs)",
                   "Calls fn(*args, **kwargs) under this guard; raises its rejection when the call is not "
                   "admitted (fn is then not called).") < 0)
    return -1;
  if ((which & BRC_ENTRY_WITH) &&
      (brc__install(type, hooks, "__enter__", brc__entry_enter, "($self, /)",
                    "Admits the block, or raises the rejection.") < 0 ||
       brc__install(type, hooks, "__exit__", brc__entry_exit, "($self, exc_type, exc, tb, /)",
                    "Books the block's outcome and gives back what it held.") < 0))
    return -1;
  if ((which & BRC_ENTRY_ASYNC_WITH) &&
      (brc__install(type, hooks, "__aenter__", brc__entry_aenter, "($self, /)",
                    "`async with`: admits the block (awaiting when it waits), or raises the rejection.") < 0 ||
       brc__install(type, hooks, "__aexit__", brc__entry_aexit, "($self, exc_type, exc, tb, /)",
                    "`async with`: books the block's outcome and gives back what it held.") < 0))
    return -1;
  PyType_Modified(type);
  return 0;
}
