/*
 * robot_capture.kinematics._ik -- forward kinematics, frame Jacobians and a weighted
 * multi-task inverse kinematics solver for a fixed-base kinematic tree.
 *
 * Plain C99 + libm. Arrays come in through the buffer protocol (numpy float64 / int32,
 * C-contiguous). The Python side (model.py, ik.py) flattens the URDF tree:
 *
 *   T_base_i = T_base_parent[i] * origin[i] * motion_i(s_i),  s_i = mult[i]*q[qidx[i]] + offset[i]
 *
 * motion = rotation by s about axis[i] (type 1, revolute/continuous) or translation by s
 * along axis[i] (type 2, prismatic); type 0 = fixed. parent[i] < i (topological order).
 * Poses are stored as 12 doubles: R (3x3, row-major) then p (3).
 *
 * IK: at each iteration, with residuals e_t (target minus current; 6-D for frame tasks:
 * position then rotation vector log(R_target R^T) in base axes; relative tasks in the root
 * frame's axes; posture e = q_ref - q; vector tasks e = v_target - (p_frame - p_root), 3-D, base axes,
 * J = J_v,frame - J_v,root, e.g. a fingertip-to-fingertip vector) and Jacobians J_t, solve
 *
 *   min_dq  1/2 sum_t || e_t - J_t dq ||^2_{W_t} + 1/2 lambda ||dq||^2,   lo - q <= dq <= hi - q
 *
 * with the Levenberg-Marquardt damping of Sugihara (2011), "Solvability-unconcerned inverse
 * kinematics by the Levenberg-Marquardt method", IEEE T-RO 27(5):984-991:
 * lambda = boost * (mu * E(q) + w_bar), E = 1/2 sum_t e_t^T W_t e_t, w_bar = `damping`,
 * mu = `error_damping` (1 in the paper). Steps that raise E are rejected and boost grows 10x
 * (classical LM acceptance); it shrinks 10x per accepted step, down to 1.
 * The box (position limits intersected with [q0 + vlo*dt, q0 + vhi*dt]; vlo = -vmax, vhi = vmax
 * unless set_velocity_bounds() narrowed them, e.g. to an acceleration limit) is handled by a clamp-aware
 * active-set re-solve of the damped normal equations (see box_qp), one small problem per
 * independent block of joints (e.g. each arm). Convergence: every frame task within
 * tolerance (scaled by sqrt(c_max / c) for lower-cost tasks). No allocation per solve;
 * the numeric core runs without the GIL. A solver object must not be used from two threads
 * at once (it raises RuntimeError if re-entered); use one solver per thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define IK_INLINE static inline __attribute__((always_inline))
#else
#define IK_INLINE static inline
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

enum { ST_CONVERGED = 0, ST_MAX_ITERATIONS = 1, ST_LIMIT_BOUND = 2, ST_INVALID_INPUT = 3 };
enum { T_FRAME = 0, T_RELATIVE = 1, T_POSTURE = 2, T_VECTOR = 3 };

/* ------------------------------------------------------------------ small 3-D helpers */
static void rot_axis_angle(const double *a, double s, double *R) {
    double c = cos(s), sn = sin(s), C = 1.0 - c;
    double x = a[0], y = a[1], z = a[2];
    R[0] = c + x * x * C;     R[1] = x * y * C - z * sn; R[2] = x * z * C + y * sn;
    R[3] = y * x * C + z * sn; R[4] = c + y * y * C;     R[5] = y * z * C - x * sn;
    R[6] = z * x * C - y * sn; R[7] = z * y * C + x * sn; R[8] = c + z * z * C;
}

static void mat3_mul(const double *A, const double *B, double *C) { /* C = A B */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[3 * i + j] = A[3 * i] * B[j] + A[3 * i + 1] * B[3 + j] + A[3 * i + 2] * B[6 + j];
}

static void mat3_mul_bt(const double *A, const double *B, double *C) { /* C = A B^T */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[3 * i + j] = A[3 * i] * B[3 * j] + A[3 * i + 1] * B[3 * j + 1] + A[3 * i + 2] * B[3 * j + 2];
}

static void mat3_mul_at(const double *A, const double *B, double *C) { /* C = A^T B */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[3 * i + j] = A[i] * B[j] + A[3 + i] * B[3 + j] + A[6 + i] * B[6 + j];
}

static void mat3_vec(const double *A, const double *v, double *o) {
    for (int i = 0; i < 3; i++) o[i] = A[3 * i] * v[0] + A[3 * i + 1] * v[1] + A[3 * i + 2] * v[2];
}

static void mat3t_vec(const double *A, const double *v, double *o) {
    for (int i = 0; i < 3; i++) o[i] = A[i] * v[0] + A[3 + i] * v[1] + A[6 + i] * v[2];
}

static void cross3(const double *a, const double *b, double *o) {
    o[0] = a[1] * b[2] - a[2] * b[1];
    o[1] = a[2] * b[0] - a[0] * b[2];
    o[2] = a[0] * b[1] - a[1] * b[0];
}

/* rotation vector w with exp([w]x) = R, |w| <= pi; stable near 0 and pi (same as reference.log_so3) */
static void log_so3(const double *R, double *w) {
    double v[3] = {0.5 * (R[7] - R[5]), 0.5 * (R[2] - R[6]), 0.5 * (R[3] - R[1])};
    double s = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    double c = 0.5 * (R[0] + R[4] + R[8] - 1.0);
    double th = atan2(s, c);
    if (th < 1e-9) {
        double f = 1.0 + th * th / 6.0;
        w[0] = v[0] * f; w[1] = v[1] * f; w[2] = v[2] * f;
    } else if (th < M_PI - 1e-6) {
        double f = th / s;
        w[0] = v[0] * f; w[1] = v[1] * f; w[2] = v[2] * f;
    } else {
        double B[9];
        for (int i = 0; i < 9; i++) B[i] = 0.5 * R[i];
        B[0] += 0.5; B[4] += 0.5; B[8] += 0.5;
        int k = 0;
        if (B[4] > B[k * 4]) k = 1;
        if (B[8] > B[k * 4]) k = 2;
        double d = sqrt(B[k * 4] > 1e-300 ? B[k * 4] : 1e-300);
        double a[3] = {B[k] / d, B[3 + k] / d, B[6 + k] / d};
        double n = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
        double sg = (a[0] * v[0] + a[1] * v[1] + a[2] * v[2]) < 0 ? -1.0 : 1.0;
        for (int i = 0; i < 3; i++) w[i] = sg * a[i] / n * th;
    }
}

