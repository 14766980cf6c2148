// The attention prologue of one layer in one launch: from the fused qkv GEMM output, add the q/k/v bias (Qwen2),
// RMS-norm every q and k head (Qwen3's q_norm / k_norm), rotate q and k (RoPE, rotate_half layout, from cos/sin tables
// that already carry the scaling type and attention factor), write q to its (tokens, heads, headDim) buffer and k, v
// into the paged KV pool at each token's global slot. Replaces bias_add + qk_norm + rope (q) + rope (k) +
// kv_write_slots + gather_rows, with the same bf16 rounding after each step, so results equal the separate kernels'.
// Launcher and scalar reference: QkvRope.cs (QkvRopeKernels).
//
// qkv: (tokens, stride) bf16, a row = [q heads (heads·d) | k heads (kvHeads·d) | v heads (kvHeads·d)].
// bias: (heads + 2·kvHeads)·d or null. qNorm, kNorm: (d) or null (both or neither). cos, sin: (tableRows, d/2) f32;
// token t uses row positions[t], or t when positions is null. slots[t] = page · pageSize + slot.
// q: (tokens, heads·d). kv: the pool, page p at p · pageStride; layer block at layerOffset; K (pageSize, tokenStride)
// then V (pageSize, tokenStride), tokenStride = kvHeads · d. Odd d: the last channel is not rotated (as rope).
// Grid: ceil(tokens · (heads + 2·kvHeads) / QKV_WARPS) blocks of QKV_WARPS warps; one warp per (token, head).
#define QKV_WARPS 8
#define QKV_MAX_DIM 256

struct QkvRopeParams
{
    const bf16_t* qkv;
    const bf16_t* bias;
    const bf16_t* qNorm;
    const bf16_t* kNorm;
    const float* cos;
    const float* sin;
    const int* positions;
    const int* slots;
    bf16_t* q;
    bf16_t* kv;
    long long pageStride;
    long long layerOffset;
    int tokens;
    int stride;
    int heads;
    int kvHeads;
    int headDim;
    int pageSize;
    int tokenStride;
    float eps;
};
static_assert(sizeof(QkvRopeParams) == 128, "layout must match QkvRopeKernels.QkvRopeParams");

extern "C" __global__ void __launch_bounds__(QKV_WARPS * 32) qkv_rope_kv(QkvRopeParams p)
{
    PDL_ENTER();
    __shared__ float buf[QKV_WARPS][QKV_MAX_DIM];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int per = p.heads + 2 * p.kvHeads;
    u64 job = (u64)blockIdx.x * QKV_WARPS + w;
    if (job >= (u64)p.tokens * per) return; // whole warps leave together: no later warp-wide step misses a lane
    int t = (int)(job / per), h = (int)(job % per), d = p.headDim;
    const bf16_t* src = p.qkv + (u64)t * p.stride + (u64)h * d;
    const bf16_t* bias = p.bias ? p.bias + (u64)h * d : 0;
    int s = p.slots[t];
    u64 kslot = (u64)(s / p.pageSize) * p.pageStride + p.layerOffset + (u64)(s % p.pageSize) * p.tokenStride;

    if (h >= p.heads + p.kvHeads)
    {
        // v: bias only, straight into the V block.
        bf16_t* dst = p.kv + kslot + (u64)p.pageSize * p.tokenStride + (u64)(h - p.heads - p.kvHeads) * d;
        for (int i = lane; i < d; i += 32) dst[i] = bias ? f2bf(bf2f(src[i]) + bf2f(bias[i])) : src[i];
        return;
    }
    bool isQ = h < p.heads;
    float* x = buf[w];
    float ss = 0.f;
    for (int i = lane; i < d; i += 32)
    {
        float v = bias ? bf2f(f2bf(bf2f(src[i]) + bf2f(bias[i]))) : bf2f(src[i]);
        x[i] = v;
        ss += v * v;
    }
    const bf16_t* nw = isQ ? p.qNorm : p.kNorm;
    if (nw)
    {
        // qk_norm's reduction (lane-strided partial sums, then a butterfly), so the sums agree bit for bit.
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        float inv = rsqrtf(ss / d + p.eps);
        for (int i = lane; i < d; i += 32) x[i] = bf2f(f2bf(bf2f(nw[i]) * bf2f(f2bf(x[i] * inv))));
    }
    __syncwarp();
    int half = d / 2;
    int row = p.positions ? p.positions[t] : t;
    const float* cr = p.cos + (u64)row * half;
    const float* sr = p.sin + (u64)row * half;
    bf16_t* dst = isQ ? p.q + (u64)t * p.heads * d + (u64)h * d : p.kv + kslot + (u64)(h - p.heads) * d;
    for (int i = lane; i < half; i += 32)
    {
        float c = cr[i], sn = sr[i];
        float a = x[i], b = x[i + half];
        dst[i] = f2bf(a * c - b * sn);
        dst[i + half] = f2bf(b * c + a * sn);
    }
    if ((d & 1) && lane == 0) dst[d - 1] = f2bf(x[d - 1]);
}

