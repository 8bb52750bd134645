// The gathered contraction of LieConv's aggregation (lieconv.native.gather_contract and its
// gradient): for groups g of K pairs, f_gk = rows[idx[g K + k]] (C values) and s_gk (H values),
//
//   forward:   z_g = sum_k f_gk^T s_gk                          (C, H)
//   backward:  gs_gk = f_gk dz_g                                (H,)   dL/ds
//              grad_rows[idx[g K + k]] += dz_g s_gk             (C,)   dL/drows (in the order of g, k)
//
// without the gathered (pairs, C) rows ever being stored.  float32; H a multiple of 16 (one or
// more 16-float vectors per row of z); C any width, in blocks of up to 16 channels.
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC optimize("fp-contract=fast")
#include <cstdint>
#include <cstring>
#include <utility>

#include "common.h"

namespace {

typedef float V __attribute__((vector_size(64)));  // 16 floats

[[gnu::always_inline]] inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }

constexpr int64_t kBlock = 16;  // channels per block of accumulators

// z[c0:c0+CB, :] of one group: CB * NV accumulators, one FMA per (k, channel, vector)
template <int NV, int CB>
[[gnu::always_inline]] inline void contract_block(const float* rows, int64_t C, const int64_t* idx, const float* s, int64_t K, int64_t c0,
                           float* z) {
  V acc[CB][NV] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float* f = rows + idx[k] * C + c0;
    V sk[NV];
    for (int v = 0; v < NV; ++v) sk[v] = load(s + k * 16 * NV + 16 * v);
#pragma GCC unroll 16
    for (int c = 0; c < CB; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v] += f[c] * sk[v];
  }
  for (int c = 0; c < CB; ++c)
    for (int v = 0; v < NV; ++v) store(z + (c0 + c) * 16 * NV + 16 * v, acc[c][v]);
}

template <int NV, int... CB>
[[gnu::always_inline]] inline void contract_tail(int64_t cb, const float* rows, int64_t C, const int64_t* idx, const float* s, int64_t K,
                          int64_t c0, float* z, std::integer_sequence<int, CB...>) {
  // the last, narrower block: the instance of its width (1 .. kBlock - 1)
  ((cb == CB + 1 ? (contract_block<NV, CB + 1>(rows, C, idx, s, K, c0, z), 0) : 0), ...);
}

// z_g for the n groups from idx, s (pointers at the first group's pairs) into z (n, C, H)
template <int NV>
LIECONV_CLONES void contract_groups(const float* rows, int64_t C, const int64_t* idx, const float* s, int64_t n, int64_t K,
                     float* z) {
  const int64_t H = 16 * NV;
  for (int64_t g = 0; g < n; ++g) {
    const int64_t* ig = idx + g * K;
    const float* sg = s + g * K * H;
    float* zg = z + g * C * H;
    int64_t c0 = 0;
    for (; c0 + kBlock <= C; c0 += kBlock) contract_block<NV, kBlock>(rows, C, ig, sg, K, c0, zg);
    if (c0 < C)
      contract_tail<NV>(C - c0, rows, C, ig, sg, K, c0, zg, std::make_integer_sequence<int, kBlock - 1>{});
  }
}

// gs_gk = f_gk dz_g for four pairs at a time (each row of dz loaded once serves the four)
template <int NV>
LIECONV_CLONES void ds_group(const float* rows, int64_t C, const int64_t* idx, const float* dz, int64_t K, float* gs) {
  const int64_t H = 16 * NV;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float* f[4] = {rows + idx[k] * C, rows + idx[k + 1] * C, rows + idx[k + 2] * C, rows + idx[k + 3] * C};
    V acc[4][NV] = {};
    for (int64_t c = 0; c < C; ++c) {
      V d[NV];
      for (int v = 0; v < NV; ++v) d[v] = load(dz + c * H + 16 * v);
      for (int q = 0; q < 4; ++q)
        for (int v = 0; v < NV; ++v) acc[q][v] += f[q][c] * d[v];
    }
    for (int q = 0; q < 4; ++q)
      for (int v = 0; v < NV; ++v) store(gs + (k + q) * H + 16 * v, acc[q][v]);
  }
  for (; k < K; ++k) {
    const float* f = rows + idx[k] * C;
    V acc[NV] = {};
    for (int64_t c = 0; c < C; ++c)
      for (int v = 0; v < NV; ++v) acc[v] += f[c] * load(dz + c * H + 16 * v);
    for (int v = 0; v < NV; ++v) store(gs + k * H + 16 * v, acc[v]);
  }
}

// dzt (H, Cp) = dz (C, H) transposed, Cp = C rounded up to 16 (the padding written as zeros on the
// AVX-512 path, left as it is otherwise)
#ifdef LIECONV_X86
// one 16 x 16 tile: rows r < ``rows`` of ``in`` (zeros past them) into the 16 rows of ``out``
__attribute__((target("avx512f"))) void transpose16(const float* in, int64_t ld_in, int rows, float* out, int64_t ld_out) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(in + i * ld_in) : _mm512_setzero_ps();
  for (int i = 0; i < 16; i += 2) { t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]); t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(out + i * ld_out, r[i]);
}
#endif

