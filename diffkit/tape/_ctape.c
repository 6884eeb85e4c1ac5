/* The reverse sweep's loop in C: the same steps as the Python loop in diffkit/tape/core.py (Tape.backward),
 * which stays the reference and the fallback where this module is not built.
 *
 * Why C: the rules are Python functions over numpy arrays, but the loop around them (reading a node's links,
 * fitting a contribution's shape, deciding whether an accumulator may be added into in place) cost ~0.9 us of
 * bytecode per node, as much as the rules' own numpy work on small arrays.  Here it is a few tens of ns.
 *
 * Nothing numpy-specific is compiled in: the ndarray type, the float64 dtype and the float64 scalar type are
 * handed over once by configure(), and arrays are inspected through their Python attributes (.dtype, .base),
 * so the module builds with Python's headers alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *ndarray_type, *f64_dtype, *f64_scalar_type;  /* set by configure() */
static PyObject *shapes_kept, *keep_shape;  /* plans' shared shape tuples: the dict, and the function adding one */
static PyObject *str_shape, *str_dtype, *str_base, *str_fast, *str_nodes, *empty_tuple;

/* A float64 numpy array (exactly the ndarray type, as `type(a) is np.ndarray and a.dtype == float64`).  The
 * dtype is compared by identity: numpy's native float64 dtype is one object, and any other (byte-swapped,
 * with metadata) only makes the sweep add out of place, which is always correct. */
static int is_f64_array(PyObject *a) {
    if ((PyObject *)Py_TYPE(a) != ndarray_type) return 0;
    PyObject *dtype = PyObject_GetAttr(a, str_dtype);
    if (dtype == NULL) { PyErr_Clear(); return 0; }
    int result = dtype == f64_dtype;
    Py_DECREF(dtype);
    return result;
}

static int owns_its_data(PyObject *a) {  /* a.base is None: not a view of another array */
    PyObject *base = PyObject_GetAttr(a, str_base);
    if (base == NULL) { PyErr_Clear(); return 0; }
    int result = base == Py_None;
    Py_DECREF(base);
    return result;
}

static int is_number(PyObject *c) {  /* what a float64 buffer takes in place: float, int, numpy float64 */
    return PyFloat_CheckExact(c) || PyLong_CheckExact(c) || (PyObject *)Py_TYPE(c) == f64_scalar_type;
}

/* Whether unwritten (a dict: a view's parent -> runs of its buffer no block wrote yet) has p: 1, 0, -1 error. */
static int in_unwritten(PyObject *unwritten, Py_ssize_t p) {
    if (PyDict_GET_SIZE(unwritten) == 0) return 0;
    PyObject *key = PyLong_FromSsize_t(p);
    if (key == NULL) return -1;
    int present = PyDict_Contains(unwritten, key);
    Py_DECREF(key);
    return present;
}

/* unwritten[p] exists: zero those runs through fill(grads, unwritten, p) (plans.fill_unwritten). */
static int fill_if_unwritten(PyObject *fill, PyObject *grads, PyObject *unwritten, Py_ssize_t p) {
    int present = in_unwritten(unwritten, p);
    if (present <= 0) return present;
    PyObject *key = PyLong_FromSsize_t(p);
    if (key == NULL) return -1;
    PyObject *done = PyObject_CallFunctionObjArgs(fill, grads, unwritten, key, NULL);
    Py_DECREF(key);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 1;
}

/* Add contribution c (a new reference, consumed) into grads[p], as core.py's loop does. */
static int accumulate(PyObject *grads, PyObject *owned, PyObject *unwritten, PyObject *fill, Py_ssize_t p,
                      PyObject *c) {
    PyObject *acc = PyList_GET_ITEM(grads, p);
    if (acc == Py_None) {  /* most inputs get one contribution */
        PyList_SET_ITEM(grads, p, c);
        Py_DECREF(acc);
        return 0;
    }
    if (fill_if_unwritten(fill, grads, unwritten, p) < 0) { Py_DECREF(c); return -1; }
    acc = PyList_GET_ITEM(grads, p);
    int own = PyList_GET_ITEM(owned, p) == Py_True;
    if (!own && is_f64_array(acc) && owns_its_data(acc)) {
        own = Py_REFCNT(acc) == 1;  /* held by grads[p] alone: ours to add into */
        if (own) { Py_INCREF(Py_True); PyList_SetItem(owned, p, Py_True); }
    }
    if (own && (is_f64_array(c) || is_number(c))) {
        PyObject *sum = PyNumber_InPlaceAdd(acc, c);
        Py_DECREF(c);
        if (sum == NULL) return -1;
        if (sum != acc) { PyList_SetItem(grads, p, sum); } else { Py_DECREF(sum); }
        return 0;
    }
    /* an array the rule has just made, held only here: it becomes the accumulator, no new array */
    if (Py_REFCNT(c) == 1 && is_f64_array(c) && owns_its_data(c) && is_f64_array(acc)) {
        PyObject *sum = PyNumber_InPlaceAdd(c, acc);
        if (sum == NULL) { Py_DECREF(c); return -1; }
        Py_DECREF(c);
        PyList_SetItem(grads, p, sum);
        Py_INCREF(Py_True);
        PyList_SetItem(owned, p, Py_True);
        return 0;
    }
    PyObject *sum = PyNumber_Add(acc, c);
    Py_DECREF(c);
    if (sum == NULL) return -1;
    PyObject *flag = is_f64_array(sum) ? Py_True : Py_False;
    PyList_SetItem(grads, p, sum);
    Py_INCREF(flag);
    PyList_SetItem(owned, p, flag);
    return 0;
}

/* Whether a primitive's nodes take another path: 1 a view's scatter, 2 a joint rule, 0 neither: special(prim),
 * asked once per primitive and kept in a table keyed by the object's address (a Primitive hashes in Python). */
