// Group distances of the neighbour search and farthest-point sampling in one pass per row
// (lieconv.native.distance / farthest): float32, coordinate planes (coordinate i of element j at
// u[i * plane + j * stride]).  Kinds (LieGroup.native_distance):
//
//   0, 1, 2, 3  "euclid" of that many coordinates:  d = sqrt(sum_i (u_i - v_i)^2)       (T(d))
//   16          "se2", (theta, t1, t2):  h = wrap((theta_u - theta_v) / 2) to [-pi/2, pi/2],
//               d = sqrt(|t_u - t_v|^2 (h / sin h)^2 + 4 h^2)        (SE2.elem_distance)
//
// Every distance of a kind goes through the same inline function, and contraction into FMAs is off
// (-ffp-contract=off), so a distance is the same bits wherever it is computed (vectorised or not):
// the farthest-point rows are exactly the search's numbers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"

namespace {

// sin x for |x| <= pi / 2: the Taylor series to x^13 (truncation < 7e-10, below float32 rounding)
inline float sin_half_range(float x) {
  const float z = x * x;
  float p = 1.6059043836821613e-10f;
  p = p * z - 2.5052108385441720e-8f;
  p = p * z + 2.7557319223985893e-6f;
  p = p * z - 1.9841269841269841e-4f;
  p = p * z + 8.3333333333333333e-3f;
  p = p * z - 1.6666666666666666e-1f;
  return x + x * z * p;
}

template <int E>
struct Euclid {
  static float at(const float* u, int64_t up, const float* v, int64_t vp) {
    float sq = 0.0f;
    for (int i = 0; i < E; ++i) {
      const float di = u[i * up] - v[i * vp];
      sq = sq + di * di;
    }
    return std::sqrt(sq);
  }
};

struct SE2 {
  static float at(const float* u, int64_t up, const float* v, int64_t vp) {
    float h = (u[0] - v[0]) * 0.5f;
    h = h - 3.14159265358979f * std::nearbyint(h * 0.318309886183791f);  // |h| <= pi / 2 (+ rounding)
    const float s = sin_half_range(h);
    const float q = s == 0.0f ? 1.0f : h / s;  // 1 / sinc(h), 0 / 0 only at h = 0
    const float d1 = u[up] - v[vp], d2 = u[2 * up] - v[2 * vp];
    return std::sqrt((d1 * d1 + d2 * d2) * (q * q) + 4.0f * (h * h));
  }
};

// out[j] = D(u + j su, v + j sv) for j < n; SU / SV >= 0 are the strides known at compile time
template <class D, int SU, int SV>
LIECONV_CLONES void inner(const float* u, int64_t up, int64_t su, const float* v, int64_t vp, int64_t sv, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = D::at(u + j * (SU >= 0 ? SU : su), up, v + j * (SV >= 0 ? SV : sv), vp);
}

// the broadcast distance tensor of shape[0:ndim] (row-major, contiguous out); strides in elements
template <class D>
void broadcast(const float* u, int64_t up, const int64_t* us, const float* v, int64_t vp, const int64_t* vs,
               int64_t ndim, const int64_t* shape, float* out) {
  const int64_t n = shape[ndim - 1], su = us[ndim - 1], sv = vs[ndim - 1];
  int64_t outer = 1;
  for (int64_t i = 0; i + 1 < ndim; ++i) outer *= shape[i];
  std::vector<int64_t> at(ndim > 1 ? ndim - 1 : 1, 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t ou = 0, ov = 0;
    for (int64_t i = 0; i + 1 < ndim; ++i) {
      ou += at[i] * us[i];
      ov += at[i] * vs[i];
    }
    const float* uo = u + ou;
    const float* vo = v + ov;
    float* oo = out + o * n;
    if (su == 1 && sv == 0)
      inner<D, 1, 0>(uo, up, 1, vo, vp, 0, n, oo);
    else if (su == 0 && sv == 1)
      inner<D, 0, 1>(uo, up, 0, vo, vp, 1, n, oo);
    else if (su == 1 && sv == 1)
      inner<D, 1, 1>(uo, up, 1, vo, vp, 1, n, oo);
    else
      inner<D, -1, -1>(uo, up, su, vo, vp, sv, n, oo);
    for (int64_t i = ndim - 2; i >= 0; --i) {  // next multi-index of the leading axes
      if (++at[i] < shape[i]) break;
      at[i] = 0;
    }
  }
}

constexpr int32_t kUnset = 2147483647;  // a running minimum before any point is chosen (inf)
constexpr float kLargest = 1073741824.0f;  // 2^30: rounded distances are clamped here as int32

// Farthest-point sampling of examples b0:b1 (see lieconv.neighbors._fps_loop): per step the new
// point's rounded distances r = round(d * inv_step) lower the running minima of the real points
// (padding keeps -1), the new point's own minimum becomes 0, and the next point is the first index
// of the largest minimum.  rows (optional, int32 or int64 by `wide`): each step's r clamped to
// [0, cap] (NaN: cap).
template <class D, typename R>
LIECONV_CLONES void fps(const float* planes, int64_t plane, int64_t b0, int64_t b1, int64_t N, const uint8_t* mask, int64_t m,
         const int64_t* first, const float* inv_step, int64_t cap, int64_t* idx, uint8_t* ok, R* rows) {
  std::vector<int32_t> minv(N);
  std::vector<float> dist(N);
  const float fcap = static_cast<float>(cap);
  for (int64_t b = b0; b < b1; ++b) {
    const float* base = planes + b * N;
    const uint8_t* mb = mask ? mask + b * N : nullptr;
    bool any = N > 0;
    if (mb) {
      any = false;
      for (int64_t j = 0; j < N; ++j) any |= mb[j] != 0;
    }
    for (int64_t j = 0; j < N; ++j) minv[j] = (mb && !mb[j]) ? -1 : kUnset;
    const float inv = inv_step[b];
    int64_t cur = first[b];
    int64_t top = 1;
    for (int64_t t = 0; t < m; ++t) {
      idx[b * m + t] = cur;
      ok[b * m + t] = t == 0 ? any : top > 0;
      inner<D, 1, 0>(base, plane, 1, base + cur, plane, 0, N, dist.data());
      R* row = rows ? rows + (b * m + t) * N : nullptr;
      int64_t best = INT64_MIN;
      int32_t* mv = minv.data();
      const float* dr = dist.data();
      for (int64_t j = 0; j < N; ++j) {
        const float r = std::nearbyint(dr[j] * inv);
        const int32_t ri = static_cast<int32_t>(std::min(r, kLargest));
        const bool real = mb ? mb[j] != 0 : true;
        int32_t v = real ? std::min(mv[j], ri) : mv[j];
        v = j == cur ? 0 : v;
        mv[j] = v;
        // the value, then the lower index, first
        best = std::max(best, (static_cast<int64_t>(v) << 32) | static_cast<int64_t>(N - 1 - j));
        if (row) {
          float c = r < fcap ? r : fcap;  // NaN: cap
          c = c > 0.0f ? c : 0.0f;
          row[j] = static_cast<R>(c);
        }
      }
      if (t + 1 < m) {
        top = best >> 32;
        cur = N - 1 - (best & 0xFFFFFFFFLL);
      }
    }
  }
}

template <class D>
void fps_any(const float* planes, int64_t plane, int64_t b0, int64_t b1, int64_t N, const uint8_t* mask, int64_t m,
             const int64_t* first, const float* inv_step, int64_t cap, int64_t* idx, uint8_t* ok, void* rows,
             int wide) {
  if (wide)
    fps<D, int64_t>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, static_cast<int64_t*>(rows));
  else
    fps<D, int32_t>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, static_cast<int32_t*>(rows));
}

}  // namespace

