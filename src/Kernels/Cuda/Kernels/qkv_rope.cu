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
