/* Selective scan (Mamba-1) forward and backward for CPU, float32.
 *
 * Plain C on purpose: no torch headers, so it compiles in well under a second on first use
 * (models/ops/cpu_kernel.py builds it into a per-user cache and loads it with ctypes).
 *
 * Layout (all contiguous float32, row-major):
 *   u, delta, z, out, dout, du, ddelta, dz : (B, D, L)   one "row" = one (b, d) pair
 *   A                                      : (D, N)
 *   Bt, Ct                                 : (B, L, N)   B and C transposed so that the N values
 *                                                        of one time step are contiguous (SIMD over N)
 *   Dskip, delta_bias                      : (D,)        may be NULL (as may z)
 *   rev_len                                : (B,) int64  NULL: scan forward in time. Otherwise scan
 *                                                        each row reversed within rev_len[b] samples
 *                                                        (fast_math.h, row_permute): u, delta, z and
 *                                                        the outputs stay in time order, Bt and Ct
 *                                                        (and dBt, dCt) come in scan order.
 *
 * Recurrence, per row and state n:
 *   dt_t = softplus(delta_t + bias)            (or without softplus)
 *   x_t  = exp(dt_t A_n) x_{t-1} + dt_t B_t[n] u_t
 *   y_t  = sum_n C_t[n] x_t[n] + D u_t ;  out_t = y_t * silu(z_t)
 *
 * Parallelism: OpenMP over rows, so that B = 1 still uses every thread. The backward reduces
 * dB and dC over D; instead of atomics it gives each (b, channel block) task its own
 * accumulator slice, and the caller sums the slices. dA, dD, d(delta_bias) are returned per
 * (b, d) row and summed over b by the caller. Nothing is shared between tasks, so there are no
 * races, and the result does not depend on thread scheduling.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fast_math.h"

INLINE float softplus(float x) { return x <= 20.f ? log1pf(fast_expf(fminf(x, 20.f))) : x; } /* as torch */
INLINE float softplus_grad(float x) { return x <= 20.f ? sigmoid(x) : 1.f; }

/* dt_t for one row, vectorised over time. */
INLINE void row_dt(i64 L, const float *restrict delta, float bias, int use_softplus,
                   float *restrict dt) {
    if (use_softplus) {
#pragma omp simd
        for (i64 t = 0; t < L; t++) dt[t] = softplus(delta[t] + bias);
    } else {
#pragma omp simd
        for (i64 t = 0; t < L; t++) dt[t] = delta[t] + bias;
    }
}

/* The recurrence for one row: y_t = <C_t, x_t>. If X, Abar are given, stores x_t and
 * exp(dt_t A) for the backward pass (L*N each). `N` is a compile-time constant at the hot
 * call sites, so the state lives in registers and the loop over n is one or two vectors. */
INLINE void row_scan(i64 L, const int N, const float *restrict dt, const float *restrict u,
                     const float *restrict A, const float *restrict Bt, const float *restrict Ct,
                     float *restrict y, float *restrict x, float *restrict X,
                     float *restrict Abar) {
    float A2[N];  /* A log2(e): exp(dt A) = 2^(dt A2), one multiply less per state and step */
    for (int n = 0; n < N; n++) x[n] = 0.f, A2[n] = A[n] * LOG2E;
    for (i64 t = 0; t < L; t++) {
        const float d = dt[t], du = d * u[t];
        const float *restrict b = Bt + t * N, *restrict c = Ct + t * N;
        float acc = 0.f;
        if (X) {
            float *restrict xs = X + t * N, *restrict as = Abar + t * N;
#pragma omp simd reduction(+ : acc)
            for (int n = 0; n < N; n++) {
                const float a = fast_exp2f(d * A2[n]);
                const float xn = a * x[n] + du * b[n];
                x[n] = xn;
                xs[n] = xn;
                as[n] = a;
                acc += c[n] * xn;
            }
        } else {
#pragma omp simd reduction(+ : acc)
            for (int n = 0; n < N; n++) {
                const float xn = fast_exp2f(d * A2[n]) * x[n] + du * b[n];
                x[n] = xn;
                acc += c[n] * xn;
            }
        }
        y[t] = acc;
    }
}

/* Dispatch to a constant N for the usual d_state values (mamba default 16). */
static void row_scan_any(i64 L, int N, const float *dt, const float *u, const float *A,
                         const float *Bt, const float *Ct, float *y, float *x, float *X,
                         float *Abar) {
    switch (N) {
    case 16: row_scan(L, 16, dt, u, A, Bt, Ct, y, x, X, Abar); break;
    case 8: row_scan(L, 8, dt, u, A, Bt, Ct, y, x, X, Abar); break;
    case 32: row_scan(L, 32, dt, u, A, Bt, Ct, y, x, X, Abar); break;
    default: row_scan(L, N, dt, u, A, Bt, Ct, y, x, X, Abar); break;
    }
}

