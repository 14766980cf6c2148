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

#define GEMV_COLS 2
#define GEMV_WARPS 8

struct GemvParams
{
    u64 X, W, Y;
    int Rows, K, N, Pad;
};
static_assert(sizeof(GemvParams) == 40, "layout must match GemvKernels.GemvParams");

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
template <int M, bool SWIGLU>
__device__ __forceinline__ void gemv_body(const GemvParams& p)
{
    const int lane = threadIdx.x & 31;
    const int warp = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const int col0 = warp * GEMV_COLS;
    if (col0 >= p.N) return;
    constexpr int C = SWIGLU ? 2 * GEMV_COLS : GEMV_COLS;
    const int pieces = p.K >> 3;                       // 16-byte pieces per row
    const vec16* x = (const vec16*)p.X;
    const vec16* wrow[C];
#pragma unroll
    for (int c = 0; c < C; c++)
    {
        int col = col0 + (c % GEMV_COLS);
        if (col >= p.N) col = p.N - 1;                 // a valid row; its sum is never written
        if (SWIGLU && c >= GEMV_COLS) col += p.N;      // the up row pairs with gate row col
        wrow[c] = (const vec16*)p.W + (u64)col * pieces;
    }
    float acc[M][C];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[m][c] = 0.f;

    int i = lane;
    // Two pieces per lane per step: all the loads of a step are issued before any math uses them.
    for (; i + 32 < pieces; i += 64)
    {
        vec16 wv[C][2];
#pragma unroll
        for (int c = 0; c < C; c++) { wv[c][0] = ld_stream(wrow[c] + i); wv[c][1] = ld_stream(wrow[c] + i + 32); }
#pragma unroll
        for (int m = 0; m < M; m++)
        {
            vec16 x0 = x[(u64)m * pieces + i], x1 = x[(u64)m * pieces + i + 32];
#pragma unroll
            for (int c = 0; c < C; c++) acc[m][c] = dot8(wv[c][1], x1, dot8(wv[c][0], x0, acc[m][c]));
        }
    }
    for (; i < pieces; i += 32)
    {
        vec16 wv[C];
#pragma unroll
        for (int c = 0; c < C; c++) wv[c] = ld_stream(wrow[c] + i);
#pragma unroll
        for (int m = 0; m < M; m++)
        {
            vec16 x0 = x[(u64)m * pieces + i];
#pragma unroll
            for (int c = 0; c < C; c++) acc[m][c] = dot8(wv[c], x0, acc[m][c]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[m][c] = warp_sum(acc[m][c]);
    if (lane != 0) return;
    bf16_t* y = (bf16_t*)p.Y;
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
            y[(u64)m * p.N + col] = f2bf(v);
        }
}

#define GEMV_KERNELS(M) \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_##M(GemvParams p) { gemv_body<M, false>(p); } \
    extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_swiglu_##M(GemvParams p) { gemv_body<M, true>(p); }

GEMV_KERNELS(1)
GEMV_KERNELS(2)
GEMV_KERNELS(3)
GEMV_KERNELS(4)
