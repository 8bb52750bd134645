// Row gather (lieconv.native.gather_columns): out[b, i, j] = src[b, i, cols[b, j]], int32 rows.
// Row scatter-add (lieconv.native.index_add_): out[idx[i]] += src[i] for rows of d contiguous
// float32 values (the rows of src ld apart), in the order of i, restricted to the destination rows [lo, hi) (one range per
// thread: every thread reads all indices, writes only its own rows, so the sums are the serial ones).
#include <cstdint>

#include "common.h"

extern "C" {

LIECONV_CLONES void lieconv_index_add(float* out, int64_t lo, int64_t hi, const int64_t* idx, const float* src,
                                         int64_t n, int64_t d, int64_t ld) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[i];
    if (j < lo || j >= hi) continue;
    float* o = out + j * d;
    const float* s = src + i * ld;
    for (int64_t c = 0; c < d; ++c) o[c] += s[c];
  }
}

// src (B, ., n_src) rows ld_row apart, batches ld_batch apart; cols (B, n) contiguous; out (B, m, n)
LIECONV_CLONES void lieconv_gather_columns(const int32_t* src, int64_t ld_batch, int64_t ld_row, const int64_t* cols,
                                           int64_t B, int64_t m, int64_t n, int32_t* out) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* cb = cols + b * n;
    for (int64_t i = 0; i < m; ++i) {
      const int32_t* row = src + b * ld_batch + i * ld_row;
      int32_t* o = out + (b * m + i) * n;
      for (int64_t j = 0; j < n; ++j) o[j] = row[cb[j]];
    }
  }
}

}  // extern "C"