/* ------------------------------------------------------------------ buffers */
static int get_buffer(PyObject *obj, Py_buffer *view, char kind, Py_ssize_t n, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous %s%s buffer", name,
                     kind == 'd' ? "float64" : "int32", writable ? " writable" : "");
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    int ok = (kind == 'd') ? (f[0] == 'd' && view->itemsize == 8) : ((f[0] == 'i' || f[0] == 'l') && view->itemsize == 4);
    if (!ok || (n >= 0 && view->len != n * view->itemsize)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd %s values, got %zd bytes of format '%s'", name, n,
                     kind == 'd' ? "float64" : "int32", view->len, view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void *copy_buffer(PyObject *obj, char kind, Py_ssize_t n, const char *name) {
    Py_buffer v;
    if (get_buffer(obj, &v, kind, n, 0, name) < 0) return NULL;
    size_t sz = (size_t)(n > 0 ? n : 1) * 8;
    void *out = calloc(1, sz);
    if (!out) { PyBuffer_Release(&v); PyErr_NoMemory(); return NULL; }
    memcpy(out, v.buf, (size_t)v.len);
    PyBuffer_Release(&v);
    return out;
}

/* ------------------------------------------------------------------ Kinematics */
typedef struct {
    PyObject_HEAD
    int nl, nq;
    int *parent, *type, *qidx;
    double *mult, *offset, *origin, *axis; /* origin: nl*12, axis: nl*3 */
    char *oident, *akind;                  /* origin rotation is identity; axis kind 0 general, 1..3 = +-x/y/z */
    double *asign;                         /* sign of a principal axis */
    double *pose;                          /* nl*12 workspace (used with the GIL held) */
} KinObject;

/* pose of link i from its parent's: T_i = T_parent * origin_i * motion_i(s).
 * Fast paths: origin rotation = identity (oident), joint axis = +-x/y/z (akind 1..3, sign in asign):
 * a principal-axis rotation only mixes two columns of R. */
IK_INLINE void kin_link(const KinObject *k, int i, const double *q, double *pose) {
    const double *P = pose + 12 * k->parent[i], *O = k->origin + 12 * i;
    double *T = pose + 12 * i;
    double Rpo[9], tmp[3];
    if (k->oident[i]) memcpy(Rpo, P, sizeof Rpo);
    else mat3_mul(P, O, Rpo);
    mat3_vec(P, O + 9, tmp);
    T[9] = P[9] + tmp[0]; T[10] = P[10] + tmp[1]; T[11] = P[11] + tmp[2];
    int t = k->type[i];
    if (t == 0) {
        memcpy(T, Rpo, sizeof Rpo);
        return;
    }
    double s = k->mult[i] * q[k->qidx[i]] + k->offset[i];
    const double *a = k->axis + 3 * i;
    if (t == 1) {
        int ak = k->akind[i];
        if (ak == 0) {
            double M[9];
            rot_axis_angle(a, s, M);
            mat3_mul(Rpo, M, T);
        } else {
            /* rotation about principal axis ak-1: columns (c1, c2) = the two other axes, right-handed */
            double c = cos(s), sn = k->asign[i] * sin(s);
            int ax = ak - 1, c1 = (ax + 1) % 3, c2 = (ax + 2) % 3;
            for (int r = 0; r < 3; r++) {
                double u = Rpo[3 * r + c1], v = Rpo[3 * r + c2];
                T[3 * r + ax] = Rpo[3 * r + ax];
                T[3 * r + c1] = c * u + sn * v;
                T[3 * r + c2] = -sn * u + c * v;
            }
        }
    } else {
        double d[3] = {a[0] * s, a[1] * s, a[2] * s};
        memcpy(T, Rpo, sizeof Rpo);
        mat3_vec(Rpo, d, tmp);
        T[9] += tmp[0]; T[10] += tmp[1]; T[11] += tmp[2];
    }
}

/* FK of the links listed in list[0..n) (ascending), or of all links if list == NULL, into pose (nl*12). */
static void kin_fk_list(const KinObject *k, const double *q, const int *list, int n, double *pose) {
    for (int a = 0; a < n; a++) kin_link(k, list[a], q, pose);
}

/* FK of the links with needed[i] != 0 (all if needed == NULL) into pose (nl*12). */
static void kin_fk(const KinObject *k, const double *q, const char *needed, double *pose) {
    static const double I12[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    memcpy(pose, I12, sizeof I12);
    for (int i = 1; i < k->nl; i++)
        if (!needed || needed[i]) kin_link(k, i, q, pose);
}

/* add the geometric Jacobian contribution of joint link j (moving frame at origin p) into column col
 * of a 6 x ncols row-major matrix J, scaled by sign */
IK_INLINE void jac_add(const KinObject *k, const double *pose, int j, const double *p, double *J, int ncols, int col,
                       double sign) {
    const double *Tj = pose + 12 * j;
    double a[3], r[3], c[3];
    int ak = k->akind[j];
    if (ak) { /* principal axis: the world axis is a (signed) column of R */
        double sg = k->asign[j];
        a[0] = sg * Tj[ak - 1]; a[1] = sg * Tj[3 + ak - 1]; a[2] = sg * Tj[6 + ak - 1];
    } else {
        mat3_vec(Tj, k->axis + 3 * j, a);
    }
    double m = sign * k->mult[j];
    if (k->type[j] == 1) {
        r[0] = p[0] - Tj[9]; r[1] = p[1] - Tj[10]; r[2] = p[2] - Tj[11];
        cross3(a, r, c);
        for (int x = 0; x < 3; x++) {
            J[x * ncols + col] += m * c[x];
            J[(3 + x) * ncols + col] += m * a[x];
        }
    } else {
        for (int x = 0; x < 3; x++) J[x * ncols + col] += m * a[x];
    }
}

static void Kin_dealloc(KinObject *self) {
    free(self->parent); free(self->type); free(self->qidx);
    free(self->mult); free(self->offset); free(self->origin); free(self->axis); free(self->pose);
    free(self->oident); free(self->akind); free(self->asign);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Kin_init(KinObject *self, PyObject *args, PyObject *kw) {
    PyObject *op, *ot, *oq, *om, *oo, *oorig, *oax;
    int nq;
    if (!PyArg_ParseTuple(args, "OOOOOOOi", &op, &ot, &oq, &om, &oo, &oorig, &oax, &nq)) return -1;
    Py_ssize_t nl = PyObject_Length(op);
    if (nl < 1 || nq < 0) { PyErr_SetString(PyExc_ValueError, "Kinematics: need >= 1 link and nq >= 0"); return -1; }
    self->nl = (int)nl; self->nq = nq;
    if (!(self->parent = copy_buffer(op, 'i', nl, "parent")) || !(self->type = copy_buffer(ot, 'i', nl, "type")) ||
        !(self->qidx = copy_buffer(oq, 'i', nl, "qidx")) || !(self->mult = copy_buffer(om, 'd', nl, "mult")) ||
        !(self->offset = copy_buffer(oo, 'd', nl, "offset")) || !(self->axis = copy_buffer(oax, 'd', 3 * nl, "axis")))
        return -1;
    /* origin comes as (nl, 4, 4); store R (row-major) + p */
    Py_buffer v;
    if (get_buffer(oorig, &v, 'd', 16 * nl, 0, "origin") < 0) return -1;
    self->origin = calloc((size_t)nl * 12, sizeof(double));
    self->pose = calloc((size_t)nl * 12, sizeof(double));
    self->oident = calloc((size_t)nl, 1);
    self->akind = calloc((size_t)nl, 1);
    self->asign = calloc((size_t)nl, sizeof(double));
    if (!self->origin || !self->pose || !self->oident || !self->akind || !self->asign) { PyBuffer_Release(&v); PyErr_NoMemory(); return -1; }
    const double *T = v.buf;
    for (int i = 0; i < nl; i++) {
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) self->origin[12 * i + 3 * r + c] = T[16 * i + 4 * r + c];
            self->origin[12 * i + 9 + r] = T[16 * i + 4 * r + 3];
        }
    }
    PyBuffer_Release(&v);
    for (int i = 0; i < nl; i++) {
        const double *O = self->origin + 12 * i, *a = self->axis + 3 * i;
        self->oident[i] = O[0] == 1.0 && O[4] == 1.0 && O[8] == 1.0 && O[1] == 0.0 && O[2] == 0.0 && O[3] == 0.0 &&
                          O[5] == 0.0 && O[6] == 0.0 && O[7] == 0.0;
        for (int x = 0; x < 3; x++)
            if (fabs(a[x]) == 1.0 && a[(x + 1) % 3] == 0.0 && a[(x + 2) % 3] == 0.0) {
                self->akind[i] = (char)(x + 1);
                self->asign[i] = a[x];
            }
    }
    for (int i = 0; i < nl; i++) {
        int p = self->parent[i], t = self->type[i], qi = self->qidx[i];
        if ((i == 0 && p != -1) || (i > 0 && (p < 0 || p >= i)) || t < 0 || t > 2 ||
            (t != 0 && (qi < 0 || qi >= nq))) {
            PyErr_Format(PyExc_ValueError, "Kinematics: link %d has parent %d, type %d, qidx %d (need topological order, "
                         "type in 0..2, 0 <= qidx < nq for moving joints)", i, p, t, qi);
            return -1;
        }
    }
    return 0;
}

static PyObject *Kin_fk(KinObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "fk(q, out) takes 2 arguments"); return NULL; }
    Py_buffer bq, bo;
    if (get_buffer(args[0], &bq, 'd', self->nq, 0, "q") < 0) return NULL;
    if (get_buffer(args[1], &bo, 'd', 16 * (Py_ssize_t)self->nl, 1, "out") < 0) { PyBuffer_Release(&bq); return NULL; }
    kin_fk(self, bq.buf, NULL, self->pose);
    double *o = bo.buf;
    for (int i = 0; i < self->nl; i++) {
        const double *T = self->pose + 12 * i;
        double *M = o + 16 * i;
        for (int r = 0; r < 3; r++) {
            M[4 * r] = T[3 * r]; M[4 * r + 1] = T[3 * r + 1]; M[4 * r + 2] = T[3 * r + 2]; M[4 * r + 3] = T[9 + r];
        }
        M[12] = M[13] = M[14] = 0.0; M[15] = 1.0;
    }
    PyBuffer_Release(&bq); PyBuffer_Release(&bo);
    Py_RETURN_NONE;
}

