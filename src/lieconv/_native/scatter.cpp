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

}  // extern "C"
