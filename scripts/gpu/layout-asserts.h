// Field offsets of the kernel params structs, checked by check-kernels.sh with clang; the same numbers are checked on
// the C# twins by CudaHostTests.Params_structs_match_the_cuda_layout.
static_assert(__builtin_offsetof(EmbeddingParams, vocab) == 32, "");
static_assert(__builtin_offsetof(RmsNormParams, eps) == 40, "");
static_assert(__builtin_offsetof(RopeParams, rowStride) == 44, "");
static_assert(__builtin_offsetof(SwiGluParams, outStride) == 36, "");