/* fk_links(qs (N, nq), links int32 (L,), out (N, L, 4, 4)): poses of the listed links only (and
 * their ancestors, computed but not returned) for N configurations. */
static PyObject *Kin_fk_links(KinObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "fk_links(qs, links, out) takes 3 arguments"); return NULL; }
    Py_buffer bq, bl, bo;
    if (get_buffer(args[1], &bl, 'i', -1, 0, "links") < 0) return NULL;
    Py_ssize_t L = bl.len / 4;
    if (get_buffer(args[0], &bq, 'd', -1, 0, "qs") < 0) { PyBuffer_Release(&bl); return NULL; }
    Py_ssize_t N = self->nq ? bq.len / 8 / self->nq : 0;
    if ((self->nq && bq.len != N * self->nq * 8) ||
        get_buffer(args[2], &bo, 'd', N * L * 16, 1, "out") < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "qs: expected (N, nq) float64");
        PyBuffer_Release(&bl); PyBuffer_Release(&bq);
        return NULL;
    }
    const int *links = bl.buf;
    char *needed = calloc((size_t)self->nl + 1, 1);
    if (!needed) { PyBuffer_Release(&bl); PyBuffer_Release(&bq); PyBuffer_Release(&bo); return PyErr_NoMemory(); }
    for (Py_ssize_t a = 0; a < L; a++) {
        if (links[a] < 0 || links[a] >= self->nl) {
            free(needed); PyBuffer_Release(&bl); PyBuffer_Release(&bq); PyBuffer_Release(&bo);
            PyErr_Format(PyExc_IndexError, "link index %d out of range", links[a]);
            return NULL;
        }
        for (int j = links[a]; j >= 0; j = self->parent[j]) needed[j] = 1;
    }
    const double *q = bq.buf;
    double *o = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t n = 0; n < N; n++) {
        kin_fk(self, q + n * self->nq, needed, self->pose);
        for (Py_ssize_t a = 0; a < L; a++) {
            const double *T = self->pose + 12 * links[a];
            double *M = o + 16 * (n * L + a);
            for (int r = 0; r < 3; r++) {
                M[4 * r] = T[3 * r]; M[4 * r + 1] = T[3 * r + 1]; M[4 * r + 2] = T[3 * r + 2]; M[4 * r + 3] = T[9 + r];
            }
            M[12] = M[13] = M[14] = 0.0; M[15] = 1.0;
        }
    }
    Py_END_ALLOW_THREADS
    free(needed);
    PyBuffer_Release(&bl); PyBuffer_Release(&bq); PyBuffer_Release(&bo);
    Py_RETURN_NONE;
}

static PyObject *Kin_jacobian(KinObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "jacobian(q, link, out) takes 3 arguments"); return NULL; }
    long link = PyLong_AsLong(args[1]);
    if (link == -1 && PyErr_Occurred()) return NULL;
    if (link < 0 || link >= self->nl) { PyErr_Format(PyExc_IndexError, "link index %ld out of range", link); return NULL; }
    Py_buffer bq, bo;
    if (get_buffer(args[0], &bq, 'd', self->nq, 0, "q") < 0) return NULL;
    if (get_buffer(args[2], &bo, 'd', 6 * (Py_ssize_t)self->nq, 1, "out") < 0) { PyBuffer_Release(&bq); return NULL; }
    kin_fk(self, bq.buf, NULL, self->pose);
    double *J = bo.buf;
    memset(J, 0, sizeof(double) * 6 * (size_t)self->nq);
    const double *p = self->pose + 12 * link + 9;
    for (int j = (int)link; j > 0; j = self->parent[j])
        if (self->type[j] != 0) jac_add(self, self->pose, j, p, J, self->nq, self->qidx[j], 1.0);
    PyBuffer_Release(&bq); PyBuffer_Release(&bo);
    Py_RETURN_NONE;
}

