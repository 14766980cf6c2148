static_assert(__builtin_offsetof(GemmParams, b) == 128, "");
static_assert(__builtin_offsetof(GemmParams, c) == 256, "");
static_assert(__builtin_offsetof(GemmParams, y) == 384, "");
static_assert(__builtin_offsetof(GemmParams, rows) == 392, "");
static_assert(__builtin_offsetof(GemmParams, group) == 424, "");
static_assert(__builtin_offsetof(GemmParams, tmaStore) == 428, "");