void transpose(const float* dz, int64_t C, int64_t H, float* dzt, int64_t Cp) {
#ifdef LIECONV_X86
  if (kAvx512) {
    for (int64_t c0 = 0; c0 < C; c0 += 16)
      for (int64_t j0 = 0; j0 < H; j0 += 16)
        transpose16(dz + c0 * H + j0, H, C - c0 < 16 ? static_cast<int>(C - c0) : 16, dzt + j0 * Cp + c0, Cp);
    return;
  }
#endif
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < H; ++j) dzt[j * Cp + c] = dz[c * H + j];
}

// grad_rows[idx_k] += dz s_k for the pairs whose row is in [lo, hi): dz transposed once into dzt
// (H, Cp), its rows zero-padded to Cp = C rounded up to 16 channels, so every block is a full vector
template <int NV>
LIECONV_CLONES void drows_group(const float* dz, int64_t C, const int64_t* idx, const float* s, int64_t K, int64_t lo,
                                int64_t hi, float* dzt, float* grad_rows) {
  constexpr int64_t H = 16 * NV;
  bool any = false;
  for (int64_t k = 0; k < K && !any; ++k) any = idx[k] >= lo && idx[k] < hi;
  if (!any) return;
  const int64_t Cp = (C + 15) / 16 * 16;
  transpose(dz, C, H, dzt, Cp);
  for (int64_t k0 = 0; k0 < K; k0 += 4) {  // four pairs at a time: four independent FMA chains
    bool mine[4];
    float sq[4][H] = {};
    bool some = false;
    for (int q = 0; q < 4 && k0 + q < K; ++q) {
      mine[q] = idx[k0 + q] >= lo && idx[k0 + q] < hi;
      some |= mine[q];
      std::memcpy(sq[q], s + (k0 + q) * H, sizeof sq[q]);
    }
    if (!some) continue;
    for (int64_t c = 0; c < Cp; c += 16) {
      V acc[4] = {};
#pragma GCC unroll 32
      for (int64_t j = 0; j < H; ++j) {
        const V d = load(dzt + j * Cp + c);
        for (int q = 0; q < 4; ++q) acc[q] += sq[q][j] * d;
      }
      const int64_t w = C - c < 16 ? C - c : 16;
      for (int q = 0; q < 4 && k0 + q < K; ++q) {  // in the order of the pairs (a row may repeat)
        if (!mine[q]) continue;
        float* out = grad_rows + idx[k0 + q] * C + c;
        if (w == 16) {
          store(out, load(out) + acc[q]);
        } else {
          float part[16];
          std::memcpy(part, &acc[q], sizeof part);
          for (int64_t i = 0; i < w; ++i) out[i] += part[i];
        }
      }
    }
  }
}

template <int NV>
void backward_groups(const float* rows, int64_t C, const int64_t* idx, const float* s, int64_t n, int64_t K,
                     const float* dz, float* z, float* gs, float* grad_rows, int64_t lo, int64_t hi, float* dzt) {
  const int64_t H = 16 * NV;
  for (int64_t g = 0; g < n; ++g) {
    const int64_t* ig = idx + g * K;
    const float* sg = s + g * K * H;
    const float* dg = dz + g * C * H;
    if (z) contract_groups<NV>(rows, C, ig, sg, 1, K, z + g * C * H);
    if (gs) ds_group<NV>(rows, C, ig, dg, K, gs + g * K * H);
    if (grad_rows && lo < hi) drows_group<NV>(dg, C, ig, sg, K, lo, hi, dzt, grad_rows);
  }
}

}  // namespace

extern "C" {

// z (n, C, H) of n groups (idx (n K,), s (n, K, H) from the first group on); returns 0, or -1
// when H is not 16 or 32
int lieconv_gather_contract(const float* rows, int64_t C, const int64_t* idx, const float* s, int64_t n,
                                           int64_t K, int64_t H, float* z) {
  if (H == 16)
    contract_groups<1>(rows, C, idx, s, n, K, z);
  else if (H == 32)
    contract_groups<2>(rows, C, idx, s, n, K, z);
  else
    return -1;
  return 0;
}

// For n groups with dz (n, C, H): z (n, C, H) again (z null: not), gs (n, K, H) (null: not), and
// grad_rows (rows, C) += the pairs' dz s whose row is in [lo, hi) (null or lo >= hi: not).
// Returns 0, or -1 when H is not 16 or 32.
int lieconv_gather_contract_grad(const float* rows, int64_t C, const int64_t* idx, const float* s,
                                                int64_t n, int64_t K, int64_t H, const float* dz, float* z, float* gs,
                                                float* grad_rows, int64_t lo, int64_t hi) {
  if (H != 16 && H != 32) return -1;
  float* dzt = grad_rows ? new float[(C + 15) / 16 * 16 * H]() : nullptr;  // padding stays zero
  if (H == 16)
    backward_groups<1>(rows, C, idx, s, n, K, dz, z, gs, grad_rows, lo, hi, dzt);
  else
    backward_groups<2>(rows, C, idx, s, n, K, dz, z, gs, grad_rows, lo, hi, dzt);
  delete[] dzt;
  return 0;
}

}  // extern "C"