#define KINDS 1024
static PyObject *kind_keys[KINDS];
static char kind_values[KINDS];

static int special_kind(PyObject *special, PyObject *prim) {
    size_t slot = ((size_t)prim >> 4) & (KINDS - 1);
    for (int probe = 0; probe < 16; probe++, slot = (slot + 1) & (KINDS - 1)) {
        if (kind_keys[slot] == prim) return kind_values[slot];
        if (kind_keys[slot] == NULL) break;
    }
    PyObject *flag = PyObject_CallOneArg(special, prim);
    if (flag == NULL) return -1;
    long value = PyLong_AsLong(flag);
    Py_DECREF(flag);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (value < 0 || value > 2) { PyErr_SetString(PyExc_ValueError, "special(prim) must be 0, 1 or 2"); return -1; }
    if (kind_keys[slot] == NULL) {  /* (a full neighbourhood: asked each time, still right) */
        kind_keys[slot] = Py_NewRef(prim);  /* kept alive: a freed address could be reused by another object */
        kind_values[slot] = (char)value;
    }
    return value;
}

/* Call rule(g, *args). */
static PyObject *call_rule(PyObject *rule, PyObject *g, PyObject *args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *stack[9];
    if (n > 8) {
        PyObject *full = PyTuple_New(n + 1);
        if (full == NULL) return NULL;
        Py_INCREF(g);
        PyTuple_SET_ITEM(full, 0, g);
        for (Py_ssize_t j = 0; j < n; j++) {
            PyObject *item = PyTuple_GET_ITEM(args, j);
            Py_INCREF(item);
            PyTuple_SET_ITEM(full, j + 1, item);
        }
        PyObject *result = PyObject_Call(rule, full, NULL);
        Py_DECREF(full);
        return result;
    }
    stack[0] = g;
    for (Py_ssize_t j = 0; j < n; j++) stack[j + 1] = PyTuple_GET_ITEM(args, j);
    return PyObject_Vectorcall(rule, stack, n + 1, NULL);
}

/* Replace list[i] by None, keeping what was there alive for the caller (a new reference). */
static PyObject *take(PyObject *list, Py_ssize_t i) {
    PyObject *item = PyList_GET_ITEM(list, i);
    Py_INCREF(Py_None);
    PyList_SET_ITEM(list, i, Py_None);
    return item;
}

/* The commonest view: x[a:b] (maybe reshaped) of a gradient buffer that is ours, with no unwritten runs, and g
 * a numpy array: view = grads[p][index]; view += g reshaped to the view's shape (plans.scatter's last case).
 * 1: done; 0: not that case (plans.scatter does it); -1: an error. */
static PyObject *str_reshape;

static int add_into_owned_part(PyObject *node, PyObject *g, PyObject *grads, PyObject *owned, PyObject *unwritten,
                               Py_ssize_t size) {
    PyObject *index = PyTuple_GET_ITEM(node, 2), *view_shape = PyTuple_GET_ITEM(node, 3);
    Py_ssize_t p = PyLong_AsSsize_t(PyTuple_GET_ITEM(node, 1));
    if (p == -1 && PyErr_Occurred()) return -1;
    if (p < 0 || p >= size || !PySlice_Check(index) || (PyObject *)Py_TYPE(g) != ndarray_type ||
            PyList_GET_ITEM(owned, p) != Py_True)
        return 0;
    int present = in_unwritten(unwritten, p);
    if (present) return present < 0 ? -1 : 0;
    PyObject *c = view_shape == Py_None ? Py_NewRef(g) : PyObject_CallMethodOneArg(g, str_reshape, view_shape);
    if (c == NULL) return -1;
    if ((PyObject *)Py_TYPE(c) != ndarray_type) { Py_DECREF(c); return 0; }
    PyObject *view = PyObject_GetItem(PyList_GET_ITEM(grads, p), index);
    if (view == NULL) { Py_DECREF(c); return -1; }
    PyObject *sum = PyNumber_InPlaceAdd(view, c);
    Py_DECREF(c);
    Py_DECREF(view);
    if (sum == NULL) return -1;
    Py_DECREF(sum);
    return 1;
}

