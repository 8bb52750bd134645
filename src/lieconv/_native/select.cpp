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
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LIECONV_X86 1
#endif

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

const bool kAvx512 = __builtin_cpu_supports("avx512f");
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
// (lieconv.random: splitmix64 of seed + point * golden, int64 min mapped to int64 max); the K largest
// keys are drawn, in descending key order (torch.topk's order).  out[b, r, i] is the drawn point and
// ok[b, r, i] = 1, or 0 and 0 past the candidates.  near: B x rows x kmax, seeds: B x rows.
void lieconv_draw(const int64_t* near, int64_t B, int64_t rows, int64_t kmax, const int64_t* seeds,
                  const int64_t* counts, int64_t K, int64_t* out, uint8_t* ok) {
  std::vector<std::pair<int64_t, int64_t>> keys(kmax);
  const auto later = [](const std::pair<int64_t, int64_t>& u, const std::pair<int64_t, int64_t>& v) {
    return u.first > v.first;
  };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t count = std::min<int64_t>(std::max<int64_t>(counts[b], 0), kmax);
    const int64_t take = std::min(K, count);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* nr = near + (b * rows + r) * kmax;
      const uint64_t seed = static_cast<uint64_t>(seeds[b * rows + r]);
      for (int64_t c = 0; c < count; ++c) {
        int64_t key = static_cast<int64_t>(mix(seed + static_cast<uint64_t>(nr[c]) * 0x9E3779B97F4A7C15ULL));
        if (key == INT64_MIN) key = INT64_MAX;
        keys[c] = {key, nr[c]};
      }
      if (take < count) std::nth_element(keys.begin(), keys.begin() + (take - 1), keys.begin() + count, later);
      std::sort(keys.begin(), keys.begin() + take, later);
      int64_t* o = out + (b * rows + r) * K;
      uint8_t* q = ok + (b * rows + r) * K;
      for (int64_t i = 0; i < take; ++i) {
        o[i] = keys[i].second;
        q[i] = 1;
      }
      for (int64_t i = take; i < K; ++i) {
        o[i] = 0;
        q[i] = 0;
      }
    }
  }
}
}
