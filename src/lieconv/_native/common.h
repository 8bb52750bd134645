// Shared by the kernels of lieconv.native.  LIECONV_CLONES builds a function for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2) and the baseline, the dynamic loader picking the best one the CPU runs (GCC on
// x86-64; elsewhere a single build).  LIECONV_X86: the intrinsics are there (GCC-compatible compiler
// on x86-64), and kAvx512 says whether this CPU runs the hand-written AVX-512 paths.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LIECONV_X86 1
static const bool kAvx512 = __builtin_cpu_supports("avx512f");
#else
static const bool kAvx512 = false;
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LIECONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LIECONV_CLONES
#endif