static PyObject *sweep(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "sweep(nodes, grads, owned, unwritten, start, retain, special, "
                                         "on_special, fit, fill) takes 10 arguments");
        return NULL;
    }
    PyObject *nodes = args[0], *grads = args[1], *owned = args[2], *unwritten = args[3];
    PyObject *special = args[6], *on_special = args[7], *fit = args[8], *fill = args[9];
    if (!PyList_CheckExact(nodes) || !PyList_CheckExact(grads) || !PyList_CheckExact(owned) ||
            !PyDict_CheckExact(unwritten)) {
        PyErr_SetString(PyExc_TypeError, "sweep: nodes, grads and owned must be lists, unwritten a dict");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[4]);
    int retain = PyObject_IsTrue(args[5]);
    if ((start == -1 && PyErr_Occurred()) || retain < 0) return NULL;
    Py_ssize_t size = PyList_GET_SIZE(nodes);
    if (start >= size || PyList_GET_SIZE(grads) != size || PyList_GET_SIZE(owned) != size) {
        PyErr_SetString(PyExc_ValueError, "sweep: start, nodes, grads and owned disagree in length");
        return NULL;
    }
    for (Py_ssize_t i = start; i >= 0; i--) {
        if (PyList_GET_ITEM(grads, i) == Py_None || PyList_GET_ITEM(nodes, i) == Py_None) continue;
        PyObject *node = retain ? Py_NewRef(PyList_GET_ITEM(nodes, i)) : take(nodes, i);
        if (fill_if_unwritten(fill, grads, unwritten, i) < 0) { Py_DECREF(node); return NULL; }
        PyObject *g = take(grads, i);
        if (!PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) < 1) {
            PyErr_Format(PyExc_TypeError, "sweep: node %zd is not a tape node", i);
            goto fail;
        }
        int is_special = special_kind(special, PyTuple_GET_ITEM(node, 0));
        if (is_special < 0) goto fail;
        if (is_special == 1 && PyTuple_GET_SIZE(node) == 5) {  /* a view x[index]: add g into that part of x's */
            int added = add_into_owned_part(node, g, grads, owned, unwritten, size);
            if (added < 0) goto fail;
            if (added) { Py_DECREF(g); Py_DECREF(node); continue; }
        }
        if (is_special) {  /* a view's scatter (done there: None) or a joint rule (its links come back) */
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL) goto fail;
            PyObject *links = PyObject_CallFunctionObjArgs(on_special, index, node, g, NULL);
            Py_DECREF(index);
            if (links == NULL) goto fail;
            Py_DECREF(node);
            node = links;
            if (node == Py_None || !PyTuple_CheckExact(node)) { Py_DECREF(g); Py_DECREF(node); continue; }
        }
        Py_ssize_t n = PyTuple_GET_SIZE(node);
        for (Py_ssize_t k = 1; k + 3 < n; k += 4) {
            Py_ssize_t p = PyLong_AsSsize_t(PyTuple_GET_ITEM(node, k));
            PyObject *rule_args = PyTuple_GET_ITEM(node, k + 2), *shape = PyTuple_GET_ITEM(node, k + 3);
            if ((p == -1 && PyErr_Occurred()) || p < 0 || p >= size || !PyTuple_CheckExact(rule_args)) {
                if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "sweep: node %zd has a bad link", i);
                goto fail;
            }
            PyObject *c = call_rule(PyTuple_GET_ITEM(node, k + 1), g, rule_args);
            if (c == NULL) goto fail;
            if (c == Py_None) { Py_DECREF(c); continue; }
            if (shape != Py_None) {  /* (None: the output's shape, which a contribution made from g has) */
                PyObject *c_shape = PyObject_GetAttr(c, str_shape);
                if (c_shape == NULL) { PyErr_Clear(); c_shape = Py_NewRef(empty_tuple); }
                int same = PyObject_RichCompareBool(c_shape, shape, Py_EQ);
                Py_DECREF(c_shape);
                if (same < 0) { Py_DECREF(c); goto fail; }
                if (!same) {
                    PyObject *fitted = PyObject_CallFunctionObjArgs(fit, c, shape, NULL);
                    Py_DECREF(c);
                    if (fitted == NULL) goto fail;
                    c = fitted;
                }
            }
            if (accumulate(grads, owned, unwritten, fill, p, c) < 0) goto fail;
        }
        Py_DECREF(g);
        Py_DECREF(node);
        continue;
    fail:
        Py_DECREF(g);
        Py_DECREF(node);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------------------------
 * Tape arrays' fields, and the one-call recorder of a primitive (what plans.fast_recorder generates in Python).
 */

typedef struct {
    PyObject_HEAD
    PyObject *value, *tape, *index;
} TArrayFields;

static PyObject *fields_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *value, *tape, *index;
    static char *names[] = {"value", "tape", "index", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO", names, &value, &tape, &index)) return NULL;
    TArrayFields *self = (TArrayFields *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->value = Py_NewRef(value);
    self->tape = Py_NewRef(tape);
    self->index = Py_NewRef(index);
    return (PyObject *)self;
}

static int fields_traverse(TArrayFields *self, visitproc visit, void *arg) {
    Py_VISIT(self->value);
    Py_VISIT(self->tape);
    Py_VISIT(self->index);
    Py_VISIT(Py_TYPE(self));  /* (a heap subclass's instances keep their type alive) */
    return 0;
}

static int fields_clear(TArrayFields *self) {
    Py_CLEAR(self->value);
    Py_CLEAR(self->tape);
    Py_CLEAR(self->index);
    return 0;
}

static void fields_dealloc(TArrayFields *self) {
    PyObject_GC_UnTrack(self);
    fields_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef fields_members[] = {
    {"value", T_OBJECT_EX, offsetof(TArrayFields, value), 0, "the array's value (of the tape's value namespace)"},
    {"tape", T_OBJECT_EX, offsetof(TArrayFields, tape), 0, "the tape it is recorded on"},
    {"index", T_OBJECT_EX, offsetof(TArrayFields, index), 0, "its node on that tape"},
    {NULL},
};

/* The operators, as the Python reference (array.py's Operators) has them: x + y is x.tape.ns.add(x, y), the tape
 * taken from the left operand where it is a tape array, else from the right; x[i] is x.tape.ns.index_op(x,
 * index=i).  In C they skip a Python frame per operator (~0.2 us, a fifth of recording a small op). */
static PyTypeObject FieldsType;
static PyObject *str_ns, *str_add, *str_subtract, *str_multiply, *str_divide, *str_matmul, *str_negative,
    *str_index_op, *kw_index;

static PyObject *on_tape(PyObject *self, PyObject *op, PyObject *a, PyObject *b, PyObject *kwnames) {
    PyObject *ns = PyObject_GetAttr(((TArrayFields *)self)->tape, str_ns);
    if (ns == NULL) return NULL;
    PyObject *args[3] = {ns, a, b};
    PyObject *out = PyObject_VectorcallMethod(op, args, b == NULL ? 2 : kwnames == NULL ? 3 : 2, kwnames);
    Py_DECREF(ns);
    return out;
}

#define BINARY(fn, name) \
    static PyObject *fn(PyObject *a, PyObject *b) { \
        return on_tape(PyObject_TypeCheck(a, &FieldsType) ? a : b, name, a, b, NULL); \
    }
BINARY(fields_add, str_add)
BINARY(fields_subtract, str_subtract)
BINARY(fields_multiply, str_multiply)
BINARY(fields_divide, str_divide)
BINARY(fields_matmul, str_matmul)

static PyObject *fields_negative(PyObject *x) { return on_tape(x, str_negative, x, NULL, NULL); }
static PyObject *fields_getitem(PyObject *x, PyObject *index) { return on_tape(x, str_index_op, x, index, kw_index); }

static PyNumberMethods fields_number = {
    .nb_add = fields_add,
    .nb_subtract = fields_subtract,
    .nb_multiply = fields_multiply,
    .nb_true_divide = fields_divide,
    .nb_matrix_multiply = fields_matmul,
    .nb_negative = fields_negative,
};

static PyMappingMethods fields_mapping = {.mp_subscript = fields_getitem};

static PyTypeObject FieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "diffkit.tape._ctape.TArrayFields",
    .tp_as_number = &fields_number,
    .tp_as_mapping = &fields_mapping,
    .tp_doc = "A tape array's three fields (value, tape, index), as a C struct the recorder fills directly.",
    .tp_basicsize = sizeof(TArrayFields),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = fields_new,
    .tp_traverse = (traverseproc)fields_traverse,
    .tp_clear = (inquiry)fields_clear,
    .tp_dealloc = (destructor)fields_dealloc,
    .tp_members = fields_members,
};

/* Append node (consumed) to tape.nodes; return a new tape array of `type` for it, holding value. */
static PyObject *append_node(PyTypeObject *type, PyObject *tape, PyObject *node, PyObject *value) {
    PyObject *nodes = PyObject_GetAttr(tape, str_nodes);
    if (nodes == NULL) { Py_DECREF(node); return NULL; }
    int failed = !PyList_CheckExact(nodes) || PyList_Append(nodes, node) < 0;
    Py_DECREF(node);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "tape.nodes must be a list");
        Py_DECREF(nodes);
        return NULL;
    }
    PyObject *index = PyLong_FromSsize_t(PyList_GET_SIZE(nodes) - 1);
    Py_DECREF(nodes);
    if (index == NULL) return NULL;
    TArrayFields *made = (TArrayFields *)type->tp_alloc(type, 0);
    if (made == NULL) { Py_DECREF(index); return NULL; }
    made->value = Py_NewRef(value);
    made->tape = Py_NewRef(tape);
    made->index = index;
    return (PyObject *)made;
}