static PyMethodDef Kin_methods[] = {
    {"fk", (PyCFunction)(void (*)(void))Kin_fk, METH_FASTCALL,
     "fk(q, out): poses of all links, out float64 (nl, 4, 4), base frame."},
    {"fk_links", (PyCFunction)(void (*)(void))Kin_fk_links, METH_FASTCALL,
     "fk_links(qs (N, nq), links int32 (L,), out (N, L, 4, 4)): poses of the listed links for N configurations."},
    {"jacobian", (PyCFunction)(void (*)(void))Kin_jacobian, METH_FASTCALL,
     "jacobian(q, link, out): geometric Jacobian (6, nq) [linear; angular] of link, base axes."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef Kin_members[] = {
    {"nl", T_INT, offsetof(KinObject, nl), READONLY, "number of links"},
    {"nq", T_INT, offsetof(KinObject, nq), READONLY, "number of active joints"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject KinType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "robot_capture.kinematics._ik.Kinematics",
    .tp_basicsize = sizeof(KinObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Kinematics(parent, type, qidx, mult, offset, origin, axis, nq): flattened kinematic tree.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kin_init,
    .tp_dealloc = (destructor)Kin_dealloc,
    .tp_methods = Kin_methods,
    .tp_members = Kin_members,
};

/* ------------------------------------------------------------------ Solver */
typedef struct {
    PyObject_HEAD
    KinObject *kin;
    int nq, nl, nt, ntarget;
    double *lower, *upper, *vel, *vlo, *vhi; /* vel: |velocity| limit; vlo/vhi: signed bounds of this solve */
    int *ttype, *tframe, *troot, *ttarget;
    double *wp, *wo, *wpost, *qref;          /* qref: nt*nq */
    int *dstart, *dofs;                      /* per task compact dof list: dofs[dstart[t]..dstart[t+1]) */
    int *ca_start, *ca_link, *ca_col;        /* chain entries of the task frame -> compact column */
    int *cb_start, *cb_link, *cb_col;        /* chain entries of the relative task's root */
    int *jstart;                             /* offset of each task's 6 x nd Jacobian in jbuf */
    char *needed;
    int *fk_list, n_fk;                      /* links recomputed per iteration (needed, not constant) */
    int *cstart, *cdofs, ncomp;              /* independent blocks of dofs (no task couples two blocks) */
    double damping, error_damping, tol_p, tol_o, tol_step;
    double *ttol_p, *ttol_o;                 /* per-task tolerances (see update_tolerances) */
    int max_iter, use_vel;
    /* workspace */
    double *q_fk;                            /* configuration of the poses in `pose` (if fk_valid) */
    int fk_valid;
    double *pose, *q, *qprev, *lo, *hi, *H, *g, *dq, *A, *rhs, *grad, *dlo, *dhi, *jbuf, *M, *err, *invd, *Hc, *gc, *dc;
    int *state, *fidx;
    /* outputs */
    Py_buffer out_task, out_pos, out_ori;
    int have_out;
    int iterations, status, nactive, busy, qp_rounds;
} SolverObject;

/* Cholesky A = L L^T in place (lower triangle), inv[j] = 1 / L[j][j]; returns 0 on success */
static int cholesky(double *restrict A, int n, double *restrict inv) {
    for (int j = 0; j < n; j++) {
        double *Aj = A + j * n;
        double d = Aj[j];
        for (int k = 0; k < j; k++) d -= Aj[k] * Aj[k];
        if (!(d > 0.0)) return -1;
        d = sqrt(d);
        Aj[j] = d;
        double r = inv[j] = 1.0 / d;
        for (int i = j + 1; i < n; i++) {
            double *Ai = A + i * n;
            double s = Ai[j];
            for (int k = 0; k < j; k++) s -= Ai[k] * Aj[k];
            Ai[j] = s * r;
        }
    }
    return 0;
}

static void chol_solve(const double *restrict L, int n, const double *restrict inv, double *restrict b) {
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++) s -= L[i * n + k] * b[k];
        b[i] = s * inv[i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (int k = i + 1; k < n; k++) s -= L[k * n + i] * b[k];
        b[i] = s * inv[i];
    }
}

/* min 1/2 d^T H d - g^T d  s.t. lo <= d <= hi, H (n x n) symmetric positive definite.
 * Clamp-aware re-solve, an active-set method for bound constraints (Nocedal & Wright,
 * Numerical Optimization, 2nd ed., sec. 16.5): solve the equality-constrained problem on the
 * free set; clamp every free variable outside its box to the bound and fix it; when none is
 * outside, release the fixed variable whose Lagrange multiplier has the wrong sign; repeat.
 * Returns the number of variables at a bound, or -1 if the factorization failed (d = 0). */
static int box_qp(SolverObject *s, int n, const double *H, const double *g, const double *lo, const double *hi,
                  double *d) {
    int *state = s->state, *fidx = s->fidx;
    double *A = s->A, *rhs = s->rhs, *grad = s->grad;
    for (int i = 0; i < n; i++) { state[i] = 0; d[i] = 0.0; }
    for (int round = 0; round < 2 * n + 2; round++) {
        s->qp_rounds++;
        int nf = 0;
        for (int i = 0; i < n; i++) {
            if (state[i] == 0) fidx[nf++] = i;
            else d[i] = state[i] < 0 ? lo[i] : hi[i];
        }
        for (int a = 0; a < nf; a++) {
            int i = fidx[a];
            double r = g[i];
            for (int j = 0; j < n; j++)
                if (state[j] != 0) r -= H[i * n + j] * d[j];
            rhs[a] = r;
            for (int b = 0; b <= a; b++) A[a * nf + b] = H[i * n + fidx[b]];
        }
        if (nf > 0) {
            if (cholesky(A, nf, s->invd) != 0) {
                for (int i = 0; i < n; i++) d[i] = 0.0;
                return -1;
            }
            chol_solve(A, nf, s->invd, rhs);
            for (int a = 0; a < nf; a++) d[fidx[a]] = rhs[a];
        }
        int clamped = 0;
        for (int a = 0; a < nf; a++) {
            int i = fidx[a];
            if (d[i] < lo[i]) { state[i] = -1; clamped = 1; }
            else if (d[i] > hi[i]) { state[i] = 1; clamped = 1; }
        }
        if (clamped) continue;
        int worst = -1;
        double wv = 1e-14;
        for (int i = 0; i < n; i++) {
            if (state[i] == 0) continue;
            double gi = -g[i];
            for (int j = 0; j < n; j++) gi += H[i * n + j] * d[j];
            grad[i] = gi;
            double wrong = state[i] < 0 ? -gi : gi;
            if (wrong > wv) { wv = wrong; worst = i; }
        }
        if (worst < 0) break;
        state[worst] = 0;
    }
    int nact = 0;
    for (int i = 0; i < n; i++) {
        if (d[i] < lo[i]) d[i] = lo[i];
        if (d[i] > hi[i]) d[i] = hi[i];
        if (state[i] != 0) nact++;
    }
    return nact;
}

/* residuals of every task at the current FK (s->pose); fills err (6 per task), pos/ori norms,
 * returns 1 if every frame/relative task is within tolerance */
static int task_residuals(SolverObject *s, const double *targets, double *pe, double *oe, double *te, double *E) {
    int conv = 1;
    double Et = 0.0;
    const int nq = s->nq;
    for (int t = 0; t < s->nt; t++) {
        double *e = s->err + 6 * t;
        if (s->ttype[t] == T_POSTURE) {
            double ss = 0.0;
            const double *qr = s->qref + (size_t)t * nq;
            for (int i = 0; i < nq; i++) { double d = qr[i] - s->q[i]; ss += d * d; }
            Et += 0.5 * s->wpost[t] * ss;
            pe[t] = 0.0; oe[t] = 0.0; te[t] = sqrt(s->wpost[t] * ss);
            continue;
        }
        const double *Tt = targets + 16 * s->ttarget[t];
        double Rt[9] = {Tt[0], Tt[1], Tt[2], Tt[4], Tt[5], Tt[6], Tt[8], Tt[9], Tt[10]};
        double pt[3] = {Tt[3], Tt[7], Tt[11]};
        const double *Ta = s->pose + 12 * s->tframe[t];
        double Rc[9], pc[3], Re[9];
        if (s->ttype[t] == T_FRAME) {
            memcpy(Rc, Ta, sizeof Rc);
            memcpy(pc, Ta + 9, sizeof pc);
        } else if (s->ttype[t] == T_VECTOR) {
            const double *Tb = s->pose + 12 * s->troot[t];
            pc[0] = Ta[9] - Tb[9]; pc[1] = Ta[10] - Tb[10]; pc[2] = Ta[11] - Tb[11];
            memcpy(Rc, Rt, sizeof Rc); /* not tracked (wo = 0) */
        } else {
            const double *Tb = s->pose + 12 * s->troot[t];
            double x[3] = {Ta[9] - Tb[9], Ta[10] - Tb[10], Ta[11] - Tb[11]};
            mat3_mul_at(Tb, Ta, Rc);
            mat3t_vec(Tb, x, pc);
        }
        for (int i = 0; i < 3; i++) e[i] = pt[i] - pc[i];
        if (s->wo[t] > 0.0) {
            mat3_mul_bt(Rt, Rc, Re);
            log_so3(Re, e + 3);
        } else { /* orientation not tracked: not computed, reported as NaN */
            e[3] = e[4] = e[5] = 0.0;
        }
        double p2 = e[0] * e[0] + e[1] * e[1] + e[2] * e[2], o2 = e[3] * e[3] + e[4] * e[4] + e[5] * e[5];
        pe[t] = s->wp[t] > 0.0 ? sqrt(p2) : NAN;
        oe[t] = s->wo[t] > 0.0 ? sqrt(o2) : NAN;
        if (!(s->wp[t] > 0.0)) p2 = 0.0;
        double we = s->wp[t] * p2 + s->wo[t] * o2;
        te[t] = sqrt(we);
        Et += 0.5 * we;
        if ((s->wp[t] > 0.0 && pe[t] > s->ttol_p[t]) || (s->wo[t] > 0.0 && oe[t] > s->ttol_o[t])) conv = 0;
    }
    *E = Et;
    return conv;
}

/* Jacobians of every task and the damped normal equations H dq = g */
static void build_normal_equations(SolverObject *s, double lambda) {
    const int nq = s->nq;
    double *H = s->H, *g = s->g;
    memset(H, 0, sizeof(double) * (size_t)nq * nq);
    memset(g, 0, sizeof(double) * (size_t)nq);
    for (int t = 0; t < s->nt; t++) {
        const double *e = s->err + 6 * t;
        if (s->ttype[t] == T_POSTURE) {
            const double *qr = s->qref + (size_t)t * nq;
            for (int i = 0; i < nq; i++) { H[i * nq + i] += s->wpost[t]; g[i] += s->wpost[t] * (qr[i] - s->q[i]); }
            continue;
        }
        int nd = s->dstart[t + 1] - s->dstart[t];
        const int *dofs = s->dofs + s->dstart[t];
        double *J = s->jbuf + s->jstart[t];
        memset(J, 0, sizeof(double) * 6 * (size_t)nd);
        const double *Ta = s->pose + 12 * s->tframe[t];
        for (int c = s->ca_start[t]; c < s->ca_start[t + 1]; c++)
            jac_add(s->kin, s->pose, s->ca_link[c], Ta + 9, J, nd, s->ca_col[c], 1.0);
        if (s->ttype[t] == T_VECTOR) { /* J = J_v,frame - J_v,root, each at its own origin */
            const double *Tb = s->pose + 12 * s->troot[t];
            for (int c = s->cb_start[t]; c < s->cb_start[t + 1]; c++)
                jac_add(s->kin, s->pose, s->cb_link[c], Tb + 9, J, nd, s->cb_col[c], -1.0);
        } else if (s->ttype[t] == T_RELATIVE) {
            /* J_rel = [Rb^T (Ja_v - Jb_v + [x]x Jb_w); Rb^T (Ja_w - Jb_w)], x = pa - pb;
             * jac_add of the root's joints evaluated at pa gives -(Jb_v + Jb_w x x) = -(Jb_v - [x]x Jb_w) */
            const double *Tb = s->pose + 12 * s->troot[t];
            for (int c = s->cb_start[t]; c < s->cb_start[t + 1]; c++)
                jac_add(s->kin, s->pose, s->cb_link[c], Ta + 9, J, nd, s->cb_col[c], -1.0);
            for (int k = 0; k < nd; k++) {
                double v[3] = {J[k], J[nd + k], J[2 * nd + k]}, w[3] = {J[3 * nd + k], J[4 * nd + k], J[5 * nd + k]};
                double rv[3], rw[3];
                mat3t_vec(Tb, v, rv);
                mat3t_vec(Tb, w, rw);
                for (int x = 0; x < 3; x++) { J[x * nd + k] = rv[x]; J[(3 + x) * nd + k] = rw[x]; }
            }
        }
        /* local M = J^T W J (lower triangle), gl = J^T W e, then scatter into H, g */
        double *restrict M = s->M, *restrict gl = s->gc;
        memset(M, 0, sizeof(double) * (size_t)nd * nd);
        memset(gl, 0, sizeof(double) * (size_t)nd);
        for (int r = 0; r < 6; r++) {
            double w = r < 3 ? s->wp[t] : s->wo[t];
            if (w == 0.0) continue;
            const double *restrict Jr = J + r * nd;
            double we = w * e[r];
            for (int a = 0; a < nd; a++) {
                double wja = w * Jr[a];
                gl[a] += Jr[a] * we;
                double *restrict Ma = M + a * nd;
                for (int b = 0; b <= a; b++) Ma[b] += wja * Jr[b];
            }
        }
        for (int a = 0; a < nd; a++) {
            int ia = dofs[a];
            g[ia] += gl[a];
            for (int b = 0; b < a; b++) {
                int ib = dofs[b];
                H[ia * nq + ib] += M[a * nd + b];
                H[ib * nq + ia] += M[a * nd + b];
            }
            H[ia * nq + ia] += M[a * nd + a];
        }
    }
    for (int i = 0; i < nq; i++) H[i * nq + i] += lambda;
}

/* The tolerances hold for the highest-cost task; a task with cost c gets tol * sqrt(c_max / c),
 * i.e. the same weighted error sqrt(c) |e| (a low-weight hint such as an elbow target is not
 * iterated to the wrist's precision). */
static void update_tolerances(SolverObject *s) {
    double mp = 0.0, mo = 0.0;
    for (int t = 0; t < s->nt; t++) {
        if (s->wp[t] > mp) mp = s->wp[t];
        if (s->wo[t] > mo) mo = s->wo[t];
    }
    for (int t = 0; t < s->nt; t++) {
        s->ttol_p[t] = s->wp[t] > 0 ? s->tol_p * sqrt(mp / s->wp[t]) : INFINITY;
        s->ttol_o[t] = s->wo[t] > 0 ? s->tol_o * sqrt(mo / s->wo[t]) : INFINITY;
    }
}

static int all_finite(const double *x, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* 1 if the rotation block of every target whose orientation is tracked is a rotation matrix
 * (|R^T R - I| <= 1e-6 elementwise, det > 0) */
static int targets_are_rotations(const SolverObject *s, const double *targets) {
    for (int t = 0; t < s->nt; t++) {
        if (s->ttype[t] == T_POSTURE || !(s->wo[t] > 0.0)) continue;
        const double *T = targets + 16 * s->ttarget[t];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j <= i; j++) {
                double d = T[i] * T[j] + T[4 + i] * T[4 + j] + T[8 + i] * T[8 + j] - (i == j ? 1.0 : 0.0);
                if (fabs(d) > 1e-6) return 0;
            }
        double det = T[0] * (T[5] * T[10] - T[6] * T[9]) - T[1] * (T[4] * T[10] - T[6] * T[8]) +
                     T[2] * (T[4] * T[9] - T[5] * T[8]);
        if (!(det > 0.0)) return 0;
    }
    return 1;
}

/* the numeric core (no Python API calls) */
static int solve_core(SolverObject *s, const double *q0, const double *targets, double *qout, double dt,
                      double *pe, double *oe, double *te) {
    const int nq = s->nq;
    s->iterations = 0;
    s->nactive = 0;
    s->qp_rounds = 0;
    if (!all_finite(q0, nq) || !all_finite(targets, 16 * (Py_ssize_t)s->ntarget) || !isfinite(dt) || dt < 0.0 ||
        !targets_are_rotations(s, targets)) {
        for (int t = 0; t < s->nt; t++) pe[t] = oe[t] = te[t] = NAN;
        return ST_INVALID_INPUT;
    }
    for (int i = 0; i < nq; i++) {
        double lo = s->lower[i], hi = s->upper[i];
        if (dt > 0.0 && s->use_vel) {
            double v = s->vel[i] * dt;
            double vlo = q0[i] + s->vlo[i] * dt, vhi = q0[i] + s->vhi[i] * dt;
            if (vlo > lo) lo = vlo;
            if (vhi < hi) hi = vhi;
            if (lo > hi) {
                /* the velocity box misses the position limits (q0 outside them, or a velocity bound
                 * that cannot stop in time): position limits win; move toward them at max speed */
                double tgt = vhi < s->lower[i] ? s->lower[i] : s->upper[i];
                double st = tgt - q0[i];
                if (st > v) st = v;
                if (st < -v) st = -v;
                lo = hi = q0[i] + st;
            }
        }
        s->lo[i] = lo; s->hi[i] = hi;
        double qi = q0[i];
        s->q[i] = qi < lo ? lo : (qi > hi ? hi : qi);
    }
    int status = ST_MAX_ITERATIONS, it = 0, stalled = 0;
    double E, E_acc = INFINITY, boost = 1.0;
    for (;;) {
        /* warm start from the previous solution: its FK is still in `pose` */
        if (!s->fk_valid || memcmp(s->q, s->q_fk, sizeof(double) * (size_t)nq) != 0) {
            kin_fk_list(s->kin, s->q, s->fk_list, s->n_fk, s->pose);
            memcpy(s->q_fk, s->q, sizeof(double) * (size_t)nq);
            s->fk_valid = 1;
        }
        int conv = task_residuals(s, targets, pe, oe, te, &E);
        if (s->ntarget == 0) conv = stalled; /* posture-only: converged when the step vanishes */
        if (conv) { status = ST_CONVERGED; break; }
        if (E > E_acc) {
            /* the step raised the error: reject it and damp 10x harder (Levenberg-Marquardt step
             * acceptance, Nocedal & Wright sec. 10.3); the loop re-evaluates the previous point */
            memcpy(s->q, s->qprev, sizeof(double) * (size_t)nq);
            if (boost < 1e12) boost *= 10.0;
            continue;
        }
        E_acc = E;
        memcpy(s->qprev, s->q, sizeof(double) * (size_t)nq);
        if (it >= s->max_iter || stalled) break;
        build_normal_equations(s, boost * (s->error_damping * E + s->damping));
        if (boost > 1.0) boost *= 0.1;
        s->nactive = 0;
        for (int c = 0; c < s->ncomp; c++) { /* the blocks are independent: one small box QP each */
            const int *idx = s->cdofs + s->cstart[c];
            int nc = s->cstart[c + 1] - s->cstart[c];
            for (int a = 0; a < nc; a++) {
                int i = idx[a];
                s->gc[a] = s->g[i];
                s->dlo[a] = s->lo[i] - s->q[i];
                s->dhi[a] = s->hi[i] - s->q[i];
                for (int b = 0; b < nc; b++) s->Hc[a * nc + b] = s->H[i * nq + idx[b]];
            }
            int nact = box_qp(s, nc, s->Hc, s->gc, s->dlo, s->dhi, s->dc);
            if (nact > 0) s->nactive += nact;
            for (int a = 0; a < nc; a++) s->dq[idx[a]] = s->dc[a];
        }
        double mx = 0.0;
        for (int i = 0; i < nq; i++) {
            double qi = s->q[i] + s->dq[i];
            s->q[i] = qi < s->lo[i] ? s->lo[i] : (qi > s->hi[i] ? s->hi[i] : qi); /* rounding guard only */
            double a = fabs(s->dq[i]);
            if (a > mx) mx = a;
        }
        it++;
        stalled = mx < s->tol_step;
    }
    if (status != ST_CONVERGED && s->nactive > 0) status = ST_LIMIT_BOUND;
    memcpy(qout, s->q, sizeof(double) * (size_t)nq);
    s->iterations = it;
    return status;
}

static PyObject *Solver_solve_into(SolverObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "solve_into(q0, targets, out, dt=0.0) takes 3 or 4 arguments");
        return NULL;
    }
    double dt = 0.0;
    if (nargs == 4 && args[3] != Py_None) {
        dt = PyFloat_AsDouble(args[3]);
        if (dt == -1.0 && PyErr_Occurred()) return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "IK solver used from two threads at once; use one solver per thread");
        return NULL;
    }
    Py_buffer bq, bt, bo;
    if (get_buffer(args[0], &bq, 'd', self->nq, 0, "q0") < 0) return NULL;
    if (get_buffer(args[1], &bt, 'd', 16 * (Py_ssize_t)self->ntarget, 0, "targets") < 0) { PyBuffer_Release(&bq); return NULL; }
    if (get_buffer(args[2], &bo, 'd', self->nq, 1, "out") < 0) { PyBuffer_Release(&bq); PyBuffer_Release(&bt); return NULL; }
    self->busy = 1;
    int st;
    double *pe = self->out_pos.buf, *oe = self->out_ori.buf, *te = self->out_task.buf;
    Py_BEGIN_ALLOW_THREADS
    st = solve_core(self, bq.buf, bt.buf, bo.buf, dt, pe, oe, te);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    self->status = st;
    PyBuffer_Release(&bq); PyBuffer_Release(&bt); PyBuffer_Release(&bo);
    return PyLong_FromLong(st);
}

