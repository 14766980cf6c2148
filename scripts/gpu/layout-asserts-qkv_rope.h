// Field offsets of qkv_rope.cu's params (checked by check-kernels.sh; the C# twin by CudaHostTests).
static_assert(__builtin_offsetof(QkvRopeParams, kv) == 72, "");
static_assert(__builtin_offsetof(QkvRopeParams, pageStride) == 80, "");
static_assert(__builtin_offsetof(QkvRopeParams, tokens) == 96, "");
static_assert(__builtin_offsetof(QkvRopeParams, eps) == 124, "");
