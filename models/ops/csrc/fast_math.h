/* Shared by the compiled CPU ops: the index type, forced inlining, and an exp that vectorises. */
#ifndef EEGMAMBA_FAST_MATH_H
#define EEGMAMBA_FAST_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef int64_t i64;

#define INLINE static inline __attribute__((always_inline))

/* 2^x and exp(x) for float, inlined so that `omp simd` loops vectorise them in registers. glibc's vector
 * expf (libmvec) is a function call per 4 lanes and its scalar expf one per value; in the recurrence,
 * which takes one exponential per state and step, those calls were most of the scan's time.
 * x = n + f with n an integer and |f| <= 1/2; 2^f by a degree-5 polynomial fitted for relative error
 * (1.8e-7, 1.5 ulp, evaluated in float), times 2^n built in the exponent bits. Arguments below -126
 * give ~1e-38 instead of a denormal or 0 (the scan multiplies a state by it: far below the fp32
 * resolution of any sum), above 127 give 2^127 instead of inf. */
INLINE float fast_exp2f(float x) {
    x = fminf(fmaxf(x, -126.0f), 127.0f);
    const float n = rintf(x), f = x - n;  /* one rounding instruction; floorf(x + 0.5f) adds an add */
    float p = 1.3276708815e-3f;
    p = p * f + 9.6715090248e-3f;
    p = p * f + 5.5506925124e-2f;
    p = p * f + 2.4022242173e-1f;
    p = p * f + 6.9314700887e-1f;
    p = p * f + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#define LOG2E 1.44269504088896341f

/* exp(x) = 2^(x log2 e): the product's rounding is a relative error of |x| 6e-8 in the result, the
 * same as the rounding any float argument already carries. */
INLINE float fast_expf(float x) { return fast_exp2f(x * LOG2E); }

/* Exponent arguments are clamped (inside fast_expf) so that exp never returns inf: under -ffast-math,
 * 1/(1+inf) may be computed as a reciprocal estimate plus a Newton step, and that gives 0 * inf = NaN. */
INLINE float sigmoid(float x) { return 1.f / (1.f + fast_expf(-x)); }
/* Time order of a row. The backward direction of a BiMamba scans each row reversed within its valid
 * length n, the pads after n keeping their places: position t reads src[n-1-t] for t < n and src[t]
 * after. n < 0 means the forward order. The permutation is its own inverse, so the same copy takes a
 * row into scan order (row_in) and a result back (row_out); reversing inside the kernels saves the
 * model a flipped (B, D, L) copy of every input and output. */
INLINE void row_permute(float *restrict dst, const float *restrict src, i64 L, i64 n) {
    for (i64 t = 0; t < n; t++) dst[t] = src[n - 1 - t];
    if (L > n) memcpy(dst + n, src + n, sizeof(float) * (L - n));
}

/* The row in scan order: src itself (forward) or its permuted copy in buf. */
INLINE const float *row_in(const float *src, i64 L, i64 n, float *buf) {
    if (n < 0) return src;
    row_permute(buf, src, L, n);
    return buf;
}

/* Where to compute a row that must end up at dst in time order: dst itself (forward) or buf. */
INLINE float *row_work(float *dst, i64 n, float *buf) { return n < 0 ? dst : buf; }

/* After computing into row_work's buffer: put the row back in time order. */
INLINE void row_out(float *dst, const float *work, i64 L, i64 n) {
    if (n >= 0) row_permute(dst, work, L, n);
}

#endif