static PyObject *Solver_set_posture_reference(SolverObject *self, PyObject *args) {
    int t;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iO", &t, &obj)) return NULL;
    if (self->busy) { PyErr_SetString(PyExc_RuntimeError, "IK solver is solving in another thread"); return NULL; }
    if (t < 0 || t >= self->nt || self->ttype[t] != T_POSTURE) {
        PyErr_Format(PyExc_IndexError, "task %d is not a posture task", t);
        return NULL;
    }
    Py_buffer b;
    if (get_buffer(obj, &b, 'd', self->nq, 0, "q_ref") < 0) return NULL;
    if (!all_finite(b.buf, self->nq)) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "q_ref must be finite");
        return NULL;
    }
    memcpy(self->qref + (size_t)t * self->nq, b.buf, sizeof(double) * (size_t)self->nq);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

static PyObject *Solver_set_weights(SolverObject *self, PyObject *args) {
    int t;
    double a, b;
    if (!PyArg_ParseTuple(args, "idd", &t, &a, &b)) return NULL;
    if (self->busy) { PyErr_SetString(PyExc_RuntimeError, "IK solver is solving in another thread"); return NULL; }
    if (t < 0 || t >= self->nt) { PyErr_Format(PyExc_IndexError, "task %d out of range", t); return NULL; }
    if (!(a >= 0 && b >= 0 && isfinite(a) && isfinite(b))) { PyErr_SetString(PyExc_ValueError, "costs must be finite and >= 0"); return NULL; }
    if (self->ttype[t] == T_POSTURE) self->wpost[t] = a;
    else { self->wp[t] = a; self->wo[t] = self->ttype[t] == T_VECTOR ? 0.0 : b; }
    update_tolerances(self);
    Py_RETURN_NONE;
}

