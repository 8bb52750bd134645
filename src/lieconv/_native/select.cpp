// The k smallest values of each row of a matrix of integers, in no particular order: what
// torch.topk(x, k, largest=False, sorted=False).values holds, as a multiset (lieconv.native); and
// the Monte-Carlo draw of the neighbour search (lieconv_draw, below).
//
// Per row of n values, in rounds: evenly spaced samples give a bracket [lo, hi] that should hold
// the k-th smallest value; one branch-free pass (AVX-512 compress where the CPU has it) moves the
// values below lo to the output (all taken) and keeps those inside the bracket, which the next
// round narrows in the same way.  A round whose bracket misses (the samples were unlucky), and the
// last few values, take a selection (std::nth_element).  Exact either way; duplicates are fine.
#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace {

constexpr int kSamples = 64;
constexpr int kMargin = 5;   // samples on each side of the expected rank
constexpr int64_t kSmall = 4 * kSamples;  // below this many values a round is not worth it
constexpr int64_t kPad = 16;  // vector stores may write this many values past a count

// Splits src[0:n] into below (< lo) and inside (lo <= v <= hi); returns the two counts.
template <typename T>
void split_scalar(const T* src, int64_t n, T lo, T hi, T* below, T* inside, int64_t& c1, int64_t& c2) {
  c1 = 0;
  c2 = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T u = src[j];
    below[c1] = u;
    c1 += u < lo;
    inside[c2] = u;
    c2 += (u >= lo) & (u <= hi);
  }
}

#ifdef LIECONV_X86
__attribute__((target("avx512f"))) void split_avx512(const int32_t* src, int64_t n, int32_t lo, int32_t hi,
                                                     int32_t* below, int32_t* inside, int64_t& c1, int64_t& c2) {
  const __m512i vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
  int64_t a = 0, b = 0;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(live, src + j);
    const __mmask16 lt = _mm512_mask_cmplt_epi32_mask(live, v, vlo);
    const __mmask16 in = _mm512_mask_cmple_epi32_mask(live & ~lt, v, vhi);
    _mm512_storeu_si512(below + a, _mm512_maskz_compress_epi32(lt, v));
    _mm512_storeu_si512(inside + b, _mm512_maskz_compress_epi32(in, v));
    a += __builtin_popcount(lt);
    b += __builtin_popcount(in);
  }
  c1 = a;
  c2 = b;
}

__attribute__((target("avx512f"))) void split_avx512(const int64_t* src, int64_t n, int64_t lo, int64_t hi,
                                                     int64_t* below, int64_t* inside, int64_t& c1, int64_t& c2) {
  const __m512i vlo = _mm512_set1_epi64(lo), vhi = _mm512_set1_epi64(hi);
  int64_t a = 0, b = 0;
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 live = n - j >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - j)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi64(live, src + j);
    const __mmask8 lt = _mm512_mask_cmplt_epi64_mask(live, v, vlo);
    const __mmask8 in = _mm512_mask_cmple_epi64_mask(live & ~lt, v, vhi);
    _mm512_storeu_si512(below + a, _mm512_maskz_compress_epi64(lt, v));
    _mm512_storeu_si512(inside + b, _mm512_maskz_compress_epi64(in, v));
    a += __builtin_popcount(lt);
    b += __builtin_popcount(in);
  }
  c1 = a;
  c2 = b;
}

#endif

template <typename T>
void split(const T* src, int64_t n, T lo, T hi, T* below, T* inside, int64_t& c1, int64_t& c2) {
#ifdef LIECONV_X86
  if (kAvx512) return split_avx512(src, n, lo, hi, below, inside, c1, c2);
#endif
  split_scalar(src, n, lo, hi, below, inside, c1, c2);
}

// buf: 3 n + 3 kPad values of scratch
template <typename T>
void row_smallest(const T* row, int64_t n, int64_t k, T* out, T* buf) {
  T* below = buf;
  T* cur_buf[2] = {buf + n + kPad, buf + 2 * (n + kPad)};
  const T* cur = row;
  int64_t cn = n, need = k, done = 0;
  for (int round = 0; need > 0 && need < cn && cn >= kSmall; ++round) {
    T s[kSamples];
    for (int i = 0; i < kSamples; ++i) s[i] = cur[(i * cn) / kSamples];
    const int64_t r = (need * kSamples) / cn;
    const int64_t a = std::max<int64_t>(r - kMargin, 0), b = std::min<int64_t>(r + kMargin + 1, kSamples - 1);
    std::nth_element(s, s + a, s + kSamples);
    std::nth_element(s + a + 1, s + b, s + kSamples);  // s[a] stays the a-th
    T* inside = cur_buf[round & 1];
    int64_t c1, c2;
    split<T>(cur, cn, s[a], s[b], below, inside, c1, c2);
    if (!(c1 <= need && need <= c1 + c2)) break;  // missed: select on what is left
    if (c1 == 0 && c2 == cn) break;  // no progress (ties fill the bracket): select on it
    std::memcpy(out + done, below, c1 * sizeof(T));
    done += c1;
    need -= c1;
    cur = inside;
    cn = c2;
  }
  if (need <= 0) return;
  if (need >= cn) {
    std::memcpy(out + done, cur, need * sizeof(T));
    return;
  }
  T* tmp = cur == row ? cur_buf[0] : const_cast<T*>(cur);
  if (tmp != cur) std::memcpy(tmp, cur, cn * sizeof(T));
  std::nth_element(tmp, tmp + (need - 1), tmp + cn);
  std::memcpy(out + done, tmp, need * sizeof(T));
}