int ss_fwd_f32(const float *u, const float *delta, const float *A, const float *Bt,
               const float *Ct, const float *Dskip, const float *z, const float *delta_bias,
               const i64 *rev_len, float *out, float *last_state, i64 batch, i64 dim, i64 L, i64 N,
               int use_softplus, int nthreads) {
    const i64 rows = batch * dim;
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        /* dt | y | x (N) | u, delta, z, out in scan order (reversed rows only) */
        float *buf = malloc(sizeof(float) * (6 * L + N));
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
        /* Dynamic, a few rows at a time: on a shared machine a preempted thread's rows are
         * picked up by the others instead of everyone waiting for it at the barrier. */
#pragma omp for schedule(dynamic, 4)
        for (i64 r = 0; r < rows; r++) {
            if (!buf) continue;
            const i64 b = r / dim, d = r % dim;
            float *dt = buf, *y = buf + L, *x = buf + 2 * L, *scratch = buf + 2 * L + N;
            const i64 n = rev_len ? rev_len[b] : -1;
            const float *ur = row_in(u + r * L, L, n, scratch);
            row_dt(L, row_in(delta + r * L, L, n, scratch + L), delta_bias ? delta_bias[d] : 0.f,
                   use_softplus, dt);
            row_scan_any(L, (int)N, dt, ur, A + d * N, Bt + b * L * N, Ct + b * L * N, y, x,
                         NULL, NULL);
            const float skip = Dskip ? Dskip[d] : 0.f;
            float *o = row_work(out + r * L, n, scratch + 3 * L);
            if (z) {
                const float *zr = row_in(z + r * L, L, n, scratch + 2 * L);
#pragma omp simd
                for (i64 t = 0; t < L; t++) o[t] = (y[t] + skip * ur[t]) * zr[t] * sigmoid(zr[t]);
            } else {
#pragma omp simd
                for (i64 t = 0; t < L; t++) o[t] = y[t] + skip * ur[t];
            }
            row_out(out + r * L, o, L, n);
            if (last_state) memcpy(last_state + r * N, x, sizeof(float) * N);
        }
        free(buf);
    }
    return failed;
}

/* Reverse-time adjoint for one row. h_t = dL/dx_t (through every later step):
 *   h_t = dy_t C_t + exp(dt_{t+1} A) h_{t+1}
 * then, with a_t = exp(dt_t A):
 *   d dt_t += sum_n h_t x_{t-1} a_t A + h_t B_t u_t ;   dA += h_t x_{t-1} a_t dt_t
 *   du_t   += sum_n h_t dt_t B_t ;  dB_t += h_t dt_t u_t ;  dC_t += dy_t x_t
 * dB, dC go to the task's own accumulators (dBacc, dCacc: L x N). */
INLINE void row_adjoint(i64 L, const int N, const float *restrict dt, const float *restrict u,
                        const float *restrict dy, const float *restrict A,
                        const float *restrict Bt, const float *restrict Ct,
                        const float *restrict X, const float *restrict Abar,
                        const float *restrict zeros, const float *restrict dlast,
                        float *restrict carry,
                        float *restrict dA, float *restrict dBacc, float *restrict dCacc,
                        float *restrict ddt, float *restrict du_scan) {
    /* carry = exp(dt_{t+1} A) h_{t+1}; at t = L-1 it is the gradient of the returned last state. */
    for (int n = 0; n < N; n++) carry[n] = dlast ? dlast[n] : 0.f, dA[n] = 0.f;
    for (i64 t = L - 1; t >= 0; t--) {
        const float g = dy[t], d = dt[t], ut = u[t];
        const float *restrict b = Bt + t * N, *restrict c = Ct + t * N;
        const float *restrict xt = X + t * N, *restrict at = Abar + t * N;
        const float *restrict xp = t > 0 ? X + (t - 1) * N : zeros;
        float *restrict dBt = dBacc + t * N, *restrict dCt = dCacc + t * N;
        float s_hb = 0.f, s_ta = 0.f;
#pragma omp simd reduction(+ : s_hb, s_ta)
        for (int n = 0; n < N; n++) {
            const float h = g * c[n] + carry[n];
            const float term = h * xp[n] * at[n];
            dCt[n] += g * xt[n];
            dBt[n] += h * (d * ut);
            dA[n] += term * d;
            s_ta += term * A[n];
            s_hb += h * b[n];
            carry[n] = at[n] * h;
        }
        ddt[t] = s_ta + s_hb * ut;
        du_scan[t] = s_hb * d;
    }
}

static void row_adjoint_any(i64 L, int N, const float *dt, const float *u, const float *dy,
                            const float *A, const float *Bt, const float *Ct, const float *X,
                            const float *Abar, const float *zeros, const float *dlast,
                            float *carry, float *dA,
                            float *dBacc, float *dCacc, float *ddt, float *du_scan) {
    switch (N) {
    case 16: row_adjoint(L, 16, dt, u, dy, A, Bt, Ct, X, Abar, zeros, dlast, carry, dA, dBacc, dCacc, ddt, du_scan); break;
    case 8: row_adjoint(L, 8, dt, u, dy, A, Bt, Ct, X, Abar, zeros, dlast, carry, dA, dBacc, dCacc, ddt, du_scan); break;
    case 32: row_adjoint(L, 32, dt, u, dy, A, Bt, Ct, X, Abar, zeros, dlast, carry, dA, dBacc, dCacc, ddt, du_scan); break;
    default: row_adjoint(L, N, dt, u, dy, A, Bt, Ct, X, Abar, zeros, dlast, carry, dA, dBacc, dCacc, ddt, du_scan); break;
    }
}