/* What a rule argument reads (plans.reads): input k's value, input k's (shared) shape, the output, the value
 * namespace, the residual, or a parameter (the call's keyword, else the primitive's default). */
enum { READ_INPUT, READ_SHAPE, READ_ANS, READ_XP, READ_RES, READ_PARAM };
#define MAX_INPUTS 2
#define MAX_READS 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *prim, *impl, *fallback, *tarray, *tracers, *xp;
    int residual, n_inputs;
    PyObject *same;  /* multiply's: the recorder of square, which records x * x (one contribution 2 g x) */
    PyObject *param_names;  /* the params' names, in order, where they may come by position (xp.sum(x, 1)) */
    PyObject *rule[MAX_INPUTS];
    int n_reads[MAX_INPUTS], read_kind[MAX_INPUTS][MAX_READS], read_input[MAX_INPUTS][MAX_READS];
    PyObject *read_name[MAX_INPUTS][MAX_READS], *read_default[MAX_INPUTS][MAX_READS];
} Recorder;


static PyObject *get_shape(PyObject *v) {  /* getattr(v, 'shape', ()) */
    PyObject *shape = PyObject_GetAttr(v, str_shape);
    if (shape == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
        shape = Py_NewRef(empty_tuple);
    }
    return shape;
}

static PyObject *shared(PyObject *shape) {  /* SHAPES.get(s) or SHAPE(s): the one tuple nodes share, a new reference */
    PyObject *kept = PyDict_GetItemWithError(shapes_kept, shape);
    if (kept != NULL) return Py_NewRef(kept);
    if (PyErr_Occurred()) return NULL;
    return PyObject_CallOneArg(keep_shape, shape);
}

static PyObject *call_fallback(Recorder *r, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    Py_ssize_t nk = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *stack[1 + MAX_INPUTS + 16];
    if (n + nk > MAX_INPUTS + 16) {
        PyErr_SetString(PyExc_TypeError, "too many arguments for a primitive");
        return NULL;
    }
    stack[0] = r->prim;
    for (Py_ssize_t j = 0; j < n + nk; j++) stack[j + 1] = args[j];
    return PyObject_Vectorcall(r->fallback, stack, n + 1, kwnames);
}

static PyObject *param_value(Recorder *r, int k, int j, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    PyObject *name = r->read_name[k][j];
    if (kwnames != NULL) {
        for (Py_ssize_t q = 0; q < PyTuple_GET_SIZE(kwnames); q++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, q);
            if (key == name) return Py_NewRef(args[n + q]);
            int same = PyUnicode_Compare(key, name) == 0;
            if (same) return Py_NewRef(args[n + q]);
        }
    }
    return Py_NewRef(r->read_default[k][j]);
}

