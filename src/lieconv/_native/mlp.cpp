// The kernel MLP's chunk loops in one call per layer (lieconv.native.mlp_forward / mlp_backward):
// the row passes of swish.cpp and the BLAS sgemm that torch itself calls (its address handed over
// by lieconv_set_sgemm), chunk by chunk, so that a chunk's temporaries stay in cache and no Python
// runs between the passes.  float32, row-major, rows of each matrix contiguous.
//
//   forward:   x = swish(h a + c) w (or h itself), t = x W^T (+ b), S1 += sum_r t, S2 += sum_r t^2
//   backward:  dt = norm_grad(G, t) (or G), Gn = swish'(dt W) w with x again, acc^T += x^T dt, accb += sum_r dt
#include <cstdint>

#include "common.h"

extern "C" {
void lieconv_swish(const float* t, int64_t rows, int64_t d, const float* scale, const float* shift, const float* w,
                   float* x);
void lieconv_moments(const float* t, int64_t rows, int64_t d, double* s1, double* s2);
void lieconv_swish_grad(const float* g, const float* t, int64_t rows, int64_t d, const float* scale,
                        const float* shift, const float* w, float* gout, float* x, double* ga, double* gc);
void lieconv_norm_grad(const float* g, const float* t, int64_t rows, int64_t d, const float* a, const float* d1,
                       const float* d2, const float* w, float* out);
}

namespace {

// the Fortran BLAS interface (column-major, 32-bit sizes)
typedef void (*Sgemm)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                      const int*, const float*, const int*, const float*, float*, const int*);
Sgemm sgemm = nullptr;

// row-major C (m x n, ldc) = beta C + op(A) op(B), op(A) (m x k) = A or, with ta, A^T of a (k x m)
// A; op(B) (k x n) likewise: the column-major product C^T = op(B)^T op(A)^T
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  const float one = 1.0f;
  sgemm(tb ? "T" : "N", ta ? "T" : "N", &M, &N, &K, &one, B, &lb, A, &la, &beta, C, &lc);
}

}  // namespace

extern "C" {

void lieconv_set_sgemm(void* f) { sgemm = reinterpret_cast<Sgemm>(f); }

// t (R x dout) = x W^T (+ bias) with x = swish(h scale + shift) * w where act, else h (R x din);
// with s1 the column sums of t and t^2 added to (s1, s2).  t may be h when act and din == dout.
void lieconv_mlp_forward(const float* h, int64_t R, int64_t din, int act, const float* scale, const float* shift,
                         const float* w, const float* weight, int64_t dout, const float* bias, double* s1, double* s2,
                         float* t, int64_t chunk, float* scratch) {
  for (int64_t a = 0; a < R; a += chunk) {
    const int64_t rows = R - a < chunk ? R - a : chunk;
    const float* x = h + a * din;
    if (act) {
      lieconv_swish(x, rows, din, scale, shift, w ? w + a : nullptr, scratch);
      x = scratch;
    }
    float* tc = t + a * dout;
    if (bias)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < dout; ++j) tc[r * dout + j] = bias[j];
    gemm(false, true, rows, dout, din, x, din, weight, din, bias ? 1.0f : 0.0f, tc, dout);
    if (s1) lieconv_moments(tc, rows, dout, s1, s2);
  }
}

// One layer of the backward pass over the R rows: G (R x dout) holds dL/dy_l and becomes dL/dt_l
// (norm_grad with t_l, scale, d1, d2 where d1 is given); below (R x din, the layer's input t_(l-1)
// under its affine map (bscale, bshift) and Swish, or null for the first layer, whose input is x0):
// Gn (R x din) = swish'(dt W) * w (may be t_l's storage when din == dout: each chunk is read
// first), with the column sums of Gn t_(l-1) and Gn added to (ns1, ns2) where given; accT
// (din x dout) += x^T dt and accb (dout) += sum_r dt where given.  scratch: chunk x din floats.
void lieconv_mlp_backward(float* G, const float* tl, int64_t R, int64_t dout, const float* scale, const float* d1,
                          const float* d2, const float* w, const float* weight, int64_t din, const float* below,
                          const float* bscale, const float* bshift, float* Gn, double* ns1, double* ns2,
                          const float* x0, float* accT, float* accb, int64_t chunk, float* scratch) {
  for (int64_t a = 0; a < R; a += chunk) {
    const int64_t rows = R - a < chunk ? R - a : chunk;
    float* dt = G + a * dout;
    const float* wc = w ? w + a : nullptr;
    if (d1) lieconv_norm_grad(dt, tl + a * dout, rows, dout, scale, d1, d2, wc, dt);
    const float* x = x0 ? x0 + a * din : scratch;
    if (below) {
      float* gn = Gn + a * din;
      gemm(false, false, rows, din, dout, dt, dout, weight, din, 0.0f, gn, din);
      lieconv_swish_grad(gn, below + a * din, rows, din, bscale, bshift, wc, gn, scratch, ns1, ns2);
    }
    gemm(true, false, din, dout, rows, x, din, dt, dout, 1.0f, accT, dout);
    if (accb)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < dout; ++j) accb[j] += dt[r * dout + j];
  }
}

}  // extern "C"
