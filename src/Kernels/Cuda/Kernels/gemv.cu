// Decode-shaped matrix products: y (rows, n) = x (rows, k) · wᵀ with few rows (1..4 sequences decoding), w (n, k)
// row-major bf16 as a PyTorch Linear stores it, f32 accumulation, bf16 out. At decode the product is a stream over
// the weights (16 GB per token for Llama-3-8B): the only goal is to read w once at full memory bandwidth.
//
// Layout of the work: a warp owns COLS consecutive output columns (rows of w) and walks k in 16-byte pieces, each lane
// taking every 32nd piece; the x pieces it needs are loaded once per step and used for all COLS columns, so x's traffic
// through L1 is 1/COLS of w's. Weights are read with ld.global.nc.L1::no_allocate (read once, keep L1 for x).
// Partial sums are reduced across the warp with shuffles; lane 0 writes.
// gemv_swiglu: w is the fused gate/up matrix (2·inter, k) (gate rows first); the warp computes gate row j and up
// row j together and writes act[j] = silu(gate) · up, so the MLP's SwiGLU costs no launch and no round trip.
//
// Versions (H100, Llama-3-8B decode shapes, M = 1): measured by the kernel timing test, see docs/benchmarks.md.
// Requirements (checked by the launcher): k % 8 == 0, x, w and y 16-byte aligned.

// Output columns per warp, warps per block and 16-byte pieces of each row a lane loads per step; GemvKernels can set
// them (tuning runs) by prepending #defines, and sizes the grid from the same values.
#ifndef GEMV_COLS
#define GEMV_COLS 2
#endif
#ifndef GEMV_WARPS
#define GEMV_WARPS 8
#endif
#ifndef GEMV_STEP
#define GEMV_STEP 4
#endif

// Optional parts of the product (null pointers leave them out):
// - Norm: x is RMS-normalised first, x' = bf16(x / sqrt(mean(x^2) + Eps) * Norm) per row, as add_rmsnorm computes it:
//   each block stages the normalised rows in shared memory, so the decode step needs no separate norm launch;
// - Bias: y = bf16(bf16(acc) + Bias[col]);
// - Resid: y = bf16(Resid[row, col] + that), the residual add (Y may be Resid: each element is read and written by
//   the one lane that owns it).
struct GemvParams
{
    u64 X, W, Y, Norm, Bias, Resid;
    int Rows, K, N;
    float Eps;
};
static_assert(sizeof(GemvParams) == 64, "layout must match GemvKernels.GemvParams");

// The attention prologue folded into the qkv product (gemv_norm_rope_*): y is not written; instead each warp computes
// the column pair (i, i + d/2) of one head, adds the bias, and
// - for a q or k head rotates the pair (RoPE, rotate_half: out[i] = x[i] cos - x[i + d/2] sin, out[i + d/2] =
//   x[i + d/2] cos + x[i] sin, cos/sin row positions[m], or m when positions is null) and writes q to Q (rows, heads, d)
//   or k into the KV pool at the row's slot;
// - for a v head writes the pair into the pool.
// The same roundings as the GEMV + qkv_rope_kv pair: the product and the bias-add each rounded to bf16, the rotation
// in f32 rounded once. No q/k norm (Qwen3 takes the separate kernel). Needs GEMV_COLS == 2 and an even d.
struct RopeOut
{
    const float* Cos;
    const float* Sin;
    const int* Positions;
    const int* Slots;
    bf16_t* Q;
    bf16_t* Kv;
    long long PageStride;
    long long LayerOffset;
    int Heads, KvHeads, HeadDim, PageSize, TokenStride;
    int EarlyLaunch; // 1: the next kernel's blocks may start at PDL_WAIT (GemvKernels.EarlyQkvLaunch)
};
struct GemvRopeParams
{
    GemvParams G;
    RopeOut R;
};
static_assert(sizeof(GemvRopeParams) == 152, "layout must match GemvKernels.GemvRopeParams");