static PyObject *record(Recorder *r, PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* Params given by position, as numpy allows (xp.sum(x, 1, True)), passed on by name, a keyword winning over
 * the same param by position: backends._positional_params, which the namespace then need not put in front. */
static PyObject *record_positional_params(Recorder *r, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    Py_ssize_t n_in = r->n_inputs, extra = n - n_in, nk = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t n_params = PyTuple_GET_SIZE(r->param_names);
    if (extra > n_params) {
        PyObject *sep = PyUnicode_FromString(", ");
        PyObject *names = sep == NULL ? NULL : PyUnicode_Join(sep, r->param_names);
        if (names != NULL)
            PyErr_Format(PyExc_TypeError, "%R takes %d array(s) and the params %U; got %zd positional arguments",
                         (PyObject *)r, r->n_inputs, names, n);
        Py_XDECREF(sep);
        Py_XDECREF(names);
        return NULL;
    }
    PyObject *stack[MAX_INPUTS + 32];
    if (n_in + extra + nk > MAX_INPUTS + 32) return call_fallback(r, args, n, kwnames);
    int by_keyword[32] = {0};
    Py_ssize_t kept = 0;
    for (Py_ssize_t q = 0; q < extra; q++) {
        int dup = kwnames == NULL ? 0 : PySequence_Contains(kwnames, PyTuple_GET_ITEM(r->param_names, q));
        if (dup < 0) return NULL;
        by_keyword[q] = dup;
        kept += !dup;
    }
    PyObject *names = PyTuple_New(kept + nk);
    if (names == NULL) return NULL;
    for (Py_ssize_t j = 0; j < n_in; j++) stack[j] = args[j];
    Py_ssize_t m = 0;
    for (Py_ssize_t q = 0; q < extra; q++) {
        if (by_keyword[q]) continue;
        stack[n_in + m] = args[n_in + q];
        PyTuple_SET_ITEM(names, m++, Py_NewRef(PyTuple_GET_ITEM(r->param_names, q)));
    }
    for (Py_ssize_t q = 0; q < nk; q++) {
        stack[n_in + m] = args[n + q];
        PyTuple_SET_ITEM(names, m++, Py_NewRef(PyTuple_GET_ITEM(kwnames, q)));
    }
    PyObject *out = record(r, stack, (size_t)n_in, names);
    Py_DECREF(names);
    return out;
}

static PyObject *record(Recorder *r, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    PyObject *tape = NULL, *values[MAX_INPUTS] = {NULL, NULL}, *parents[MAX_INPUTS] = {NULL, NULL};
    PyTypeObject *tarray = (PyTypeObject *)r->tarray;
    int mask = 0;
    if (n > r->n_inputs && r->param_names != NULL) return record_positional_params(r, args, n, kwnames);
    if (n != r->n_inputs) {  /* as the generated recorder's signature says (apply would take more inputs) */
        PyObject *name = PyObject_GetAttrString(r->prim, "name");
        if (name == NULL) return NULL;
        PyErr_Format(PyExc_TypeError, "%U() takes %d positional argument%s but %zd were given", name, r->n_inputs,
                     r->n_inputs == 1 ? "" : "s", n);
        Py_DECREF(name);
        return NULL;
    }
    if (n == 1) {
        if (Py_TYPE(args[0]) == tarray) {
            TArrayFields *a = (TArrayFields *)args[0];
            tape = a->tape, values[0] = a->value, parents[0] = a->index, mask = 1;
        }
    } else {
        PyObject *a = args[0], *b = args[1];
        int ta = Py_TYPE(a) == tarray, tb = Py_TYPE(b) == tarray;
        if (ta) {
            TArrayFields *x = (TArrayFields *)a;
            if (tb) {
                TArrayFields *y = (TArrayFields *)b;
                if (a == b && r->same != NULL && kwnames == NULL) return PyObject_Vectorcall(r->same, args, 1, kwnames);
                if (y->tape == x->tape) {
                    tape = x->tape, mask = 3;
                    values[0] = x->value, values[1] = y->value, parents[0] = x->index, parents[1] = y->index;
                }
            } else {
                int traced = PyDict_Contains(r->tracers, (PyObject *)Py_TYPE(b));
                if (traced < 0) return NULL;
                if (!traced) tape = x->tape, mask = 1, values[0] = x->value, values[1] = b, parents[0] = x->index;
            }
        } else if (tb) {
            int traced = PyDict_Contains(r->tracers, (PyObject *)Py_TYPE(a));
            if (traced < 0) return NULL;
            TArrayFields *y = (TArrayFields *)b;
            if (!traced) tape = y->tape, mask = 2, values[0] = a, values[1] = y->value, parents[1] = y->index;
        }
    }
    if (tape == NULL) return call_fallback(r, args, n, kwnames);
    PyObject *fast = PyObject_GetAttr(tape, str_fast);
    if (fast == NULL) return NULL;
    int is_fast = fast == Py_True;
    Py_DECREF(fast);
    if (!is_fast) return call_fallback(r, args, n, kwnames);

    /* the forward: impl(*values, **params) */
    PyObject *stack[MAX_INPUTS + 16];
    Py_ssize_t nk = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (n + nk > MAX_INPUTS + 16) return call_fallback(r, args, n, kwnames);
    for (Py_ssize_t j = 0; j < n; j++) stack[j] = values[j];
    for (Py_ssize_t j = 0; j < nk; j++) stack[n + j] = args[n + j];
    PyObject *out = PyObject_Vectorcall(r->impl, stack, n, kwnames);
    if (out == NULL) {  /* the Python path runs it again and names the op and the shapes in its error */
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_IndexError)) {
            PyErr_Clear();
            return call_fallback(r, args, n, kwnames);
        }
        return NULL;
    }
    PyObject *ans = out, *res = Py_None;
    if (r->residual) {
        if (!PyTuple_CheckExact(out) || PyTuple_GET_SIZE(out) != 2) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "a residual primitive's forward must return (ans, res)");
            return NULL;
        }
        ans = PyTuple_GET_ITEM(out, 0), res = PyTuple_GET_ITEM(out, 1);
    }
    PyObject *shapes[MAX_INPUTS] = {NULL, NULL}, *ans_shape = NULL, *node = NULL, *result = NULL;
    int links = 0;
    for (int k = 0; k < n; k++) links += (mask >> k & 1) && r->rule[k] != NULL;
    node = PyTuple_New(1 + 4 * links);
    if (node == NULL) goto done;
    PyTuple_SET_ITEM(node, 0, Py_NewRef(r->prim));
    int slot = 1;
    for (int k = 0; k < n; k++) {
        if (!(mask >> k & 1) || r->rule[k] == NULL) continue;
        PyObject *rule_args = PyTuple_New(r->n_reads[k]);
        if (rule_args == NULL) goto done;
        PyTuple_SET_ITEM(node, slot, Py_NewRef(parents[k]));
        PyTuple_SET_ITEM(node, slot + 1, Py_NewRef(r->rule[k]));
        PyTuple_SET_ITEM(node, slot + 2, rule_args);
        PyTuple_SET_ITEM(node, slot + 3, Py_NewRef(Py_None));
        for (int j = 0; j < r->n_reads[k]; j++) {
            PyObject *item = NULL;
            int q = r->read_input[k][j];
            switch (r->read_kind[k][j]) {
            case READ_INPUT: item = Py_NewRef(values[q]); break;
            case READ_SHAPE:
                if (shapes[q] == NULL && (shapes[q] = get_shape(values[q])) == NULL) goto done;
                item = shared(shapes[q]);
                break;
            case READ_ANS: item = Py_NewRef(ans); break;
            case READ_XP: item = Py_NewRef(r->xp); break;
            case READ_RES: item = Py_NewRef(res); break;
            default: item = param_value(r, k, j, args, n, kwnames);
            }
            if (item == NULL) goto done;
            PyTuple_SET_ITEM(rule_args, j, item);
        }
        /* the input's shape where it is not the output's (the sweep then sums the contribution down to it) */
        if (shapes[k] == NULL && (shapes[k] = get_shape(values[k])) == NULL) goto done;
        if (ans_shape == NULL && (ans_shape = get_shape(ans)) == NULL) goto done;
        int same = PyObject_RichCompareBool(shapes[k], ans_shape, Py_EQ);
        if (same < 0) goto done;
        if (!same) {
            PyObject *kept = shared(shapes[k]);
            if (kept == NULL) goto done;
            Py_DECREF(PyTuple_GET_ITEM(node, slot + 3));  /* (the None put there) */
            PyTuple_SET_ITEM(node, slot + 3, kept);
        }
        slot += 4;
    }
    result = append_node(tarray, tape, node, ans);
    node = NULL;  /* (consumed) */
