static_assert(__builtin_offsetof(WgmmaPrefillParams, p) == 128, "");
static_assert(__builtin_offsetof(WgmmaPrefillParams, acc) == 208, "");
static_assert(__builtin_offsetof(WgmmaPrefillParams, splits) == 232, "");
static_assert(__builtin_offsetof(TmaDecodeParams, p) == 128, "");
static_assert(__builtin_offsetof(TmaDecodeParams, early) == 248, "");
