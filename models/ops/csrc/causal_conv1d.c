/* Causal depthwise 1-D convolution with an optional SiLU, forward and backward, CPU float32.
 *
 *   pre[b, d, t] = bias[d] + sum_k w[d, k] x[b, d, t - (W-1) + k]     (x = 0 before t = 0)
 *   out = silu(pre) or pre
 *
 * Layout: x, out, dout, dx: (B, D, L) contiguous; w: (D, W); bias: (D,) or NULL.
 * rev_len: (B,) int64 or NULL. Given, each row is convolved in scan order, reversed within
 * rev_len[b] samples (fast_math.h), and the result put back in time order: the causal conv of the
 * BiMamba's backward direction, without flipped copies of the input and output.
 * One row (b, d) at a time, OpenMP over rows: the row stays in L1 for the W shifted passes and the
 * activation, where F.conv1d writes a padded output and SiLU reads it back. The backward recomputes
 * pre (W multiply-adds per sample) instead of saving it. dw and dbias come back per row, (B, D, W)
 * and (B, D), and the caller sums them over B: no shared accumulators, no races, the same result
 * whatever the thread schedule.
 */
#include <stdlib.h>

#include "fast_math.h"

/* pre for one row: bias, then one vectorised pass per tap. */
INLINE void row_pre(i64 L, i64 W, const float *restrict x, const float *restrict w, float bias,
                    float *restrict pre) {
#pragma omp simd
    for (i64 t = 0; t < L; t++) pre[t] = bias;
    for (i64 k = 0; k < W; k++) {
        const i64 shift = W - 1 - k;
        const float wk = w[k];
#pragma omp simd
        for (i64 t = shift; t < L; t++) pre[t] += wk * x[t - shift];
    }
}

int cc_fwd_f32(const float *x, const float *w, const float *bias, const i64 *rev_len, float *out,
               i64 batch, i64 dim, i64 L, i64 W, int silu, int nthreads) {
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        float *buf = rev_len ? malloc(sizeof(float) * 2 * (L > 0 ? L : 1)) : NULL;  /* x | out */
        if (rev_len && !buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < batch * dim; r++) {
            if (rev_len && !buf) continue;
            const i64 d = r % dim, n = rev_len ? rev_len[r / dim] : -1;
            float *o = row_work(out + r * L, n, buf + L);
            row_pre(L, W, row_in(x + r * L, L, n, buf), w + d * W, bias ? bias[d] : 0.f, o);
            if (silu) {
#pragma omp simd
                for (i64 t = 0; t < L; t++) o[t] = o[t] * sigmoid(o[t]);
            }
            row_out(out + r * L, o, L, n);
        }
        free(buf);
    }
    return failed;
}

/* g = dL/dpre (through the SiLU: silu'(p) = s (1 + p (1 - s)), s = sigmoid(p)), then
 *   dbias = sum_t g_t ;  dw_k = sum_t g_t x_{t - (W-1) + k} ;  dx_s = sum_k w_k g_{s + (W-1) - k}. */
int cc_bwd_f32(const float *x, const float *w, const float *bias, const i64 *rev_len,
               const float *dout, float *dx, float *dw_row, float *dbias_row, i64 batch, i64 dim,
               i64 L, i64 W, int silu, int nthreads) {
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        float *g = malloc(sizeof(float) * 4 * (L > 0 ? L : 1));  /* g | x, dout, dx in scan order */
        if (!g) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < batch * dim; r++) {
            if (!g) continue;
            const i64 d = r % dim, n = rev_len ? rev_len[r / dim] : -1;
            const float *xr = row_in(x + r * L, L, n, g + L), *gr = row_in(dout + r * L, L, n, g + 2 * L);
            const float *wd = w + d * W;
            if (silu) {
                row_pre(L, W, xr, wd, bias ? bias[d] : 0.f, g);
#pragma omp simd
                for (i64 t = 0; t < L; t++) {
                    const float s = sigmoid(g[t]);
                    g[t] = gr[t] * s * (1.f + g[t] * (1.f - s));
                }
            } else {
                memcpy(g, gr, sizeof(float) * L);
            }
            float db = 0.f;
#pragma omp simd reduction(+ : db)
            for (i64 t = 0; t < L; t++) db += g[t];
            dbias_row[r] = db;
            float *dxr = row_work(dx + r * L, n, g + 3 * L);
#pragma omp simd
            for (i64 s = 0; s < L; s++) dxr[s] = 0.f;
            for (i64 k = 0; k < W; k++) {
                const i64 shift = W - 1 - k;
                const float wk = w[d * W + k];
                float acc = 0.f;
#pragma omp simd reduction(+ : acc)
                for (i64 t = shift; t < L; t++) acc += g[t] * xr[t - shift];
                dw_row[r * W + k] = acc;
#pragma omp simd
                for (i64 s = 0; s < L - shift; s++) dxr[s] += wk * g[s + shift];
            }
            row_out(dx + r * L, dxr, L, n);
        }
        free(g);
    }
    return failed;
}
