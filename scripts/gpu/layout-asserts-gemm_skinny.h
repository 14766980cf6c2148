// Offsets of SkinnyGemmKernels.SkinnyParams (C#, LayoutKind.Sequential), checked against the CUDA struct.
static_assert(__builtin_offsetof(SkinnyParams, X) == 0, "X");
static_assert(__builtin_offsetof(SkinnyParams, W) == 8, "W");
static_assert(__builtin_offsetof(SkinnyParams, Y) == 16, "Y");
static_assert(__builtin_offsetof(SkinnyParams, Rows) == 24, "Rows");
static_assert(__builtin_offsetof(SkinnyParams, K) == 28, "K");
static_assert(__builtin_offsetof(SkinnyParams, N) == 32, "N");