__device__ __forceinline__ vec16 ld_stream(const vec16* p)
{
    vec16 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// Dot product of 8 bf16 pairs packed in two vec16, accumulated into acc.
__device__ __forceinline__ float dot8(vec16 a, vec16 b, float acc)
{
    const unsigned int av[4] = { a.x, a.y, a.z, a.w };
    const unsigned int bv[4] = { b.x, b.y, b.z, b.w };
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        acc = fmaf(__uint_as_float(av[i] << 16), __uint_as_float(bv[i] << 16), acc);
        acc = fmaf(__uint_as_float(av[i] & 0xffff0000u), __uint_as_float(bv[i] & 0xffff0000u), acc);
    }
    return acc;
}

// acc[m][c] = x[m] · w[col0 + c] over this lane's pieces; SWIGLU doubles the columns (gate, then up at +n).
// The first step's weights are loaded before PDL_WAIT (weights are never written while steps run), so under a
// programmatic launch they stream in while the previous kernel drains; x is read only after it.
template <int M, bool SWIGLU, bool NORM, bool ROPE>
__device__ __forceinline__ void gemv_body(const GemvParams& p, const RopeOut& r)
{
    static_assert(!ROPE || (GEMV_COLS == 2 && !SWIGLU), "the RoPE epilogue takes column pairs (i, i + d/2)");
    extern __shared__ vec16 xs[]; // NORM: the M normalised rows of x
    const int lane = threadIdx.x & 31;
    const int warp = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const int half = ROPE ? r.HeadDim >> 1 : 0;
    // ROPE: warp w takes head w / half, columns i and i + half of it (i = w % half)
    const int col0 = ROPE ? (warp / half) * r.HeadDim + warp % half : warp * GEMV_COLS;
    const int colStep = ROPE ? half : 1;
    // a warp past n still joins the block's barriers (NORM) but loads and writes nothing
    const bool active = ROPE ? warp < (p.N >> 1) : col0 < p.N;
    constexpr int C = SWIGLU ? 2 * GEMV_COLS : GEMV_COLS;
    const int pieces = p.K >> 3;                       // 16-byte pieces per row
    const vec16* wrow[C];
#pragma unroll
    for (int c = 0; c < C; c++)
    {
        int col = min(col0 + (c % GEMV_COLS) * colStep, p.N - 1); // a valid row; its sum is never written
        if (SWIGLU && c >= GEMV_COLS) col += p.N;       // the up row pairs with gate row col
        wrow[c] = (const vec16*)p.W + (u64)col * pieces;
    }
    vec16 wv[C][GEMV_STEP];
    const vec16 zero = { 0u, 0u, 0u, 0u };
    int i = lane;
#pragma unroll
    for (int c = 0; c < C; c++)
#pragma unroll
        for (int s = 0; s < GEMV_STEP; s++) wv[c][s] = active && i + 32 * s < pieces ? ld_stream(wrow[c] + i + 32 * s) : zero;

    PDL_WAIT();
    // ROPE with EarlyLaunch: the attention after the qkv product starts now, so paged_decode_tma streams the key tiles
    // this kernel does not write while it runs (its early loads; it waits for this kernel before it reads q)
    if (ROPE && r.EarlyLaunch) PDL_LAUNCH();
    const vec16* x = (const vec16*)p.X;
    if (NORM)
    {
        __shared__ float scratch[32];
        const vec16* nw = (const vec16*)p.Norm;
        for (int m = 0; m < M; m++)
        {
            float ss = 0.f;
            for (int k = threadIdx.x; k < pieces; k += blockDim.x)
            {
                vec16 v = x[(u64)m * pieces + k];
                xs[m * pieces + k] = v;
                float f[8];
                unpack8(v, f);
#pragma unroll
                for (int e = 0; e < 8; e++) ss += f[e] * f[e];
            }
            float inv = rsqrtf(block_sum(ss, scratch) / (float)p.K + p.Eps);
            // each thread rescales only the pieces it staged above
            for (int k = threadIdx.x; k < pieces; k += blockDim.x)
            {
                float f[8], w[8];
                unpack8(xs[m * pieces + k], f);
                unpack8(nw[k], w);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] = f[e] * inv * w[e];
                xs[m * pieces + k] = pack8(f);
            }
        }
        __syncthreads();
        x = xs;
    }
    if (!active) return;

    float acc[M][C];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[m][c] = 0.f;
    while (true)
    {
#pragma unroll
        for (int s = 0; s < GEMV_STEP; s++)
        {
            int k = i + 32 * s;
            if (k >= pieces) break;
#pragma unroll
            for (int m = 0; m < M; m++)
            {
                vec16 xv = x[(u64)m * pieces + k];
#pragma unroll
                for (int c = 0; c < C; c++) acc[m][c] = dot8(wv[c][s], xv, acc[m][c]);
            }
        }
        i += 32 * GEMV_STEP;
        if (i >= pieces) break;
#pragma unroll
        for (int c = 0; c < C; c++)
#pragma unroll
            for (int s = 0; s < GEMV_STEP; s++) wv[c][s] = i + 32 * s < pieces ? ld_stream(wrow[c] + i + 32 * s) : zero;
    }
    // the next kernel's blocks may start now (starting them at the wait instead was 2 % slower on an H100 chain of
    // decode products: waiting blocks hold SM slots the tail of this grid could use)
    PDL_LAUNCH();
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[m][c] = warp_sum(acc[m][c]);
    if (lane != 0) return;
    bf16_t* y = (bf16_t*)p.Y;
    const bf16_t* bias = (const bf16_t*)p.Bias;
    const bf16_t* resid = (const bf16_t*)p.Resid;
    if (ROPE)
    {
        const int d = r.HeadDim, h = col0 / d, i = col0 % d;
#pragma unroll
        for (int m = 0; m < M; m++)
        {
            float a = bf2f(f2bf(acc[m][0])), b = bf2f(f2bf(acc[m][1]));
            if (bias) { a = bf2f(f2bf(a + bf2f(bias[col0]))); b = bf2f(f2bf(b + bf2f(bias[col0 + half]))); }
            int s = r.Slots[m];
            u64 kslot = (u64)(s / r.PageSize) * r.PageStride + r.LayerOffset + (u64)(s % r.PageSize) * r.TokenStride;
            bf16_t* dst;
            if (h >= r.Heads + r.KvHeads)
                dst = r.Kv + kslot + (u64)r.PageSize * r.TokenStride + (u64)(h - r.Heads - r.KvHeads) * d;
            else
            {
                int row = r.Positions ? r.Positions[m] : m;
                float cs = r.Cos[(u64)row * half + i], sn = r.Sin[(u64)row * half + i];
                float ra = a * cs - b * sn, rb = b * cs + a * sn;
                a = ra;
                b = rb;
                dst = h < r.Heads ? r.Q + ((u64)m * r.Heads + h) * d : r.Kv + kslot + (u64)(h - r.Heads) * d;
            }
            dst[i] = f2bf(a);
            dst[i + half] = f2bf(b);
        }
        return;
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < GEMV_COLS; c++)
        {
            int col = col0 + c;
            if (col >= p.N) continue;
            float v = acc[m][c];
            if (SWIGLU)
            {
                // The bf16 rounding of gate and up first, as the unfused path stores them before SwiGLU reads them.
                float g = bf2f(f2bf(v)), u = bf2f(f2bf(acc[m][c + GEMV_COLS]));
                v = g / (1.f + expf(-g)) * u;
            }
            bf16_t r = f2bf(v);
            if (bias) r = f2bf(bf2f(r) + bf2f(bias[col]));
            if (resid) r = f2bf(bf2f(resid[(u64)m * p.N + col]) + bf2f(r));
            y[(u64)m * p.N + col] = r;
        }
}

__device__ const RopeOut NoRope = {};

#if GEMV_COLS == 2
#define GEMV_ROPE_KERNEL(M) \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_norm_rope_##M(GemvRopeParams p) { gemv_body<M, false, true, true>(p.G, p.R); }
#else
#define GEMV_ROPE_KERNEL(M)
#endif

#define GEMV_KERNELS(M) \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_##M(GemvParams p) { gemv_body<M, false, false, false>(p, NoRope); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_swiglu_##M(GemvParams p) { gemv_body<M, true, false, false>(p, NoRope); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_norm_##M(GemvParams p) { gemv_body<M, false, true, false>(p, NoRope); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_norm_swiglu_##M(GemvParams p) { gemv_body<M, true, true, false>(p, NoRope); } \
    GEMV_ROPE_KERNEL(M)

GEMV_KERNELS(1)
GEMV_KERNELS(2)
GEMV_KERNELS(3)
GEMV_KERNELS(4)