done:
    Py_XDECREF(node);
    Py_XDECREF(shapes[0]);
    Py_XDECREF(shapes[1]);
    Py_XDECREF(ans_shape);
    Py_DECREF(out);
    return result;
}

static PyObject *recorder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *prim, *impl, *fallback, *tarray, *tracers, *xp, *links;
    PyObject *same, *param_names = Py_None;
    int residual;
    if (!PyArg_ParseTuple(args, "OOOOO!OpO!O|O", &prim, &impl, &fallback, &tarray, &PyDict_Type, &tracers,
                          &xp, &residual, &PyTuple_Type, &links, &same, &param_names))
        return NULL;
    if (param_names != Py_None && (!PyTuple_Check(param_names) || PyTuple_GET_SIZE(param_names) > 32)) {
        PyErr_SetString(PyExc_ValueError, "Recorder: param_names must be None or a tuple of at most 32 names");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(links);
    if (n < 1 || n > MAX_INPUTS || !PyType_Check(tarray) || !PyType_IsSubtype((PyTypeObject *)tarray, &FieldsType)) {
        PyErr_SetString(PyExc_ValueError, "Recorder: 1 or 2 inputs, and a TArrayFields subtype");
        return NULL;
    }
    Recorder *self = (Recorder *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = (vectorcallfunc)record;
    self->prim = Py_NewRef(prim), self->impl = Py_NewRef(impl), self->fallback = Py_NewRef(fallback);
    self->tarray = Py_NewRef(tarray), self->tracers = Py_NewRef(tracers), self->xp = Py_NewRef(xp);
    self->residual = residual, self->n_inputs = (int)n;
    self->same = same == Py_None ? NULL : Py_NewRef(same);
    self->param_names = param_names == Py_None ? NULL : Py_NewRef(param_names);
    /* links[k] = (rule or None, ((kind, input index, name, default), ...)) */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *link = PyTuple_GET_ITEM(links, k), *rule, *reads;
        if (!PyArg_ParseTuple(link, "OO!", &rule, &PyTuple_Type, &reads)) goto fail;
        self->rule[k] = rule == Py_None ? NULL : Py_NewRef(rule);
        if (PyTuple_GET_SIZE(reads) > MAX_READS) {
            PyErr_SetString(PyExc_ValueError, "Recorder: a rule reads at most 8 arguments");
            goto fail;
        }
        self->n_reads[k] = (int)PyTuple_GET_SIZE(reads);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(reads); j++) {
            int kind, input;
            PyObject *name, *dflt;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(reads, j), "iiOO", &kind, &input, &name, &dflt)) goto fail;
            if (kind < READ_INPUT || kind > READ_PARAM || input < 0 || input >= n ||
                    (kind == READ_PARAM && !PyUnicode_Check(name))) {
                PyErr_SetString(PyExc_ValueError, "Recorder: a bad read");
                goto fail;
            }
            self->read_kind[k][j] = kind, self->read_input[k][j] = input;
            self->read_name[k][j] = Py_NewRef(name), self->read_default[k][j] = Py_NewRef(dflt);
        }
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int recorder_traverse(Recorder *self, visitproc visit, void *arg) {
    Py_VISIT(self->prim); Py_VISIT(self->impl); Py_VISIT(self->fallback); Py_VISIT(self->tarray);
    Py_VISIT(self->tracers); Py_VISIT(self->xp); Py_VISIT(self->same); Py_VISIT(self->param_names);
    for (int k = 0; k < MAX_INPUTS; k++) {
        Py_VISIT(self->rule[k]);
        for (int j = 0; j < MAX_READS; j++) { Py_VISIT(self->read_name[k][j]); Py_VISIT(self->read_default[k][j]); }
    }
    return 0;
}