// qkv_rope_kv for head dim 128 with 8-byte accesses: lane l holds channels 4l .. 4l + 3 in registers (no shared
// memory); RoPE's partner channel i ± 64 sits in lane l ^ 16 at the same place, one shuffle away. Same bf16 roundings
// per element as qkv_rope_kv (the q/k norm's sum of squares is added in another order). Requirements (checked by the
// launcher): stride % 4 == 0; qkv, bias, norms, q and the pool 8-byte aligned; cos and sin 16-byte aligned.
// Grid and block as qkv_rope_kv.
struct alignas(8) vec8 { unsigned int x, y; };    // 4 bf16
struct alignas(16) f32x4 { float x, y, z, w; };

__device__ __forceinline__ void unpack4(vec8 v, float* f)
{
    f[0] = __uint_as_float(v.x << 16); f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16); f[3] = __uint_as_float(v.y & 0xffff0000u);
}

__device__ __forceinline__ vec8 pack4(const float* f)
{
    vec8 v;
    v.x = (unsigned int)f2bf(f[0]) | ((unsigned int)f2bf(f[1]) << 16);
    v.y = (unsigned int)f2bf(f[2]) | ((unsigned int)f2bf(f[3]) << 16);
    return v;
}

extern "C" __global__ void __launch_bounds__(QKV_WARPS * 32) qkv_rope_kv128(QkvRopeParams p)
{
    PDL_ENTER();
    const int d = 128, half = 64;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, e0 = lane * 4;
    int per = p.heads + 2 * p.kvHeads;
    u64 job = (u64)blockIdx.x * QKV_WARPS + w;
    if (job >= (u64)p.tokens * per) return; // whole warps leave together
    int t = (int)(job / per), h = (int)(job % per);
    float x[4];
    unpack4(*(const vec8*)(p.qkv + (u64)t * p.stride + (u64)h * d + e0), x);
    if (p.bias)
    {
        float b[4];
        unpack4(*(const vec8*)(p.bias + (u64)h * d + e0), b);
#pragma unroll
        for (int k = 0; k < 4; k++) x[k] = bf2f(f2bf(x[k] + b[k]));
    }
    int s = p.slots[t];
    u64 kslot = (u64)(s / p.pageSize) * p.pageStride + p.layerOffset + (u64)(s % p.pageSize) * p.tokenStride;
    if (h >= p.heads + p.kvHeads)
    {
        *(vec8*)(p.kv + kslot + (u64)p.pageSize * p.tokenStride + (u64)(h - p.heads - p.kvHeads) * d + e0) = pack4(x);
        return;
    }
    bool isQ = h < p.heads;
    const bf16_t* nw = isQ ? p.qNorm : p.kNorm;
    if (nw)
    {
        float ss = x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3];
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        float inv = rsqrtf(ss / d + p.eps), g[4];
        unpack4(*(const vec8*)(nw + e0), g);
#pragma unroll
        for (int k = 0; k < 4; k++) x[k] = bf2f(f2bf(g[k] * bf2f(f2bf(x[k] * inv))));
    }
    int row = p.positions ? p.positions[t] : t;
    f32x4 c = *(const f32x4*)(p.cos + (u64)row * half + (e0 & (half - 1)));
    f32x4 sn = *(const f32x4*)(p.sin + (u64)row * half + (e0 & (half - 1)));
    const float cv[4] = { c.x, c.y, c.z, c.w }, sv[4] = { sn.x, sn.y, sn.z, sn.w };
    float y[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
    {
        float other = __shfl_xor_sync(0xffffffffu, x[k], 16);
        // first half: out[i] = x[i] cos - x[i + half] sin; second half: out[i + half] = x[i + half] cos + x[i] sin
        y[k] = lane < 16 ? x[k] * cv[k] - other * sv[k] : x[k] * cv[k] + other * sv[k];
    }
    bf16_t* dst = isQ ? p.q + (u64)t * p.heads * d + (u64)h * d : p.kv + kslot + (u64)(h - p.heads) * d;
    *(vec8*)(dst + e0) = pack4(y);
}