template <typename T>
void rows_smallest(const T* x, int64_t rows, int64_t n, int64_t k, T* out) {
  std::vector<T> buf(3 * (n + kPad));
  for (int64_t r = 0; r < rows; ++r) row_smallest<T>(x + r * n, n, k, out + r * k, buf.data());
}


// splitmix64's finaliser (lieconv.random._mix)
inline uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline int64_t draw_key(uint64_t seed, int64_t point) {
  const int64_t key = static_cast<int64_t>(mix(seed + static_cast<uint64_t>(point) * 0x9E3779B97F4A7C15ULL));
  return key == INT64_MIN ? INT64_MAX : key;
}

// The draw of K of `count` candidates: the points of the K largest keys, in ascending point order.
// A threshold at the expected (K + margin)-th largest key usually leaves few keys to select among.
struct Draw {
  std::vector<int64_t> keys, top, chosen;
  explicit Draw(int64_t n) : keys(n), top(n), chosen(n) {}

  void run(const int64_t* cand, int64_t count, uint64_t seed, int64_t K, bool ascending, int64_t* out,
           uint8_t* ok) {
    const int64_t take = std::min(K, count);
    int64_t n = 0;
    if (take == count) {
      for (int64_t c = 0; c < count; ++c) chosen[n++] = cand[c];
    } else {
      for (int64_t c = 0; c < count; ++c) keys[c] = draw_key(seed, cand[c]);
      const double expect = static_cast<double>(take) + 4.0 * std::sqrt(static_cast<double>(take)) + 4.0;
      const double above = std::ldexp(std::min(1.0, expect / static_cast<double>(count)), 64);  // keys above t
      const double at = std::min(std::ldexp(1.0, 63) - above, std::ldexp(1.0, 63) - 1024.0);  // below 2^63
      const int64_t t = above >= std::ldexp(1.0, 64) ? INT64_MIN : static_cast<int64_t>(at);
      int64_t m = 0;
      for (int64_t c = 0; c < count; ++c) {
        top[m] = keys[c];
        m += keys[c] >= t;
      }
      if (m < take) {  // too few above the threshold: select among all keys
        std::copy(keys.begin(), keys.begin() + count, top.begin());
        m = count;
      }
      std::nth_element(top.begin(), top.begin() + (take - 1), top.begin() + m, std::greater<int64_t>());
      const int64_t kth = top[take - 1];
      int64_t more = 0;  // keys equal to the K-th one (only a hash collision) beyond the K
      for (int64_t i = 0; i < m; ++i) more += top[i] > kth;
      int64_t ties = take - more;
      for (int64_t c = 0; c < count; ++c) {  // branch-free
        const bool eq = keys[c] == kth;
        const bool in = (keys[c] > kth) | (eq & (ties > 0));
        ties -= eq & in;
        chosen[n] = cand[c];
        n += in;
      }
    }
    if (!ascending) std::sort(chosen.begin(), chosen.begin() + n);
    std::copy(chosen.begin(), chosen.begin() + n, out);
    std::fill(ok, ok + n, 1);
    std::fill(out + n, out + K, 0);
    std::fill(ok + n, ok + K, 0);
  }
};

// row with padding (mask 0) set to the largest bucket
void fill_masked(const int32_t* row, const uint8_t* mask, int64_t n, int32_t* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = mask[j] ? row[j] : INT32_MAX;
}

// The passes of nearest() below: the smallest and the largest real bucket (padding, INT32_MAX, is
// not one: (v + 1) & INT32_MAX maps it to 0 and keeps the order of the others); how many values are
// <= g; the indices of the values < g and of the first `ties` values == g, in ascending order.
void range_scalar(const int32_t* row, int64_t n, int32_t& lo, int32_t& hi) {
  int32_t a = INT32_MAX, b = 0;
  for (int64_t j = 0; j < n; ++j) {
    a = std::min(a, row[j]);
    b = std::max(b, (row[j] + 1) & INT32_MAX);
  }
  lo = a;
  hi = b - 1;
}