static int recorder_clear(Recorder *self) {
    Py_CLEAR(self->prim); Py_CLEAR(self->impl); Py_CLEAR(self->fallback); Py_CLEAR(self->tarray);
    Py_CLEAR(self->tracers); Py_CLEAR(self->xp); Py_CLEAR(self->same); Py_CLEAR(self->param_names);
    for (int k = 0; k < MAX_INPUTS; k++) {
        Py_CLEAR(self->rule[k]);
        for (int j = 0; j < MAX_READS; j++) { Py_CLEAR(self->read_name[k][j]); Py_CLEAR(self->read_default[k][j]); }
    }
    return 0;
}

static void recorder_dealloc(Recorder *self) {
    PyObject_GC_UnTrack(self);
    recorder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *recorder_repr(Recorder *self) {
    return PyUnicode_FromFormat("<diffkit recorder of %R>", self->prim);
}

static PyObject *recorder_positional(Recorder *self, void *closure) {
    return PyBool_FromLong(self->param_names != NULL);
}

static PyGetSetDef recorder_getset[] = {
    {"takes_positional_params", (getter)recorder_positional, NULL,
     "whether params may come by position (xp.sum(x, 1)): the namespace then calls it directly", NULL},
    {NULL},
};

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "diffkit.tape._ctape.Recorder",
    .tp_getset = recorder_getset,
    .tp_doc = "Recorder(prim, impl, fallback, TArray, TRACERS, xp, residual, links, same[, param_names]): "
              "records prim on a fast tape in one call (plans.fast_recorder's generated function, in C)",
    .tp_basicsize = sizeof(Recorder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Recorder, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = recorder_new,
    .tp_traverse = (traverseproc)recorder_traverse,
    .tp_clear = (inquiry)recorder_clear,
    .tp_dealloc = (destructor)recorder_dealloc,
    .tp_repr = (reprfunc)recorder_repr,
};

/* ---------------------------------------------------------------------------------------------------------
 * Views of a plain numpy tape array (levels.index_view and levels.reshape_view): x[i], x[a:b] or x[idx] as one getitem
 * node, and a reshape of such a slice as one view node onto the sliced array.  None: the general path records it.
 */
static PyObject *view_getitem, *view_tarray, *view_special;  /* set by configure_views() */
static PyObject *str_plain, *str_kind;

/* x's tape, if it is plain (nothing recorded beside the nodes) and x's value a numpy array; else NULL, no error */
static PyObject *plain_tape(PyObject *x) {
    if (view_tarray == NULL || Py_TYPE(x) != (PyTypeObject *)view_tarray) return NULL;
    TArrayFields *a = (TArrayFields *)x;
    if ((PyObject *)Py_TYPE(a->value) != ndarray_type) return NULL;
    PyObject *plain = PyObject_GetAttr(a->tape, str_plain);
    if (plain == NULL) { PyErr_Clear(); return NULL; }
    int ok = plain == Py_True;
    Py_DECREF(plain);
    return ok ? a->tape : NULL;
}

static PyObject *shared_shape_of(PyObject *array) {  /* shared(array.shape) */
    PyObject *shape = PyObject_GetAttr(array, str_shape);
    if (shape == NULL) return NULL;
    PyObject *kept = shared(shape);
    Py_DECREF(shape);
    return kept;
}

static int integer_array(PyObject *item) {  /* a numpy array of integers (a gather's indices); 0, no error */
    if ((PyObject *)Py_TYPE(item) != ndarray_type) return 0;
    PyObject *dtype = PyObject_GetAttr(item, str_dtype);
    if (dtype == NULL) { PyErr_Clear(); return 0; }
    PyObject *kind = PyObject_GetAttr(dtype, str_kind);
    Py_DECREF(dtype);
    if (kind == NULL) { PyErr_Clear(); return 0; }
    int ok = PyUnicode_Check(kind) && (PyUnicode_CompareWithASCIIString(kind, "i") == 0 ||
                                       PyUnicode_CompareWithASCIIString(kind, "u") == 0);
    Py_DECREF(kind);
    return ok;
}

static int view_index(PyObject *index) {  /* an int, a slice, an integer array, or a tuple of them */
    if (PySlice_Check(index) || PyLong_CheckExact(index) || integer_array(index)) return 1;
    if (!PyTuple_CheckExact(index)) return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(index); k++) {
        PyObject *item = PyTuple_GET_ITEM(index, k);
        if (!PySlice_Check(item) && !PyLong_CheckExact(item) && !integer_array(item)) return 0;
    }
    return 1;
}

static PyObject *view_fallback;  /* levels.reshape_view */