/* Backward. dout: (B, D, L); dlast: (B, D, N) gradient of the last state, or NULL.
 * Work is split into batch * n_blocks tasks (b, block of channels); task (b, p) owns the slices
 * dB_part[p, b], dC_part[p, b] of the (n_blocks, B, L, N) accumulators.
 * Per-row outputs: du, ddelta, dz (B, D, L); dA_row (B, D, N); dD_row, dbias_row (B, D).
 * The forward states of a row are recomputed into a per-thread buffer (L x N), never stored
 * for the whole batch. */
int ss_bwd_f32(const float *u, const float *delta, const float *A, const float *Bt,
               const float *Ct, const float *Dskip, const float *z, const float *delta_bias,
               const i64 *rev_len, const float *dout, const float *dlast, float *du, float *ddelta,
               float *dz, float *dA_row,
               float *dB_part, float *dC_part, float *dD_row, float *dbias_row, i64 batch,
               i64 dim, i64 L, i64 N, int use_softplus, i64 n_blocks, int nthreads) {
    const i64 tasks = batch * n_blocks;
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        /* dt | y(->dy) | ddt | du_scan : L each ; X | Abar : L*N each ; x | zeros | carry : N ;
         * u, delta, dout, z, du, ddelta, dz in scan order (reversed rows only) : L each */
        float *buf = malloc(sizeof(float) * (11 * L + 2 * L * N + 3 * N));
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (i64 k = 0; k < tasks; k++) {
            if (!buf) continue;
            const i64 b = k / n_blocks, p = k % n_blocks;
            const i64 d0 = p * dim / n_blocks, d1 = (p + 1) * dim / n_blocks;
            float *dt = buf, *y = buf + L, *ddt = buf + 2 * L, *du_scan = buf + 3 * L;
            float *X = buf + 4 * L, *Abar = X + L * N;
            float *x = Abar + L * N, *zeros = x + N, *carry = zeros + N, *scratch = carry + N;
            const i64 n = rev_len ? rev_len[b] : -1;
            const float *Btb = Bt + b * L * N, *Ctb = Ct + b * L * N;
            float *dBacc = dB_part + (p * batch + b) * L * N;  /* slot (p, b) */
            float *dCacc = dC_part + (p * batch + b) * L * N;
            memset(dBacc, 0, sizeof(float) * L * N);
            memset(dCacc, 0, sizeof(float) * L * N);
            memset(zeros, 0, sizeof(float) * N);
            for (i64 d = d0; d < d1; d++) {
                const i64 r = b * dim + d;
                const float *ur = row_in(u + r * L, L, n, scratch);
                const float *dr = row_in(delta + r * L, L, n, scratch + L);
                const float *gr = row_in(dout + r * L, L, n, scratch + 2 * L);
                const float bias = delta_bias ? delta_bias[d] : 0.f;
                const float skip = Dskip ? Dskip[d] : 0.f;
                row_dt(L, dr, bias, use_softplus, dt);
                row_scan_any(L, (int)N, dt, ur, A + d * N, Btb, Ctb, y, x, X, Abar);
                /* Gate: out = (y + D u) * silu(z).  y becomes dy (the gradient at y). */
                if (z) {
                    const float *zr = row_in(z + r * L, L, n, scratch + 3 * L);
                    float *dzr = row_work(dz + r * L, n, scratch + 6 * L);
#pragma omp simd
                    for (i64 t = 0; t < L; t++) {
                        const float s = sigmoid(zr[t]), yfull = y[t] + skip * ur[t];
                        dzr[t] = gr[t] * yfull * s * (1.f + zr[t] * (1.f - s));
                        y[t] = gr[t] * zr[t] * s;
                    }
                    row_out(dz + r * L, dzr, L, n);
                } else {
                    memcpy(y, gr, sizeof(float) * L);
                }
                row_adjoint_any(L, (int)N, dt, ur, y, A + d * N, Btb, Ctb, X, Abar, zeros,
                                dlast ? dlast + r * N : NULL, carry, dA_row + r * N, dBacc, dCacc, ddt, du_scan);
                float *dur = row_work(du + r * L, n, scratch + 4 * L);
                float *ddr = row_work(ddelta + r * L, n, scratch + 5 * L);
                float dD = 0.f, dbias = 0.f;
#pragma omp simd reduction(+ : dD, dbias)
                for (i64 t = 0; t < L; t++) {
                    dur[t] = du_scan[t] + y[t] * skip;
                    dD += y[t] * ur[t];
                    const float g = use_softplus ? ddt[t] * softplus_grad(dr[t] + bias) : ddt[t];
                    ddr[t] = g;
                    dbias += g;
                }
                row_out(du + r * L, dur, L, n);
                row_out(ddelta + r * L, ddr, L, n);
                dD_row[r] = dD;
                dbias_row[r] = dbias;
            }
        }
        free(buf);
    }
    return failed;
}
