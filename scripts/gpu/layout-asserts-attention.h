static_assert(__builtin_offsetof(KvWriteParams, pageStride) == 32, "");
static_assert(__builtin_offsetof(KvWriteParams, vRowStride) == 76, "");
static_assert(__builtin_offsetof(DecodeParams, pageStride) == 64, "");
static_assert(__builtin_offsetof(DecodeParams, scale) == 112, "");
static_assert(__builtin_offsetof(PrefillParams, pageStride) == 32, "");
static_assert(__builtin_offsetof(PrefillParams, scale) == 76, "");
