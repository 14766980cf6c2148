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
template <int M, bool SWIGLU, bool NORM>
__device__ __forceinline__ void gemv_body(const GemvParams& p)
{
    extern __shared__ vec16 xs[]; // NORM: the M normalised rows of x
    const int lane = threadIdx.x & 31;
    const int warp = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const int col0 = warp * GEMV_COLS;
    // a warp past n still joins the block's barriers (NORM) but loads and writes nothing
    const bool active = col0 < p.N;
    constexpr int C = SWIGLU ? 2 * GEMV_COLS : GEMV_COLS;
    const int pieces = p.K >> 3;                       // 16-byte pieces per row
    const vec16* wrow[C];
#pragma unroll
    for (int c = 0; c < C; c++)
    {
        int col = min(col0 + (c % GEMV_COLS), p.N - 1); // a valid row; its sum is never written
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
#ifndef GEMV_LATE_TRIGGER
    PDL_LAUNCH();
#endif
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
#ifdef GEMV_LATE_TRIGGER
    PDL_LAUNCH();
#endif
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[m][c] = warp_sum(acc[m][c]);
    if (lane != 0) return;
    bf16_t* y = (bf16_t*)p.Y;
    const bf16_t* bias = (const bf16_t*)p.Bias;
    const bf16_t* resid = (const bf16_t*)p.Resid;
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

#define GEMV_KERNELS(M) \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_##M(GemvParams p) { gemv_body<M, false, false>(p); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_swiglu_##M(GemvParams p) { gemv_body<M, true, false>(p); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_norm_##M(GemvParams p) { gemv_body<M, false, true>(p); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_norm_swiglu_##M(GemvParams p) { gemv_body<M, true, true>(p); }

GEMV_KERNELS(1)
GEMV_KERNELS(2)
GEMV_KERNELS(3)
GEMV_KERNELS(4)