int64_t count_scalar(const int32_t* row, int64_t n, int32_t g) {
  int32_t c = 0;
  for (int64_t j = 0; j < n; ++j) c += row[j] <= g;
  return c;
}

int64_t pick_scalar(const int32_t* row, int64_t n, int32_t g, int64_t ties, int64_t* cand) {
  int64_t c = 0;
  for (int64_t j = 0; j < n; ++j) {  // branch-free: the taken fraction is unpredictable
    const int32_t v = row[j];
    const bool eq = v == g;
    const bool take = (v < g) | (eq & (ties > 0));
    ties -= eq & take;
    cand[c] = j;
    c += take;
  }
  return c;
}

#ifdef LIECONV_X86
#define LIECONV_AVX512 __attribute__((target("avx512f,bmi2")))
LIECONV_AVX512 inline __mmask16 live16(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

LIECONV_AVX512 void range_avx512(const int32_t* row, int64_t n, int32_t& lo, int32_t& hi) {
  __m512i a = _mm512_set1_epi32(INT32_MAX), b = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(INT32_MAX);
  for (int64_t j = 0; j < n; j += 16) {
    const __m512i v = j + 16 <= n ? _mm512_loadu_si512(row + j)
                                  : _mm512_mask_loadu_epi32(top, live16(n - j), row + j);  // the tail reads as padding
    a = _mm512_min_epi32(a, v);
    b = _mm512_max_epi32(b, _mm512_and_si512(_mm512_add_epi32(v, one), top));
  }
  lo = _mm512_reduce_min_epi32(a);
  hi = _mm512_reduce_max_epi32(b) - 1;
}

LIECONV_AVX512 int64_t count_avx512(const int32_t* row, int64_t n, int32_t g) {
  const __m512i vg = _mm512_set1_epi32(g), one = _mm512_set1_epi32(1);
  __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    c0 = _mm512_mask_add_epi32(c0, _mm512_cmple_epi32_mask(_mm512_loadu_si512(row + j), vg), c0, one);
    c1 = _mm512_mask_add_epi32(c1, _mm512_cmple_epi32_mask(_mm512_loadu_si512(row + j + 16), vg), c1, one);
  }
  for (; j < n; j += 16) {
    const __mmask16 live = live16(n - j);
    c0 = _mm512_mask_add_epi32(c0, _mm512_mask_cmple_epi32_mask(live, _mm512_maskz_loadu_epi32(live, row + j), vg),
                               c0, one);
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c1));
}

LIECONV_AVX512 int64_t pick_avx512(const int32_t* row, int64_t n, int32_t g, int64_t ties, int64_t* cand) {
  const __m512i vg = _mm512_set1_epi32(g), step = _mm512_set1_epi32(16);
  __m512i idx = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  int64_t c = 0;
  for (int64_t j = 0; j < n; j += 16, idx = _mm512_add_epi32(idx, step)) {
    const __mmask16 live = live16(n - j);
    const __m512i v = _mm512_maskz_loadu_epi32(live, row + j);
    __mmask16 take = _mm512_mask_cmplt_epi32_mask(live, v, vg);
    const unsigned eq = _mm512_mask_cmpeq_epi32_mask(live, v, vg);
    if (eq && ties > 0) {
      const int64_t t = std::min<int64_t>(ties, __builtin_popcount(eq));
      take |= __mmask16(_pdep_u32((1u << t) - 1, eq));  // the first t of them
      ties -= t;
    }
    const __m512i picked = _mm512_maskz_compress_epi32(take, idx);
    _mm512_storeu_si512(cand + c, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(picked)));
    _mm512_storeu_si512(cand + c + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(picked, 1)));
    c += __builtin_popcount(take);
  }
  return c;
}
const bool kBmi2 = __builtin_cpu_supports("bmi2");
#endif

void bucket_range(const int32_t* row, int64_t n, int32_t& lo, int32_t& hi) {
#ifdef LIECONV_X86
  if (kAvx512) return range_avx512(row, n, lo, hi);
#endif
  range_scalar(row, n, lo, hi);
}

int64_t count_le(const int32_t* row, int64_t n, int32_t g) {
#ifdef LIECONV_X86
  if (kAvx512) return count_avx512(row, n, g);
#endif
  return count_scalar(row, n, g);
}