static PyObject *index_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "index_view(x, index)"); return NULL; }
    PyObject *x = args[0], *index = args[1];
    PyObject *tape = plain_tape(x);
    if (tape == NULL || !view_index(index)) Py_RETURN_NONE;
    TArrayFields *a = (TArrayFields *)x;
    PyObject *part = PyObject_GetItem(a->value, index);
    if (part == NULL) {  /* the getitem primitive reports it, naming the op and the shapes */
        if (!PyErr_ExceptionMatches(PyExc_IndexError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *shape = shared_shape_of(a->value);
    if (shape == NULL) { Py_DECREF(part); return NULL; }
    PyObject *node = PyTuple_Pack(5, view_getitem, a->index, index, Py_None, shape);
    Py_DECREF(shape);
    if (node == NULL) { Py_DECREF(part); return NULL; }
    PyObject *made = append_node((PyTypeObject *)view_tarray, tape, node, part);
    Py_DECREF(part);
    return made;
}

static PyObject *reshape_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "reshape_view(x, shape)"); return NULL; }
    PyObject *x = args[0], *shape = args[1];
    PyObject *tape = plain_tape(x);
    if (tape == NULL) {  /* a tape recording beside its nodes (values, a program): the Python path records it */
        if (view_tarray != NULL && Py_TYPE(x) == (PyTypeObject *)view_tarray &&
                (PyObject *)Py_TYPE(((TArrayFields *)x)->value) == ndarray_type)
            return PyObject_Vectorcall(view_fallback, args, 2, NULL);
        Py_RETURN_NONE;
    }
    TArrayFields *a = (TArrayFields *)x;
    PyObject *nodes = PyObject_GetAttr(tape, str_nodes);
    if (nodes == NULL) return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(a->index);
    if (!PyList_CheckExact(nodes) || i < 0 || i >= PyList_GET_SIZE(nodes)) {
        Py_DECREF(nodes);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *node = Py_NewRef(PyList_GET_ITEM(nodes, i));
    Py_DECREF(nodes);
    PyObject *result = NULL, *value = NULL, *own_shape = NULL;
    /* a slice node (a view of no reshape yet): (getitem, parent, slice, None, parent's shape) */
    if (!PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) != 5 || PyTuple_GET_ITEM(node, 3) != Py_None ||
            !PySlice_Check(PyTuple_GET_ITEM(node, 2))) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    int kind = special_kind(view_special, PyTuple_GET_ITEM(node, 0));
    if (kind < 0) goto done;
    if (kind != 1) { result = Py_NewRef(Py_None); goto done; }
    value = PyObject_CallMethodOneArg(a->value, str_reshape, shape);
    if (value == NULL) {  /* the reshape primitive reports it, naming the op and the shapes */
        if (!PyErr_ExceptionMatches(PyExc_ValueError) && !PyErr_ExceptionMatches(PyExc_TypeError)) goto done;
        PyErr_Clear();
        result = Py_NewRef(Py_None);
        goto done;
    }
    own_shape = shared_shape_of(a->value);
    if (own_shape == NULL) goto done;
    PyObject *view = PyTuple_Pack(5, PyTuple_GET_ITEM(node, 0), PyTuple_GET_ITEM(node, 1), PyTuple_GET_ITEM(node, 2),
                                  own_shape, PyTuple_GET_ITEM(node, 4));
    if (view == NULL) goto done;
    result = append_node((PyTypeObject *)view_tarray, tape, view, value);
done:
    Py_DECREF(node);
    Py_XDECREF(value);
    Py_XDECREF(own_shape);
    return result;
}

static PyObject *configure_views(PyObject *self, PyObject *args) {
    PyObject *getitem, *tarray, *special, *fallback;
    if (!PyArg_ParseTuple(args, "OOOO", &getitem, &tarray, &special, &fallback)) return NULL;
    if (!PyType_Check(tarray) || !PyType_IsSubtype((PyTypeObject *)tarray, &FieldsType)) {
        PyErr_SetString(PyExc_TypeError, "configure_views: TArray must subclass TArrayFields");
        return NULL;
    }
    Py_XSETREF(view_getitem, Py_NewRef(getitem));
    Py_XSETREF(view_tarray, Py_NewRef(tarray));
    Py_XSETREF(view_special, Py_NewRef(special));
    Py_XSETREF(view_fallback, Py_NewRef(fallback));
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *array_type, *dtype, *scalar_type, *shapes, *share;
    if (!PyArg_ParseTuple(args, "OOOO!O", &array_type, &dtype, &scalar_type, &PyDict_Type, &shapes, &share))
        return NULL;
    Py_XSETREF(shapes_kept, Py_NewRef(shapes));
    Py_XSETREF(keep_shape, Py_NewRef(share));
    Py_XSETREF(ndarray_type, Py_NewRef(array_type));
    Py_XSETREF(f64_dtype, Py_NewRef(dtype));
    Py_XSETREF(f64_scalar_type, Py_NewRef(scalar_type));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sweep", (PyCFunction)(void (*)(void))sweep, METH_FASTCALL,
     "sweep(nodes, grads, owned, unwritten, start, retain, special, on_special, fit, fill): Tape.backward's loop"},
    {"configure", configure, METH_VARARGS,
     "configure(ndarray, float64 dtype, float64 scalar type, SHAPES, the function adding a shape to it)"},
    {"configure_views", configure_views, METH_VARARGS,
     "configure_views(getitem, TArray, special, reshape_view in Python)"},
    {"index_view", (PyCFunction)(void (*)(void))index_view, METH_FASTCALL, "levels.index_view, in C"},
    {"reshape_view", (PyCFunction)(void (*)(void))reshape_view, METH_FASTCALL, "levels.reshape_view, in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctape", "The reverse sweep's loop in C.", -1, methods};

PyMODINIT_FUNC PyInit__ctape(void) {
    static struct { PyObject **name; const char *text; } interned[] = {
        {&str_shape, "shape"}, {&str_dtype, "dtype"}, {&str_base, "base"}, {&str_fast, "fast"},
        {&str_reshape, "reshape"}, {&str_plain, "plain"}, {&str_nodes, "nodes"}, {&str_ns, "ns"},
        {&str_add, "add"}, {&str_subtract, "subtract"}, {&str_multiply, "multiply"}, {&str_divide, "divide"},
        {&str_matmul, "matmul"}, {&str_negative, "negative"}, {&str_index_op, "index_op"}, {&str_kind, "kind"},
    };
    for (size_t k = 0; k < sizeof interned / sizeof interned[0]; k++)
        if ((*interned[k].name = PyUnicode_InternFromString(interned[k].text)) == NULL) return NULL;
    empty_tuple = PyTuple_New(0);
    kw_index = Py_BuildValue("(s)", "index");
    if (empty_tuple == NULL || kw_index == NULL) return NULL;
    if (PyType_Ready(&FieldsType) < 0 || PyType_Ready(&RecorderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "TArrayFields", (PyObject *)&FieldsType) < 0 ||
            PyModule_AddObjectRef(m, "Recorder", (PyObject *)&RecorderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
