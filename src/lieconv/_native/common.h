// Shared by the kernels of lieconv.native.  LIECONV_CLONES builds a function for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2) and the baseline, the dynamic loader picking the best one the CPU runs (GCC on
// x86-64; elsewhere a single build).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LIECONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LIECONV_CLONES
#endif
