/* SampleBuffer: the buffer dora's `send_output_raw` lends, which knows its views (car.compat.dora.sample).
 *
 * It exports the memory of the array it wraps (a slot of the output's shared memory) through the
 * buffer protocol and counts the views made from it (numpy arrays, memoryviews, struct.pack_into),
 * so that a send can be refused while one is open; once invalidated (sent, or its handler gone)
 * every new view is refused with BufferError, as dora's contract says. Python 3.11 gives Python
 * code no way to raise from the buffer protocol (PEP 688 came in 3.12), hence these few lines of C;
 * where they could not be built, car.compat.dora.sample says what is lost.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    Py_buffer base;     /* the wrapped array's memory, held until this object goes */
    Py_ssize_t views;   /* views made from it and not released yet */
    PyObject *refusal;  /* NULL while views may be made; else why not (a str) */
} SampleBuffer;

static PyObject *sample_buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *target;
    static char *names[] = {"array", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:SampleBuffer", names, &target)) {
        return NULL;
    }
    SampleBuffer *self = (SampleBuffer *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(target, &self->base, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void sample_buffer_dealloc(SampleBuffer *self) {
    if (self->base.obj != NULL) {
        PyBuffer_Release(&self->base);
    }
    Py_XDECREF(self->refusal);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int sample_buffer_getbuffer(SampleBuffer *self, Py_buffer *view, int flags) {
    if (self->refusal != NULL) {
        PyErr_SetObject(PyExc_BufferError, self->refusal);
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->base.buf, self->base.len, 0, flags) < 0) {
        return -1;
    }
    self->views++;
    return 0;
}

static void sample_buffer_releasebuffer(SampleBuffer *self, Py_buffer *view) {
    self->views--;
}

static PyObject *sample_buffer_refuse(SampleBuffer *self, PyObject *why) {
    if (!PyUnicode_Check(why)) {
        PyErr_SetString(PyExc_TypeError, "refuse() takes the reason as a str");
        return NULL;
    }
    Py_INCREF(why);
    Py_XSETREF(self->refusal, why);
    Py_RETURN_NONE;
}

static PyObject *sample_buffer_get_views(SampleBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->views);
}

static PyObject *sample_buffer_get_nbytes(SampleBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->base.len);
}

static PyMethodDef sample_buffer_methods[] = {
    {"refuse", (PyCFunction)sample_buffer_refuse, METH_O,
     "Refuse every new view from now on, with BufferError(why); views already made stay valid."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef sample_buffer_getset[] = {
    {"views", (getter)sample_buffer_get_views, NULL, "Views made from this buffer and not released yet.", NULL},
    {"nbytes", (getter)sample_buffer_get_nbytes, NULL, "The buffer's size in bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyBufferProcs sample_buffer_as_buffer = {
    (getbufferproc)sample_buffer_getbuffer,
    (releasebufferproc)sample_buffer_releasebuffer,
};

static PyTypeObject SampleBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "car.compat.dora._sample_buffer.SampleBuffer",
    .tp_doc = "The memory of an array, lent through the buffer protocol; it counts its views and can refuse new ones.",
    .tp_basicsize = sizeof(SampleBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = sample_buffer_new,
    .tp_dealloc = (destructor)sample_buffer_dealloc,
    .tp_as_buffer = &sample_buffer_as_buffer,
    .tp_methods = sample_buffer_methods,
    .tp_getset = sample_buffer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_sample_buffer",
    .m_doc = "SampleBuffer: the buffer dora's send_output_raw lends (see car.compat.dora.sample).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__sample_buffer(void) {
    if (PyType_Ready(&SampleBufferType) < 0) {
        return NULL;
    }
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) {
        return NULL;
    }
    Py_INCREF(&SampleBufferType);
    if (PyModule_AddObject(created, "SampleBuffer", (PyObject *)&SampleBufferType) < 0) {
        Py_DECREF(&SampleBufferType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
