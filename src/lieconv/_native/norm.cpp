// The batch norm's statistics of the kernel MLP from its masked column sums (lieconv.native.bn_affine /
// bn_affine_grad): MaskBatchNorm.sums_affine and sums_affine_grad for a count n >= 1 known on the
// host, on d channels, the dozen (d,)-sized torch operators of each in one loop.  The sums and their
// derivatives in double, the affine map in float (as torch computes them from float parameters):
//
//   mean = S1 / n,  v = S2 / n - mean^2,  var = max(v, 0),  r = (var + eps)^(-1/2)
//   scale = weight r,  shift = bias - mean scale
//   running_mean += momentum (mean + offset - running_mean),  running_var likewise with var n / (n - 1)
//   (n > 1), and from (gs, gc) = dL/d(scale, shift):  dL/dweight = (gs - gc mean) r,
//   dL/dvar = -(gs - gc mean) weight r^3 / 2 (0 where v < 0),  dL/dS2 = dL/dvar / n,
//   dL/dS1 = (-gc weight r - 2 mean dL/dvar) / n
#include <cmath>
#include <cstdint>

extern "C" {

void lieconv_bn_affine(const double* s1, const double* s2, double n, int64_t d, const float* weight, const float* bias,
                       float eps, const float* offset, float* scale, float* shift, float* running_mean,
                       float* running_var, float momentum) {
  for (int64_t j = 0; j < d; ++j) {
    const double mean = s1[j] / n;
    double var = s2[j] / n - mean * mean;
    var = var < 0.0 ? 0.0 : var;
    const float r = 1.0f / std::sqrt(static_cast<float>(var) + eps);
    scale[j] = weight[j] * r;
    shift[j] = bias[j] - static_cast<float>(mean) * scale[j];
    if (running_mean && n > 1.0) {
      const float m = static_cast<float>(mean + (offset ? static_cast<double>(offset[j]) : 0.0));
      const float u = static_cast<float>(var * (n / (n - 1.0)));
      running_mean[j] += momentum * (m - running_mean[j]);
      running_var[j] += momentum * (u - running_var[j]);
    }
  }
}

void lieconv_bn_affine_grad(const double* s1, const double* s2, double n, int64_t d, const float* weight, float eps,
                            const float* gs, const float* gc, float* g_weight, double* d1, double* d2) {
  for (int64_t j = 0; j < d; ++j) {
    const double mean = s1[j] / n;
    const double v = s2[j] / n - mean * mean;
    const float r = 1.0f / std::sqrt(static_cast<float>(v < 0.0 ? 0.0 : v) + eps);
    const float total = gs[j] - gc[j] * static_cast<float>(mean);
    const double g_var = v < 0.0 ? 0.0 : static_cast<double>(total * weight[j] * (r * r * r) * -0.5f);
    const double g_mean = static_cast<double>(-gc[j] * weight[j] * r);
    g_weight[j] = total * r;
    d1[j] = (g_mean - 2.0 * mean * g_var) / n;
    d2[j] = g_var / n;
  }
}

}  // extern "C"
