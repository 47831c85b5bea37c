/* Per-joint command filters for robot_capture.retarget.filters, in C for the per-frame hot path.
 *
 * Same arithmetic, element by element, as the NumPy code in filters.py (the tests compare
 * both): One-Euro filter (Casiez et al., CHI 2012), critically-damped second-order follower
 * (semi-implicit Euler), and the velocity/acceleration rate limiter with a braking bound.
 * Arrays are contiguous float64 buffers of equal length; state arrays are updated in place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static const double TWO_PI = 6.283185307179586;

static int get_n(Py_buffer *bufs, int count, Py_ssize_t *n) {
    *n = bufs[0].len / (Py_ssize_t)sizeof(double);
    for (int i = 0; i < count; i++) {
        if (bufs[i].len != *n * (Py_ssize_t)sizeof(double)) {
            PyErr_SetString(PyExc_ValueError, "filter arrays must be float64 of equal length");
            return -1;
        }
    }
    return 0;
}

static void release(Py_buffer *bufs, int count) {
    for (int i = 0; i < count; i++) PyBuffer_Release(&bufs[i]);
}

/* one_euro(x, dx, u, dt, min_cutoff_hz, beta, d_cutoff_hz): x, dx updated in place */
static PyObject *one_euro(PyObject *self, PyObject *args) {
    Py_buffer b[3];
    double dt, min_cutoff, beta, d_cutoff;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "w*w*y*dddd", &b[0], &b[1], &b[2], &dt, &min_cutoff, &beta, &d_cutoff))
        return NULL;
    if (get_n(b, 3, &n) < 0) { release(b, 3); return NULL; }
    double *x = (double *)b[0].buf, *dx = (double *)b[1].buf;
    const double *u = (const double *)b[2].buf;
    double kd = TWO_PI * d_cutoff * dt;
    double ad = kd / (kd + 1.0);
    double ad_dt = ad / dt;
    double kb = beta * TWO_PI * dt, km = min_cutoff * TWO_PI * dt;
    for (Py_ssize_t i = 0; i < n; i++) {
        double tmp = u[i] - x[i];
        dx[i] += ad_dt * tmp - ad * dx[i];
        double a = fabs(dx[i]) * kb + km;
        a = a / (a + 1.0);
        x[i] += tmp * a;
    }
    release(b, 3);
    Py_RETURN_NONE;
}

/* critically_damped(x, v, u, dt, w): x, v updated in place */
static PyObject *critically_damped(PyObject *self, PyObject *args) {
    Py_buffer b[3];
    double dt, w;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "w*w*y*dd", &b[0], &b[1], &b[2], &dt, &w)) return NULL;
    if (get_n(b, 3, &n) < 0) { release(b, 3); return NULL; }
    double *x = (double *)b[0].buf, *v = (double *)b[1].buf;
    const double *u = (const double *)b[2].buf;
    double den = 1.0 + 2.0 * w * dt + (w * dt) * (w * dt);
    for (Py_ssize_t i = 0; i < n; i++) {
        v[i] = (v[i] + dt * w * w * (u[i] - x[i])) / den;
        x[i] = x[i] + dt * v[i];
    }
    release(b, 3);
    Py_RETURN_NONE;
}

/* rate_limit(q, v, target, vmax, amax, lower, upper, dt, brake=1): q, v updated in place;
 * brake=0 drops the braking bound (a guard: an input within the limits passes unchanged) */
static PyObject *rate_limit(PyObject *self, PyObject *args) {
    Py_buffer b[7];
    double dt;
    int brake = 1;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "w*w*y*y*y*y*y*d|p", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &dt, &brake))
        return NULL;
    if (get_n(b, 7, &n) < 0) { release(b, 7); return NULL; }
    double *q = (double *)b[0].buf, *v = (double *)b[1].buf;
    const double *tg = (const double *)b[2].buf, *vmax = (const double *)b[3].buf,
                 *amax = (const double *)b[4].buf, *lo = (const double *)b[5].buf, *hi = (const double *)b[6].buf;
    double inv_dt = 1.0 / dt;
    for (Py_ssize_t i = 0; i < n; i++) {
        double t = fmin(fmax(tg[i], lo[i]), hi[i]);
        double e = t - q[i];
        double ae = fabs(e);
        double adt = amax[i] * dt;
        double vdes = fmin(ae * inv_dt, vmax[i]);
        if (brake) vdes = fmin(vdes, adt * (sqrt(0.25 + ae * (2.0 / dt) / adt) - 0.5));
        vdes = copysign(vdes, e) - v[i];
        v[i] += fmin(fmax(vdes, -adt), adt);
        q[i] = fmin(fmax(q[i] + v[i] * dt, lo[i]), hi[i]);
    }
    release(b, 7);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"one_euro", one_euro, METH_VARARGS, "one_euro(x, dx, u, dt, min_cutoff_hz, beta, d_cutoff_hz): in place"},
    {"critically_damped", critically_damped, METH_VARARGS, "critically_damped(x, v, u, dt, w): in place"},
    {"rate_limit", rate_limit, METH_VARARGS, "rate_limit(q, v, target, vmax, amax, lower, upper, dt, brake=1): in place"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_filters", "C hot path of retarget.filters", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__filters(void) { return PyModule_Create(&module); }