int64_t pick(const int32_t* row, int64_t n, int32_t g, int64_t ties, int64_t* cand) {
#ifdef LIECONV_X86
  if (kAvx512 && kBmi2) return pick_avx512(row, n, g, ties, cand);
#endif
  return pick_scalar(row, n, g, ties, cand);
}

// the indices j of the `want` smallest (row[j], j) in ascending j: a search for the smallest bucket
// g with want values <= g (counting passes), then one pass; returns want (<= the real values).
// cand: n + kPad values.
int64_t nearest(const int32_t* row, int64_t n, int64_t want, int64_t* cand) {
  int32_t lo, hi;
  bucket_range(row, n, lo, hi);
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (count_le(row, n, mid) >= want)
      hi = mid;
    else
      lo = mid + 1;
  }
  const int32_t g = lo;
  const int64_t ties = want - (g > INT32_MIN ? count_le(row, n, g - 1) : 0);  // how many of bucket g are taken
  return pick(row, n, g, ties, cand);
}

int64_t real_points(const uint8_t* mask, int64_t n, int64_t want, int64_t* cand) {
  int64_t c = 0;
  for (int64_t j = 0; j < n && c < want; ++j)
    if (!mask || mask[j]) cand[c++] = j;
  return c;
}

}  // namespace

extern "C" {
// x: rows x n (row-major), out: rows x k, 0 < k <= n
void lieconv_smallest_i32(const int32_t* x, int64_t rows, int64_t n, int64_t k, int32_t* out) {
  rows_smallest<int32_t>(x, rows, n, k, out);
}
void lieconv_smallest_i64(const int64_t* x, int64_t rows, int64_t n, int64_t k, int64_t* out) {
  rows_smallest<int64_t>(x, rows, n, k, out);
}

// The Monte-Carlo draw of K of each query's candidates (lieconv.neighbors): candidate c < counts[b] of
// row r of example b, point near[b, r, c], gets the random key hash_pairs(seeds[b, r], point)
// (lieconv.random: splitmix64 of seed + point * golden, int64 min mapped to int64 max); the points of
// the K largest keys are drawn, in ascending point order.  out[b, r, i] is the drawn point and
// ok[b, r, i] = 1, or 0 and 0 past the candidates.  near: B x rows x kmax, seeds: B x rows.
void lieconv_draw(const int64_t* near, int64_t B, int64_t rows, int64_t kmax, const int64_t* seeds,
                  const int64_t* counts, int64_t K, int64_t* out, uint8_t* ok) {
  Draw d(kmax);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t count = std::min<int64_t>(std::max<int64_t>(counts[b], 0), kmax);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t q = b * rows + r;
      d.run(near + q * kmax, count, static_cast<uint64_t>(seeds[q]), K, false, out + q * K, ok + q * K);
    }
  }
}

// The neighbour search on rounded distances with its draw, fused (lieconv.neighbors, dense search):
// for query r of example b, the candidates are the kcand[b] real points of smallest (bucket, index),
// buckets[b * bs + r * N + j] in [0, 2^31 - 1) (padding, mask[b, j] = 0, is never a candidate;
// allin[b]: every real point, no ranking), then lieconv_draw's draw of K of them (the same points, in
// ascending order).  Rows whose qmask[b * qs + r] is 0 get 0 / 0.  out, ok: B x rows x K.
void lieconv_nearest_draw(const int32_t* buckets, int64_t B, int64_t rows, int64_t N, int64_t bs, const uint8_t* mask,
                          const uint8_t* allin, const uint8_t* qmask, int64_t qs, const int64_t* kcand,
                          const int64_t* seeds, int64_t ss, int64_t K, int64_t* out, uint8_t* ok) {
  std::vector<int32_t> masked(N + kPad);
  std::vector<int64_t> cand(N + kPad);
  Draw d(N);
  for (int64_t b = 0; b < B; ++b) {
    const uint8_t* mb = mask ? mask + b * N : nullptr;
    const int64_t want = kcand[b];
    for (int64_t r = 0; r < rows; ++r) {
      int64_t* o = out + (b * rows + r) * K;
      uint8_t* q = ok + (b * rows + r) * K;
      if ((qmask && !qmask[b * qs + r]) || want <= 0) {
        std::fill(o, o + K, 0);
        std::fill(q, q + K, 0);
        continue;
      }
      const int32_t* row = buckets + b * bs + r * N;
      if (allin && allin[b]) {  // every real point, by index
        row = nullptr;
      } else if (mb) {
        fill_masked(row, mb, N, masked.data());
        row = masked.data();
      }
      const int64_t count = row ? nearest(row, N, want, cand.data()) : real_points(mb, N, want, cand.data());
      d.run(cand.data(), count, static_cast<uint64_t>(seeds[b * ss + r]), K, true, o, q);
    }
  }
}
}
