/* 1-D max pooling with indices, forward and backward, CPU float32, for training.
 *
 * Why: in training PyTorch runs max_pool1d through its generic 2-D kernel with indices, about 10x the
 * time of the no-grad pooling, and the tokenizer pools four times per window. This is the same
 * operation, row by row. Semantics are PyTorch's CPU max pooling:
 *   out[j] = max of x[j*s - p .. j*s - p + k - 1] within [0, L) (the padding never wins),
 *   idx[j] = the first position holding that maximum (strict >, scanning left to right); a NaN wins
 *            (and the first NaN stays); a window of -inf keeps its first in-range position.
 * Layout: x, dx (rows, L); out, dout, idx (rows, L_out), idx int64 positions within the row.
 * OpenMP over rows; the backward adds each output's gradient at its index (windows overlap when
 * k > s), one row per task, so no two threads write the same row.
 */
#include <stdint.h>
#include <string.h>

typedef int64_t i64;

/* NaN must win as in PyTorch: these two functions are compiled without -ffinite-math-only (which
 * -ffast-math implies), so that the x != x test is kept. */
#define KEEP_NAN __attribute__((optimize("no-finite-math-only")))

KEEP_NAN int mp_fwd_f32(const float *x, float *out, i64 *idx, i64 rows, i64 L, i64 L_out, i64 k,
                        i64 s, i64 p, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (i64 r = 0; r < rows; r++) {
        const float *xr = x + r * L;
        for (i64 j = 0; j < L_out; j++) {
            i64 lo = j * s - p, hi = lo + k;
            if (lo < 0) lo = 0;
            if (hi > L) hi = L;
            i64 best = lo;
            float m = -__builtin_inff();
            for (i64 t = lo; t < hi; t++) {
                const float v = xr[t];
                if (v > m || v != v) {
                    m = v;
                    best = t;
                    if (v != v) break;
                }
            }
            out[r * L_out + j] = m;
            idx[r * L_out + j] = best;
        }
    }
    return 0;
}

int mp_bwd_f32(const float *dout, const i64 *idx, float *dx, i64 rows, i64 L, i64 L_out,
               int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (i64 r = 0; r < rows; r++) {
        float *dxr = dx + r * L;
        memset(dxr, 0, sizeof(float) * L);
        for (i64 j = 0; j < L_out; j++) dxr[idx[r * L_out + j]] += dout[r * L_out + j];
    }
    return 0;
}
