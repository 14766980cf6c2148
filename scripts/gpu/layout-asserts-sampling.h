// Field offsets of sampling.cu's structs (checked by check-kernels.sh; the C# twins by CudaHostTests).
static_assert(__builtin_offsetof(SampleRow, topK) == 12, "");
static_assert(__builtin_offsetof(SampleRow, topP) == 16, "");
static_assert(__builtin_offsetof(SampleParams, out) == 24, "");
static_assert(__builtin_offsetof(SampleParams, vocab) == 36, "");
