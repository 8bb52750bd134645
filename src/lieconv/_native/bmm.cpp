// Batched products of small matrices (lieconv.native.bmm): the dense LieConv aggregation's
// o = s g and its derivatives, e.g. 200 products of (6 x 96) @ (96 x 96) per call, where a BLAS call
// per matrix costs more than its arithmetic.  float32, rows of every operand contiguous:
//
//   nn:  C_b (+)= A_b @ B_b      A element (r, k) at A + b sab + r sar + k sak   (so A_b^T too)
//                                B_b (k x n) rows ldb apart, n a multiple of 16
//   nt:  C_b (+)= A_b @ B_b^T    A_b (m x k), B_b (n x k) rows lda / ldb apart, k a multiple of 16
//
// nn: tiles of up to 6 rows x 64 columns of C in registers (one broadcast of A and four vector
// loads of B per k, 24 FMAs).  nt: tiles of 4 x 4 (2 x 8, 1 x 16) dot products of 16-float
// vectors, summed across lanes by one butterfly over the tile's 16 accumulators.
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC optimize("fp-contract=fast")
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common.h"

// an AVX-512 build and a plain one (Python takes the kernels only where AVX-512 runs; the plain
// build serves tests elsewhere): two clones instead of common.h's three halve the compile time
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LIECONV_BMM_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define LIECONV_BMM_CLONES
#endif

namespace {

typedef float V __attribute__((vector_size(64)));  // 16 floats
typedef int I __attribute__((vector_size(64)));

[[gnu::always_inline]] inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }

// C[0:MR, 0:16 NV] (+)= A[0:MR, 0:k] B[0:k, 0:16 NV]
template <int MR, int NV>
[[gnu::always_inline]] inline void nn_tile(const float* A, int64_t sar, int64_t sak, const float* B, int64_t ldb, float* C,
                                           int64_t ldc, int64_t k, bool acc) {
  V c[MR][NV] = {};
  for (int64_t kk = 0; kk < k; ++kk) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(B + kk * ldb + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const float x = A[r * sar + kk * sak];
      for (int v = 0; v < NV; ++v) c[r][v] += x * b[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* p = C + r * ldc + 16 * v;
      store(p, acc ? load(p) + c[r][v] : c[r][v]);
    }
}

template <int MR>
[[gnu::always_inline]] inline void nn_rows(const float* A, int64_t sar, int64_t sak, const float* B, int64_t ldb, float* C,
                                           int64_t ldc, int64_t k, int64_t n, bool acc) {
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) nn_tile<MR, 4>(A, sar, sak, B + j, ldb, C + j, ldc, k, acc);
  switch ((n - j) / 16) {
    case 3: nn_tile<MR, 3>(A, sar, sak, B + j, ldb, C + j, ldc, k, acc); break;
    case 2: nn_tile<MR, 2>(A, sar, sak, B + j, ldb, C + j, ldc, k, acc); break;
    case 1: nn_tile<MR, 1>(A, sar, sak, B + j, ldb, C + j, ldc, k, acc); break;
    default: break;
  }
}

LIECONV_BMM_CLONES void nn_one(const float* A, int64_t sar, int64_t sak, const float* B, int64_t ldb, float* C, int64_t ldc,
                           int64_t m, int64_t k, int64_t n, bool acc) {
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) nn_rows<6>(A + i * sar, sar, sak, B, ldb, C + i * ldc, ldc, k, n, acc);
  const float* a = A + i * sar;
  float* c = C + i * ldc;
  switch (m - i) {
    case 5: nn_rows<5>(a, sar, sak, B, ldb, c, ldc, k, n, acc); break;
    case 4: nn_rows<4>(a, sar, sak, B, ldb, c, ldc, k, n, acc); break;
    case 3: nn_rows<3>(a, sar, sak, B, ldb, c, ldc, k, n, acc); break;
    case 2: nn_rows<2>(a, sar, sak, B, ldb, c, ldc, k, n, acc); break;
    case 1: nn_rows<1>(a, sar, sak, B, ldb, c, ldc, k, n, acc); break;
    default: break;
  }
}