extern "C" {

// 1 when the kind is known
int lieconv_distance_kind(int kind) { return (kind >= 1 && kind <= 3) || kind == 16; }

void lieconv_distance(int kind, const float* u, int64_t up, const int64_t* us, const float* v, int64_t vp,
                      const int64_t* vs, int64_t ndim, const int64_t* shape, float* out) {
  switch (kind) {
    case 1: return broadcast<Euclid<1>>(u, up, us, v, vp, vs, ndim, shape, out);
    case 2: return broadcast<Euclid<2>>(u, up, us, v, vp, vs, ndim, shape, out);
    case 3: return broadcast<Euclid<3>>(u, up, us, v, vp, vs, ndim, shape, out);
    case 16: return broadcast<SE2>(u, up, us, v, vp, vs, ndim, shape, out);
    default: return;
  }
}

// planes: E x plane floats (plane = B * N; point j of example b at b * N + j), mask: B x N or null,
// first, inv_step: per example; idx: B x m, ok: B x m, rows: B x m x N (int64 if wide, else int32) or null
void lieconv_farthest(int kind, const float* planes, int64_t plane, int64_t b0, int64_t b1, int64_t N,
                      const uint8_t* mask, int64_t m, const int64_t* first, const float* inv_step, int64_t cap,
                      int64_t* idx, uint8_t* ok, void* rows, int wide) {
  switch (kind) {
    case 1: return fps_any<Euclid<1>>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, rows, wide);
    case 2: return fps_any<Euclid<2>>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, rows, wide);
    case 3: return fps_any<Euclid<3>>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, rows, wide);
    case 16: return fps_any<SE2>(planes, plane, b0, b1, N, mask, m, first, inv_step, cap, idx, ok, rows, wide);
    default: return;
  }
}

}  // extern "C"
