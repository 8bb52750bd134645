// The k smallest values of each row of a matrix of integers, in no particular order: what
// torch.topk(x, k, largest=False, sorted=False).values holds, as a multiset (lieconv.native).
//
// Per row of n values: 64 evenly spaced samples give a bracket [lo, hi] that should hold the k-th
// smallest value; one branch-free pass splits the row into the values below lo (all taken) and
// those inside the bracket, and a selection (std::nth_element) on the bracket's few values gives
// the rest.  A row whose bracket misses (the samples were unlucky) takes nth_element on the whole
// row.  Exact either way; duplicates are fine.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename T>
void row_smallest(const T* row, int64_t n, int64_t k, T* out, T* below, T* inside) {
  int64_t c1 = 0, c2 = 0;
  bool hit = false;
  if (n >= 256 && k < n) {
    T s[64];
    for (int i = 0; i < 64; ++i) s[i] = row[(i * n) / 64];
    int64_t r = (k * 64) / n;
    int64_t a = std::max<int64_t>(r - 5, 0), b = std::min<int64_t>(r + 6, 63);
    std::nth_element(s, s + a, s + 64);
    std::nth_element(s + a + 1, s + b, s + 64);  // s[a] stays the a-th
    const T lo = s[a], hi = s[b];
    for (int64_t j = 0; j < n; ++j) {
      const T u = row[j];
      below[c1] = u;
      c1 += u < lo;
      inside[c2] = u;
      c2 += (u >= lo) & (u <= hi);
    }
    hit = c1 <= k && k <= c1 + c2;
  }
  if (!hit) {
    c1 = 0;
    c2 = n;
    std::memcpy(inside, row, n * sizeof(T));
  }
  const int64_t need = k - c1;
  if (need > 0 && need < c2) std::nth_element(inside, inside + (need - 1), inside + c2);
  std::memcpy(out, below, c1 * sizeof(T));
  std::memcpy(out + c1, inside, need * sizeof(T));
}

template <typename T>
void rows_smallest(const T* x, int64_t rows, int64_t n, int64_t k, T* out) {
  std::vector<T> buf(2 * n);
  for (int64_t r = 0; r < rows; ++r) row_smallest<T>(x + r * n, n, k, out + r * k, buf.data(), buf.data() + n);
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
}