// y[i] = the sum of x[i]'s 16 lanes, for 16 vectors: four levels of pairwise half-sums
[[gnu::always_inline]] inline V lane_sums(const V* x) {
  V u[8], w[4], t[2];
  for (int i = 0; i < 8; ++i)
    u[i] = __builtin_shuffle(x[2 * i], x[2 * i + 1], I{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}) +
           __builtin_shuffle(x[2 * i], x[2 * i + 1], I{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
  // u[i]: lanes 0-7 partial sums of x[2i], 8-15 of x[2i+1]
  for (int i = 0; i < 4; ++i)
    w[i] = __builtin_shuffle(u[2 * i], u[2 * i + 1], I{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}) +
           __builtin_shuffle(u[2 * i], u[2 * i + 1], I{4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
  // w[i]: 4-lane groups of x[4i], x[4i+2], x[4i+1], x[4i+3]
  for (int i = 0; i < 2; ++i)
    t[i] = __builtin_shuffle(w[2 * i], w[2 * i + 1], I{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}) +
           __builtin_shuffle(w[2 * i], w[2 * i + 1], I{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
  // t[i]: 2-lane groups of x[8i + (0, 4, 2, 6, 1, 5, 3, 7)]
  V y = __builtin_shuffle(t[0], t[1], I{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}) +
        __builtin_shuffle(t[0], t[1], I{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
  // y: lane l holds x[perm[l]], perm = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15): put in order
  return __builtin_shuffle(y, I{0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15});
}

// C[0:rows, 0:cols] (+)= A[0:rows, :] B[0:cols, :]^T for an MR x NP tile (MR NP = 16); rows past
// the tile's real ones read the last real row and are not stored
template <int MR, int NP>
[[gnu::always_inline]] inline void nt_tile(const float* A, int64_t lda, int64_t rows, const float* B, int64_t ldb, int64_t cols,
                                           float* C, int64_t ldc, int64_t k, bool acc) {
  const float* a[MR];
  const float* b[NP];
  for (int r = 0; r < MR; ++r) a[r] = A + std::min<int64_t>(r, rows - 1) * lda;
  for (int p = 0; p < NP; ++p) b[p] = B + std::min<int64_t>(p, cols - 1) * ldb;
  V s[MR * NP] = {};
  for (int64_t kk = 0; kk < k; kk += 16) {
    V x[MR], y[NP];
    for (int r = 0; r < MR; ++r) x[r] = load(a[r] + kk);
    for (int p = 0; p < NP; ++p) y[p] = load(b[p] + kk);
    for (int r = 0; r < MR; ++r)
      for (int p = 0; p < NP; ++p) s[r * NP + p] += x[r] * y[p];
  }
  float out[16];
  store(out, lane_sums(s));
  for (int64_t r = 0; r < std::min<int64_t>(MR, rows); ++r)
    for (int64_t p = 0; p < std::min<int64_t>(NP, cols); ++p) {
      float* c = C + r * ldc + p;
      *c = acc ? *c + out[r * NP + p] : out[r * NP + p];
    }
}

template <int MR, int NP>
[[gnu::always_inline]] inline void nt_rows(const float* A, int64_t lda, int64_t rows, const float* B, int64_t ldb, float* C,
                                           int64_t ldc, int64_t k, int64_t n, bool acc) {
  for (int64_t j = 0; j < n; j += NP) nt_tile<MR, NP>(A, lda, rows, B + j * ldb, ldb, n - j, C + j, ldc, k, acc);
}

LIECONV_BMM_CLONES void nt_one(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m,
                           int64_t k, int64_t n, bool acc) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) nt_rows<4, 4>(A + i * lda, lda, 4, B, ldb, C + i * ldc, ldc, k, n, acc);
  if (m - i >= 2) {
    nt_rows<2, 8>(A + i * lda, lda, 2, B, ldb, C + i * ldc, ldc, k, n, acc);
    i += 2;
  }
  if (m - i == 1) nt_rows<1, 16>(A + i * lda, lda, 1, B, ldb, C + i * ldc, ldc, k, n, acc);
}

}  // namespace

extern "C" {

int lieconv_bmm_fast() { return kAvx512 ? 1 : 0; }

void lieconv_bmm_nn(const float* A, int64_t sab, int64_t sar, int64_t sak, const float* B, int64_t sbb, int64_t ldb,
                    float* C, int64_t scb, int64_t ldc, int64_t batch, int64_t m, int64_t k, int64_t n, int acc) {
  for (int64_t b = 0; b < batch; ++b) nn_one(A + b * sab, sar, sak, B + b * sbb, ldb, C + b * scb, ldc, m, k, n, acc != 0);
}

void lieconv_bmm_nt(const float* A, int64_t sab, int64_t lda, const float* B, int64_t sbb, int64_t ldb, float* C,
                    int64_t scb, int64_t ldc, int64_t batch, int64_t m, int64_t k, int64_t n, int acc) {
  for (int64_t b = 0; b < batch; ++b) nt_one(A + b * sab, lda, B + b * sbb, ldb, C + b * scb, ldc, m, k, n, acc != 0);
}
}
