// Offsets of gemv.cu's params structs, as GemvKernels lays them out (checked by scripts/gpu/check-kernels.sh).
static_assert(__builtin_offsetof(GemvParams, Norm) == 24, "");
static_assert(__builtin_offsetof(GemvParams, Eps) == 60, "");
static_assert(__builtin_offsetof(GemvRopeParams, R) == 64, "");
static_assert(__builtin_offsetof(RopeOut, PageStride) == 48, "");
static_assert(__builtin_offsetof(RopeOut, Heads) == 64, "");
static_assert(__builtin_offsetof(RopeOut, EarlyLaunch) == 84, "");