/* set_position_costs(costs (nt,)): every task's position cost (a posture task's cost) in one call,
 * e.g. DexPilot's per-frame pinch weights; orientation costs unchanged */
static PyObject *Solver_set_position_costs(SolverObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1) { PyErr_SetString(PyExc_TypeError, "set_position_costs(costs) takes 1 argument"); return NULL; }
    if (self->busy) { PyErr_SetString(PyExc_RuntimeError, "IK solver is solving in another thread"); return NULL; }
    Py_buffer b;
    if (get_buffer(args[0], &b, 'd', self->nt, 0, "costs") < 0) return NULL;
    const double *c = b.buf;
    for (int t = 0; t < self->nt; t++)
        if (!(c[t] >= 0 && isfinite(c[t]))) {
            PyBuffer_Release(&b);
            PyErr_SetString(PyExc_ValueError, "costs must be finite and >= 0");
            return NULL;
        }
    for (int t = 0; t < self->nt; t++) {
        if (self->ttype[t] == T_POSTURE) self->wpost[t] = c[t];
        else self->wp[t] = c[t];
    }
    PyBuffer_Release(&b);
    update_tolerances(self);
    Py_RETURN_NONE;
}

static PyObject *Solver_set_max_iterations(SolverObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (self->busy) { PyErr_SetString(PyExc_RuntimeError, "IK solver is solving in another thread"); return NULL; }
    if (n < 0 || n > 100000) { PyErr_SetString(PyExc_ValueError, "max_iterations must be in 0..100000"); return NULL; }
    self->max_iter = (int)n;
    Py_RETURN_NONE;
}

static PyObject *Solver_set_velocity_bounds(SolverObject *self, PyObject *args) {
    PyObject *olo, *ohi;
    if (!PyArg_ParseTuple(args, "OO", &olo, &ohi)) return NULL;
    if (self->busy) { PyErr_SetString(PyExc_RuntimeError, "IK solver is solving in another thread"); return NULL; }
    Py_buffer bl, bh;
    if (get_buffer(olo, &bl, 'd', self->nq, 0, "vlo") < 0) return NULL;
    if (get_buffer(ohi, &bh, 'd', self->nq, 0, "vhi") < 0) { PyBuffer_Release(&bl); return NULL; }
    const double *l = bl.buf, *h = bh.buf;
    int ok = 1;
    for (int i = 0; i < self->nq; i++)
        if (!(l[i] <= h[i]) || l[i] == INFINITY || h[i] == -INFINITY) ok = 0; /* NaN fails too */
    if (ok) {
        memcpy(self->vlo, l, sizeof(double) * (size_t)self->nq);
        memcpy(self->vhi, h, sizeof(double) * (size_t)self->nq);
    }
    PyBuffer_Release(&bl); PyBuffer_Release(&bh);
    if (!ok) { PyErr_SetString(PyExc_ValueError, "velocity bounds must not be NaN, with vlo <= vhi, vlo < inf and vhi > -inf"); return NULL; }
    Py_RETURN_NONE;
}