// qkv_rope_kv for head dim 128, a block per token (prefill): half-warp k of warp w takes heads w * 2 + k + 16 j, lane l
// of it channels 8l .. 8l + 7 (16-byte accesses); RoPE's partner channel i ± 64 is in lane l ^ 8 of the same half.
// A lane loads all its heads' channels (up to QKV_TOKEN_HEADS of them), and the token's cos and sin, before any
// arithmetic: qkv_rope_kv128 had one 8-byte load in flight per thread and moved ~1.5 TB/s. Same bf16 roundings per
// element as qkv_rope_kv128. Requirements (checked by the launcher): stride % 8 == 0; qkv, bias, norms, q, the pool,
// cos and sin 16-byte aligned; heads + 2 kvHeads <= 16 QKV_TOKEN_HEADS. Grid: tokens blocks of 256 threads.
#define QKV_TOKEN_HEADS 4

extern "C" __global__ void __launch_bounds__(256) qkv_rope_kv128t(QkvRopeParams p)
{
    PDL_ENTER();
    const int d = 128, half = 64;
    int lane = threadIdx.x & 31, l = lane & 15, e0 = l * 8;
    int first = (threadIdx.x >> 5) * 2 + (lane >> 4); // this half-warp's first head; then + 16 j
    unsigned int mask = 0xffffu << (lane & 16);       // the half-warp's lanes
    int t = blockIdx.x, per = p.heads + 2 * p.kvHeads;
    const bf16_t* row = p.qkv + (u64)t * p.stride;
    vec16 raw[QKV_TOKEN_HEADS];
#pragma unroll
    for (int j = 0; j < QKV_TOKEN_HEADS; j++)
        if (first + 16 * j < per) raw[j] = *(const vec16*)(row + (u64)(first + 16 * j) * d + e0);
    int s = p.slots[t];
    u64 kslot = (u64)(s / p.pageSize) * p.pageStride + p.layerOffset + (u64)(s % p.pageSize) * p.tokenStride;
    int pos = p.positions ? p.positions[t] : t;
    const f32x4* cr = (const f32x4*)(p.cos + (u64)pos * half + (e0 & (half - 1)));
    const f32x4* sr = (const f32x4*)(p.sin + (u64)pos * half + (e0 & (half - 1)));
    f32x4 c0 = cr[0], c1 = cr[1], s0 = sr[0], s1 = sr[1];
    const float cv[8] = { c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w }, sv[8] = { s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w };
#pragma unroll
    for (int j = 0; j < QKV_TOKEN_HEADS; j++)
    {
        int h = first + 16 * j;
        if (h >= per) break; // the whole half-warp: no later shuffle misses a lane of its mask
        float x[8];
        unpack8(raw[j], x);
        if (p.bias)
        {
            float b[8];
            unpack8(*(const vec16*)(p.bias + (u64)h * d + e0), b);
#pragma unroll
            for (int k = 0; k < 8; k++) x[k] = bf2f(f2bf(x[k] + b[k]));
        }
        if (h >= p.heads + p.kvHeads)
        {
            *(vec16*)(p.kv + kslot + (u64)p.pageSize * p.tokenStride + (u64)(h - p.heads - p.kvHeads) * d + e0) = pack8(x);
            continue;
        }
        bool isQ = h < p.heads;
        const bf16_t* nw = isQ ? p.qNorm : p.kNorm;
        if (nw)
        {
            float ss = 0.f;
#pragma unroll
            for (int k = 0; k < 8; k++) ss += x[k] * x[k];
            for (int o = 8; o > 0; o >>= 1) ss += __shfl_xor_sync(mask, ss, o);
            float inv = rsqrtf(ss / d + p.eps), g[8];
            unpack8(*(const vec16*)(nw + e0), g);
#pragma unroll
            for (int k = 0; k < 8; k++) x[k] = bf2f(f2bf(g[k] * bf2f(f2bf(x[k] * inv))));
        }
        float y[8];
#pragma unroll
        for (int k = 0; k < 8; k++)
        {
            float other = __shfl_xor_sync(mask, x[k], 8);
            // first half: out[i] = x[i] cos - x[i + half] sin; second half: out[i + half] = x[i + half] cos + x[i] sin
            y[k] = l < 8 ? x[k] * cv[k] - other * sv[k] : x[k] * cv[k] + other * sv[k];
        }
        bf16_t* dst = isQ ? p.q + (u64)t * p.heads * d + (u64)h * d : p.kv + kslot + (u64)(h - p.heads) * d;
        *(vec16*)(dst + e0) = pack8(y);
    }
}
