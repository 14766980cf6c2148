static_assert(__builtin_offsetof(GemmParams, b) == 128, "");
static_assert(__builtin_offsetof(GemmParams, y) == 256, "");
static_assert(__builtin_offsetof(GemmParams, rows) == 264, "");
static_assert(__builtin_offsetof(GemmParams, group) == 296, "");