static void Solver_release(SolverObject *s) {
    void *ptrs[] = {s->lower, s->upper, s->vel, s->vlo, s->vhi, s->ttype, s->tframe, s->troot, s->ttarget, s->wp, s->wo, s->wpost,
                    s->qref, s->dstart, s->dofs, s->ca_start, s->ca_link, s->ca_col, s->cb_start, s->cb_link,
                    s->cb_col, s->jstart, s->needed, s->pose, s->q, s->lo, s->hi, s->H, s->g, s->dq, s->A,
                    s->rhs, s->grad, s->dlo, s->dhi, s->jbuf, s->M, s->err, s->state, s->fidx, s->invd, s->Hc,
                    s->gc, s->dc, s->fk_list, s->cstart, s->cdofs, s->ttol_p, s->ttol_o, s->qprev, s->q_fk};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
    if (s->have_out) {
        PyBuffer_Release(&s->out_task); PyBuffer_Release(&s->out_pos); PyBuffer_Release(&s->out_ori);
        s->have_out = 0;
    }
}

static void Solver_dealloc(SolverObject *self) {
    Solver_release(self);
    Py_XDECREF(self->kin);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define ALLOC(ptr, n, T) do { if (!((ptr) = calloc((size_t)((n) > 0 ? (n) : 1), sizeof(T)))) { PyErr_NoMemory(); return -1; } } while (0)

static int Solver_init(SolverObject *self, PyObject *args, PyObject *kw) {
    PyObject *okin, *olo, *ohi, *ovel, *otype, *oframe, *oroot, *owp, *owo, *ot, *op, *oo;
    double damping, error_damping, tol_p, tol_o, tol_step;
    int max_iter, use_vel;
    if (!PyArg_ParseTuple(args, "O!OOOOOOOO(ddidddp)OOO", &KinType, &okin, &olo, &ohi, &ovel, &otype, &oframe, &oroot,
                          &owp, &owo, &damping, &error_damping, &max_iter, &tol_p, &tol_o, &tol_step, &use_vel, &ot,
                          &op, &oo))
        return -1;
    if (self->kin) { PyErr_SetString(PyExc_RuntimeError, "Solver already initialized"); return -1; }
    if (!(damping >= 0 && error_damping >= 0 && max_iter >= 0 && tol_p >= 0 && tol_o >= 0 && tol_step >= 0)) {
        PyErr_SetString(PyExc_ValueError, "damping, max_iterations and tolerances must be >= 0");
        return -1;
    }
    Py_INCREF(okin);
    self->kin = (KinObject *)okin;
    KinObject *k = self->kin;
    int nq = self->nq = k->nq, nl = self->nl = k->nl;
    Py_ssize_t nt = PyObject_Length(otype);
    if (nt < 0) return -1;
    self->nt = (int)nt;
    self->damping = damping; self->error_damping = error_damping; self->max_iter = max_iter; self->tol_p = tol_p; self->tol_o = tol_o;
    self->tol_step = tol_step; self->use_vel = use_vel;
    if (!(self->lower = copy_buffer(olo, 'd', nq, "lower")) || !(self->upper = copy_buffer(ohi, 'd', nq, "upper")) ||
        !(self->vel = copy_buffer(ovel, 'd', nq, "velocity")) || !(self->ttype = copy_buffer(otype, 'i', nt, "task_type")) ||
        !(self->tframe = copy_buffer(oframe, 'i', nt, "task_frame")) || !(self->troot = copy_buffer(oroot, 'i', nt, "task_root")) ||
        !(self->wp = copy_buffer(owp, 'd', nt, "position_cost")) || !(self->wo = copy_buffer(owo, 'd', nt, "orientation_cost")))
        return -1;
    if (get_buffer(ot, &self->out_task, 'd', nt, 1, "task_errors") < 0) return -1;
    if (get_buffer(op, &self->out_pos, 'd', nt, 1, "position_errors") < 0) { PyBuffer_Release(&self->out_task); return -1; }
    if (get_buffer(oo, &self->out_ori, 'd', nt, 1, "orientation_errors") < 0) {
        PyBuffer_Release(&self->out_task); PyBuffer_Release(&self->out_pos); return -1;
    }
    self->have_out = 1;
    ALLOC(self->vlo, nq, double); ALLOC(self->vhi, nq, double);
    for (int i = 0; i < nq; i++) {
        if (!(self->vel[i] >= 0.0)) { PyErr_Format(PyExc_ValueError, "velocity limit %d must be >= 0 (got %g)", i, self->vel[i]); return -1; }
        self->vlo[i] = -self->vel[i]; self->vhi[i] = self->vel[i];
    }
    ALLOC(self->ttarget, nt, int); ALLOC(self->ttol_p, nt, double); ALLOC(self->ttol_o, nt, double); ALLOC(self->wpost, nt, double); ALLOC(self->qref, nt * nq, double);
    ALLOC(self->dstart, nt + 1, int); ALLOC(self->ca_start, nt + 1, int); ALLOC(self->cb_start, nt + 1, int);
    ALLOC(self->jstart, nt + 1, int); ALLOC(self->needed, nl, char);
    ALLOC(self->dofs, nt * nq, int); ALLOC(self->ca_link, nt * nl, int); ALLOC(self->ca_col, nt * nl, int);
    ALLOC(self->cb_link, nt * nl, int); ALLOC(self->cb_col, nt * nl, int);
    int *mark;
    ALLOC(mark, nq, int);
    int ntarget = 0, nd_tot = 0, na = 0, nb = 0, jtot = 0;
    for (int t = 0; t < nt; t++) {
        int ty = self->ttype[t], fa = self->tframe[t], fb = self->troot[t];
        self->dstart[t] = nd_tot; self->ca_start[t] = na; self->cb_start[t] = nb; self->jstart[t] = jtot;
        int two = ty == T_RELATIVE || ty == T_VECTOR; /* tasks on two frames */
        if (ty < 0 || ty > 3 || (ty != T_POSTURE && (fa < 0 || fa >= nl)) || (two && (fb < 0 || fb >= nl))) {
            free(mark);
            PyErr_Format(PyExc_ValueError, "task %d: bad type %d or frame %d / root %d", t, ty, fa, fb);
            return -1;
        }
        if (!(self->wp[t] >= 0 && self->wo[t] >= 0)) { free(mark); PyErr_Format(PyExc_ValueError, "task %d: costs must be >= 0", t); return -1; }
        if (ty == T_POSTURE) {
            self->ttarget[t] = -1;
            self->wpost[t] = self->wp[t];
            self->wp[t] = self->wo[t] = 0.0;
            for (int i = 0; i < nq; i++) {
                double lo = self->lower[i], hi = self->upper[i];
                self->qref[(size_t)t * nq + i] = 0.0 < lo ? lo : (0.0 > hi ? hi : 0.0);
            }
            continue;
        }
        self->ttarget[t] = ntarget++;
        if (ty == T_VECTOR) self->wo[t] = 0.0; /* a vector has no orientation */
        /* compact dof list: union of the chains of frame a (and root b), sorted */
        for (int i = 0; i < nq; i++) mark[i] = -1;
        for (int pass = 0; pass < (two ? 2 : 1); pass++)
            for (int j = pass ? fb : fa; j >= 0; j = k->parent[j]) {
                self->needed[j] = 1;
                if (j > 0 && k->type[j] != 0) mark[k->qidx[j]] = 1;
            }
        int nd = 0;
        for (int i = 0; i < nq; i++)
            if (mark[i] >= 0) { mark[i] = nd; self->dofs[nd_tot + nd] = i; nd++; }
        for (int j = fa; j > 0; j = k->parent[j])
            if (k->type[j] != 0) { self->ca_link[na] = j; self->ca_col[na] = mark[k->qidx[j]]; na++; }
        if (two)
            for (int j = fb; j > 0; j = k->parent[j])
                if (k->type[j] != 0) { self->cb_link[nb] = j; self->cb_col[nb] = mark[k->qidx[j]]; nb++; }
        nd_tot += nd;
        jtot += 6 * nd;
    }
    free(mark);
    self->dstart[nt] = nd_tot; self->ca_start[nt] = na; self->cb_start[nt] = nb; self->jstart[nt] = jtot;
    self->ntarget = ntarget;
    ALLOC(self->pose, 12 * nl, double); ALLOC(self->q, nq, double); ALLOC(self->qprev, nq, double);
    ALLOC(self->q_fk, nq, double); ALLOC(self->lo, nq, double);
    ALLOC(self->hi, nq, double); ALLOC(self->H, nq * nq, double); ALLOC(self->g, nq, double);
    ALLOC(self->dq, nq, double); ALLOC(self->A, nq * nq, double); ALLOC(self->rhs, nq, double);
    ALLOC(self->grad, nq, double); ALLOC(self->dlo, nq, double); ALLOC(self->dhi, nq, double);
    ALLOC(self->jbuf, jtot, double); ALLOC(self->M, nq * nq, double); ALLOC(self->err, 6 * nt, double);
    ALLOC(self->state, nq, int); ALLOC(self->fidx, nq, int); ALLOC(self->invd, nq, double);
    ALLOC(self->Hc, nq * nq, double); ALLOC(self->gc, nq, double); ALLOC(self->dc, nq, double);
    /* constant links (fixed all the way to the base): computed once here, skipped per iteration */
    char *cst;
    ALLOC(cst, nl, char);
    ALLOC(self->fk_list, nl, int);
    kin_fk(k, self->q, NULL, self->pose);
    self->n_fk = 0;
    for (int i = 0; i < nl; i++) {
        cst[i] = i == 0 || (k->type[i] == 0 && cst[k->parent[i]]);
        if (self->needed[i] && !cst[i]) self->fk_list[self->n_fk++] = i;
    }
    free(cst);
    /* independent blocks: union-find over the dof lists of the frame tasks */
    int *uf, *root_comp;
    ALLOC(uf, nq, int);
    for (int i = 0; i < nq; i++) uf[i] = i;
    for (int t = 0; t < nt; t++)
        for (int a = self->dstart[t] + 1; a < self->dstart[t + 1]; a++) {
            int x = self->dofs[self->dstart[t]], y = self->dofs[a];
            while (uf[x] != x) x = uf[x];
            while (uf[y] != y) y = uf[y];
            if (x != y) uf[y < x ? x : y] = y < x ? y : x;
        }
    if (!(root_comp = calloc((size_t)(nq > 0 ? nq : 1), sizeof(int)))) { free(uf); PyErr_NoMemory(); return -1; }
    ALLOC(self->cstart, nq + 1, int); ALLOC(self->cdofs, nq, int);
    for (int i = 0; i < nq; i++) root_comp[i] = -1;
    int nc = 0, pos = 0;
    for (int i = 0; i < nq; i++) { int x = i; while (uf[x] != x) x = uf[x]; uf[i] = x; }
    for (int i = 0; i < nq; i++)
        if (uf[i] == i) root_comp[i] = nc++;
    self->ncomp = nc;
    for (int c = 0; c < nc; c++) {
        self->cstart[c] = pos;
        for (int i = 0; i < nq; i++)
            if (root_comp[uf[i]] == c) self->cdofs[pos++] = i;
    }
    self->cstart[nc] = pos;
    free(uf); free(root_comp);
    update_tolerances(self);
    self->status = -1;
    return 0;
}

static PyMethodDef Solver_methods[] = {
    {"solve_into", (PyCFunction)(void (*)(void))Solver_solve_into, METH_FASTCALL,
     "solve_into(q0, targets, out, dt=0.0) -> status int. q0, out: float64 (nq,); targets: float64 "
     "(ntarget, 4, 4). Errors go to the arrays given at construction; iterations to .iterations."},
    {"set_posture_reference", (PyCFunction)Solver_set_posture_reference, METH_VARARGS,
     "set_posture_reference(task_index, q_ref (nq,))"},
    {"set_weights", (PyCFunction)Solver_set_weights, METH_VARARGS,
     "set_weights(task_index, position_cost_or_cost, orientation_cost)"},
    {"set_position_costs", (PyCFunction)(void (*)(void))Solver_set_position_costs, METH_FASTCALL,
     "set_position_costs(costs (nt,)): position cost of every task (posture: its cost), finite >= 0"},
    {"set_max_iterations", (PyCFunction)Solver_set_max_iterations, METH_O,
     "set_max_iterations(n): Gauss-Newton steps per solve from the next solve on (0..100000)"},
    {"set_velocity_bounds", (PyCFunction)Solver_set_velocity_bounds, METH_VARARGS,
     "set_velocity_bounds(vlo (nq,), vhi (nq,)): signed velocity bounds (rad/s) of the next solves' box "
     "[q0 + vlo*dt, q0 + vhi*dt] (default -/+ velocity); not NaN, vlo <= vhi"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef Solver_members[] = {
    {"iterations", T_INT, offsetof(SolverObject, iterations), READONLY, "iterations of the last solve"},
    {"status", T_INT, offsetof(SolverObject, status), READONLY, "status of the last solve"},
    {"nactive", T_INT, offsetof(SolverObject, nactive), READONLY, "variables at a bound in the last step"},
    {"busy", T_INT, offsetof(SolverObject, busy), READONLY, "1 while a solve runs (GIL released)"},
    {"qp_rounds", T_INT, offsetof(SolverObject, qp_rounds), READONLY, "box-QP rounds (factorizations) in the last solve"},
    {"nblocks", T_INT, offsetof(SolverObject, ncomp), READONLY, "independent blocks of joints"},
    {"ntarget", T_INT, offsetof(SolverObject, ntarget), READONLY, "number of target poses per solve"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject SolverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "robot_capture.kinematics._ik.Solver",
    .tp_basicsize = sizeof(SolverObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Solver(kin, lower, upper, velocity, task_type, task_frame, task_root, position_cost, "
              "orientation_cost, (damping, error_damping, max_iterations, tol_p, tol_o, tol_step, use_velocity), "
              "task_errors_out, position_errors_out, orientation_errors_out)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Solver_init,
    .tp_dealloc = (destructor)Solver_dealloc,
    .tp_methods = Solver_methods,
    .tp_members = Solver_members,
};

static struct PyModuleDef ikmodule = {PyModuleDef_HEAD_INIT, "_ik",
                                      "C core of robot_capture.kinematics: FK, Jacobians, multi-task DLS IK.", -1,
                                      NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ik(void) {
    if (PyType_Ready(&KinType) < 0 || PyType_Ready(&SolverType) < 0) return NULL;
    PyObject *m = PyModule_Create(&ikmodule);
    if (!m) return NULL;
    Py_INCREF(&KinType);
    Py_INCREF(&SolverType);
    if (PyModule_AddObject(m, "Kinematics", (PyObject *)&KinType) < 0 ||
        PyModule_AddObject(m, "Solver", (PyObject *)&SolverType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "CONVERGED", ST_CONVERGED);
    PyModule_AddIntConstant(m, "MAX_ITERATIONS", ST_MAX_ITERATIONS);
    PyModule_AddIntConstant(m, "LIMIT_BOUND", ST_LIMIT_BOUND);
    PyModule_AddIntConstant(m, "INVALID_INPUT", ST_INVALID_INPUT);
    return m;
}
