// Fused passes of the kernel MLP over a chunk of rows (lieconv.native): the affine map of a batch
// norm, Swish, the mask, and the column sums its statistics and their derivatives need, in one
// pass each instead of one torch operator per step.  float32, rows of d contiguous values; a null
// scale / shift / mask means 1 / 0 / every row real.  Sums accumulate in double (in float over
// blocks of 64 rows).  Swish and its gradient take AVX-512 where the CPU has it.
//
//   swish:       x = silu(t * a + c) * w
//   moments:     s1 += sum_r t,  s2 += sum_r t^2
//   swish_grad:  y = t * a + c,  g' = g * w * silu'(y)  (silu' = s (1 + y (1 - s)), s = sigmoid(y)),
//                optionally x = silu(y) * w, ga += sum_r g' t, gc += sum_r g'
//   norm_grad:   dt = g * a + w * d1 + 2 t * d2
//   swish_grad2: the derivatives of g' = g silu'(y) (flat values): dg = h silu'(y), dy = h g silu''(y)
//                (silu'' = s (1 - s) (2 + y (1 - 2 s))), each where asked
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace {

// sigmoid(y) = 1 / (1 + e^-y), e^u = 2^n p(u - n ln 2) (Cephes' polynomial; relative error ~2e-7,
// the float32 rounding of torch's own sigmoid); u clamped to +-87 so 2^n stays a normal float.
inline float sigmoid(float y) {
  float u = -y;
  u = u < -87.0f ? -87.0f : (u > 87.0f ? 87.0f : u);
  const float n = (u * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (u - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return 1.0f / (1.0f + p * scale);
}

// scale / shift as d values (1 / 0 where null), so that the loops below load unconditionally
struct Affine {
  std::vector<float> a, c;
  Affine(const float* scale, const float* shift, int64_t d) : a(d, 1.0f), c(d, 0.0f) {
    if (scale) std::memcpy(a.data(), scale, d * sizeof(float));
    if (shift) std::memcpy(c.data(), shift, d * sizeof(float));
  }
};

template <bool X>
LIECONV_CLONES void swish_grad_rows(const float* g, const float* t, int64_t rows, int64_t d, const float* a,
                                    const float* c, const float* w, float* gout, float* x, double* ga, double* gc) {
  std::vector<float> pa(d, 0.0f), pc(d, 0.0f);
  float* pa_ = pa.data();
  float* pc_ = pc.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float wr = w ? w[r] : 1.0f;
    const float* gr = g + r * d;
    const float* tr = t + r * d;
    float* outr = gout + r * d;
    float* xr = X ? x + r * d : nullptr;
    for (int64_t j = 0; j < d; ++j) {
      const float y = tr[j] * a[j] + c[j];
      const float s = sigmoid(y);
      const float gy = gr[j] * wr * (s * (1.0f + y * (1.0f - s)));
      outr[j] = gy;
      if constexpr (X) xr[j] = y * s * wr;
      pa_[j] += gy * tr[j];
      pc_[j] += gy;
    }
    if (ga && ((r & 63) == 63 || r + 1 == rows)) {
      for (int64_t j = 0; j < d; ++j) {
        ga[j] += pa_[j];
        gc[j] += pc_[j];
        pa_[j] = 0.0f;
        pc_[j] = 0.0f;
      }
    }
  }
}

#ifdef LIECONV_X86
LIECONV_CLONES void swish_grad2_values(const float* h, const float* g, const float* y, int64_t n, float* dg, float* dy) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid(y[i]);
    if (dg) dg[i] = h[i] * (s * (1.0f + y[i] * (1.0f - s)));
    if (dy) dy[i] = h[i] * g[i] * (s * (1.0f - s) * (2.0f + y[i] * (1.0f - 2.0f * s)));
  }
}

// The same passes in AVX-512 (rows of d values in vectors of 16, the last one masked): the sigmoid's
// polynomial with FMAs, 2^n by scalef and 1 / (1 + e) by rcp14 and one Newton step (~1 ulp).

#define LIECONV_V4 __attribute__((target("avx512f,avx512dq,fma")))

LIECONV_V4 inline __m512 sigmoid16(__m512 y) {
  const __m512 u = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), y), _mm512_set1_ps(-87.0f)),
                                 _mm512_set1_ps(87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(u, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), u);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, n));
  const __m512 q = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f)));
}

LIECONV_V4 inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

LIECONV_V4 void swish_avx512(const float* t, int64_t rows, int64_t d, const float* a, const float* c, const float* w,
                             float* x) {
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 wr = _mm512_set1_ps(w ? w[r] : 1.0f);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      const __m512 y = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, t + r * d + j), _mm512_maskz_loadu_ps(m, a + j),
                                       _mm512_maskz_loadu_ps(m, c + j));
      _mm512_mask_storeu_ps(x + r * d + j, m, _mm512_mul_ps(_mm512_mul_ps(y, sigmoid16(y)), wr));
    }
  }
}

