// Fused passes of the kernel MLP over a chunk of rows (lieconv.native): the affine map of a batch
// norm, Swish, the mask, and the column sums its statistics and their derivatives need, in one
// pass each instead of one torch operator per step.  float32, rows of d contiguous values; a null
// scale / shift / mask means 1 / 0 / every row real.  Sums accumulate in double.
//
//   swish:       x = silu(t * a + c) * w
//   moments:     s1 += sum_r t,  s2 += sum_r t^2
//   swish_grad:  y = t * a + c,  g' = g * w * silu'(y)  (silu' = s (1 + y (1 - s)), s = sigmoid(y)),
//                optionally x = silu(y) * w, ga += sum_r g' t, gc += sum_r g'
//   norm_grad:   dt = g * a + w * d1 + 2 t * d2
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LIECONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LIECONV_CLONES
#endif

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

}  // namespace

extern "C" {

LIECONV_CLONES void lieconv_swish(const float* t, int64_t rows, int64_t d, const float* scale, const float* shift,
                                  const float* w, float* x) {
  const Affine m(scale, shift, d);
  const float* a = m.a.data();
  const float* c = m.c.data();
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

}  // extern "C"