template <bool X>
LIECONV_V4 void swish_grad_avx512(const float* g, const float* t, int64_t rows, int64_t d, const float* a,
                                  const float* c, const float* w, float* gout, float* x, double* ga, double* gc) {
  std::vector<float> pa(d + 16, 0.0f), pc(d + 16, 0.0f);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 wr = _mm512_set1_ps(w ? w[r] : 1.0f);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      const __m512 tv = _mm512_maskz_loadu_ps(m, t + r * d + j);
      const __m512 y = _mm512_fmadd_ps(tv, _mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, c + j));
      const __m512 s = sigmoid16(y);
      const __m512 ds = _mm512_mul_ps(s, _mm512_fmadd_ps(y, _mm512_sub_ps(one, s), one));  // s (1 + y (1 - s))
      const __m512 gy = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + r * d + j), wr), ds);
      _mm512_mask_storeu_ps(gout + r * d + j, m, gy);
      if constexpr (X) _mm512_mask_storeu_ps(x + r * d + j, m, _mm512_mul_ps(_mm512_mul_ps(y, s), wr));
      if (ga) {
        _mm512_storeu_ps(pa.data() + j, _mm512_fmadd_ps(gy, tv, _mm512_loadu_ps(pa.data() + j)));
        _mm512_storeu_ps(pc.data() + j, _mm512_add_ps(gy, _mm512_loadu_ps(pc.data() + j)));
      }
    }
    if (ga && ((r & 63) == 63 || r + 1 == rows)) {
      for (int64_t j = 0; j < d; ++j) {
        ga[j] += pa[j];
        gc[j] += pc[j];
        pa[j] = 0.0f;
        pc[j] = 0.0f;
      }
    }
  }
}

LIECONV_V4 void swish_grad2_avx512(const float* h, const float* g, const float* y, int64_t n, float* dg, float* dy) {
  const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 yv = _mm512_maskz_loadu_ps(m, y + i), hv = _mm512_maskz_loadu_ps(m, h + i);
    const __m512 s = sigmoid16(yv);
    const __m512 q = _mm512_sub_ps(one, s);
    if (dg) _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(hv, _mm512_mul_ps(s, _mm512_fmadd_ps(yv, q, one))));
    if (dy) {
      const __m512 d2 = _mm512_mul_ps(_mm512_mul_ps(s, q), _mm512_fmadd_ps(yv, _mm512_fnmadd_ps(two, s, one), two));
      _mm512_mask_storeu_ps(dy + i, m, _mm512_mul_ps(_mm512_mul_ps(hv, _mm512_maskz_loadu_ps(m, g + i)), d2));
    }
  }
}
#endif

}  // namespace

extern "C" {

LIECONV_CLONES void lieconv_swish(const float* t, int64_t rows, int64_t d, const float* scale, const float* shift,
                                  const float* w, float* x) {
  const Affine m(scale, shift, d);
  const float* a = m.a.data();
  const float* c = m.c.data();
#ifdef LIECONV_X86
  if (kAvx512) return swish_avx512(t, rows, d, a, c, w, x);
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const float wr = w ? w[r] : 1.0f;
    const float* tr = t + r * d;
    float* xr = x + r * d;
    for (int64_t j = 0; j < d; ++j) {
      const float y = tr[j] * a[j] + c[j];
      xr[j] = y * sigmoid(y) * wr;
    }
  }
}

LIECONV_CLONES void lieconv_moments(const float* t, int64_t rows, int64_t d, double* s1, double* s2) {
  std::vector<float> p1(d, 0.0f), p2(d, 0.0f);
  float* p1_ = p1.data();
  float* p2_ = p2.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* tr = t + r * d;
    for (int64_t j = 0; j < d; ++j) {
      p1_[j] += tr[j];
      p2_[j] += tr[j] * tr[j];
    }
    if ((r & 63) == 63 || r + 1 == rows) {  // blocks of 64 rows in float, the blocks in double
      for (int64_t j = 0; j < d; ++j) {
        s1[j] += p1_[j];
        s2[j] += p2_[j];
        p1_[j] = 0.0f;
        p2_[j] = 0.0f;
      }
    }
  }
}

void lieconv_swish_grad(const float* g, const float* t, int64_t rows, int64_t d, const float* scale,
                        const float* shift, const float* w, float* gout, float* x, double* ga, double* gc) {
  const Affine m(scale, shift, d);
#ifdef LIECONV_X86
  if (kAvx512 && x) return swish_grad_avx512<true>(g, t, rows, d, m.a.data(), m.c.data(), w, gout, x, ga, gc);
  if (kAvx512) return swish_grad_avx512<false>(g, t, rows, d, m.a.data(), m.c.data(), w, gout, nullptr, ga, gc);
#endif
  if (x)
    swish_grad_rows<true>(g, t, rows, d, m.a.data(), m.c.data(), w, gout, x, ga, gc);
  else
    swish_grad_rows<false>(g, t, rows, d, m.a.data(), m.c.data(), w, gout, nullptr, ga, gc);
}

LIECONV_CLONES void lieconv_norm_grad(const float* g, const float* t, int64_t rows, int64_t d, const float* a,
                                      const float* d1, const float* d2, const float* w, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float wr = w ? w[r] : 1.0f;
    const float* gr = g + r * d;
    const float* tr = t + r * d;
    float* outr = out + r * d;
    for (int64_t j = 0; j < d; ++j) outr[j] = gr[j] * a[j] + wr * d1[j] + 2.0f * tr[j] * d2[j];
  }
}

void lieconv_swish_grad2(const float* h, const float* g, const float* y, int64_t n, float* dg, float* dy) {
#ifdef LIECONV_X86
  if (kAvx512) return swish_grad2_avx512(h, g, y, n, dg, dy);
#endif
  swish_grad2_values(h, g, y, n, dg, dy);
}

}  // extern "C"
