// Products of few rows (5..64: decode batches past gemv.cu's 4 rows, a resumed turn's new tokens) on tensor cores:
// y (rows, n) = x (rows, k) · wᵀ, w (n, k) row-major bf16 as a PyTorch Linear stores it, f32 accumulation, bf16 out.
// Like gemv.cu the product is a stream over the weights; unlike it, x's rows cost tensor-core work, not a CUDA-core
// dot product per row (gemv.cu slowed past 4 rows).
//
// Layout of the work (compute capability 9.0: thread block clusters):
// - A block of 8 warps owns 128 columns (gate/up with SwiGLU: 64 gate rows and the same 64 up rows) over an eighth of
//   k; the 8 blocks of a cluster (1, 8, 1) take the 8 eighths of the same columns, so every (column, split) is one
//   block and the split sum never leaves the cluster.
// - A warp owns two n8 tiles (16 consecutive columns, or 8 gate and the matching 8 up rows) and walks its eighth of k
//   in chunks of 32: mma.sync m16n8k16 (bf16 in, f32 accumulation) on MT 16-row tiles of x.
// - k is permuted inside each 32-wide chunk, the same way for x and w (a product's sum does not depend on the order of
//   k): lane (g, t) = (lane / 4, lane % 4) loads the 16 bytes w[col + g][chunk + 8t .. 8t + 7] with one vector load
//   (ld.global.nc, no L1 allocation), and the 16 bytes x[row][chunk + 8t .. 8t + 7] of rows g and g + 8 of each row
//   tile; words 0-1 of them feed the chunk's first mma (its k pairs 2t and 2t + 8), words 2-3 the second.
// - The split sums: each block writes its partial (MT·16 rows x 128 columns, f32) to shared memory, the cluster
//   synchronises, and rank r reads columns 16r .. 16r + 15 of all 8 partials (distributed shared memory, ranks in
//   order: the sum is the same on every run) and writes them: bf16(sum), bf16(y + sum) with Accumulate (the residual
//   add, rounded once as cuBLASLt's beta = 1), or SwiGLU: bf16(silu(bf16(gate)) · bf16(up)), as gemv.cu rounds it.
// Requirements (checked by the launcher): k % 32 == 0, n % 8 == 0 (inter % 8 == 0), x and w 16-byte aligned, y 4-byte.

#define SK_SPLITS 8   // blocks per cluster: the k splits of one column block
#define SK_WARPS 8
#define SK_STEP 4     // 32-wide chunks of k whose weights a lane loads before it computes them
#define SK_COLS 128   // columns per block
#define SK_LD (SK_COLS + 8) // partial row stride in floats (rows g and g + 4 fall on different banks)

struct SkinnyParams
{
    u64 X, W, Y;
    int Rows, K, N;   // N: columns of y (SwiGLU: inter; w then has 2·inter rows, gate rows first)
    int Pad;
};
static_assert(sizeof(SkinnyParams) == 40, "layout must match SkinnyGemmKernels.SkinnyParams");

struct alignas(8) fpair { float x, y; };

__device__ __forceinline__ vec16 ld_weights(const vec16* p)
{
    vec16 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

__device__ __forceinline__ vec16 ld_x(const vec16* p)
{
    vec16 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

__device__ __forceinline__ void mma16816(float* d, unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3, unsigned int b0, unsigned int b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void sk_cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Two floats at the same shared-memory offset in the cluster's block `rank`.
__device__ __forceinline__ fpair ld_cluster2(unsigned int addr, unsigned int rank)
{
    fpair v;
    asm volatile("{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %2, %3;\nld.shared::cluster.v2.f32 {%0, %1}, [remote];\n}"
                 : "=f"(v.x), "=f"(v.y) : "r"(addr), "r"(rank) : "memory");
    return v;
}

// MODE 0: y = x wᵀ; 1: y += x wᵀ (one rounding); 2: SwiGLU of the gate/up product.
template <int MT, int MODE>
__device__ __forceinline__ void skinny_body(const SkinnyParams& p)
{
    __shared__ __attribute__((aligned(16))) float part[MT * 16 * SK_LD];
    constexpr bool SWIGLU = MODE == 2;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int rank = blockIdx.y; // the cluster spans the grid's y: rank = split
    const int chunks = p.K >> 5, perSplit = (chunks + SK_SPLITS - 1) / SK_SPLITS;
    const int c0 = rank * perSplit, c1 = min(chunks, c0 + perSplit);
    const int pieces = p.K >> 3; // 16-byte pieces per row
    const int wRows = SWIGLU ? 2 * p.N : p.N;

    // the weight rows of this lane's two tiles (lane g's column of each n8 tile)
    int col[2];
    if (SWIGLU)
    {
        int j = blockIdx.x * (SK_COLS / 2) + warp * 8 + g;
        col[0] = j;           // gate
        col[1] = j + p.N;     // up
    }
    else
    {
        col[0] = blockIdx.x * SK_COLS + warp * 16 + g;
        col[1] = col[0] + 8;
    }
    const vec16* wrow[2];
#pragma unroll
    for (int j = 0; j < 2; j++) wrow[j] = (const vec16*)p.W + (u64)min(col[j], wRows - 1) * pieces + 4 * c0 + t; // a valid row; its sums are never written

    const vec16 zero = { 0u, 0u, 0u, 0u };
    vec16 wv[2][SK_STEP];
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int s = 0; s < SK_STEP; s++) wv[j][s] = c0 + s < c1 ? ld_weights(wrow[j] + 4 * s) : zero;

    PDL_WAIT();
    float acc[MT][2][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[m][j][e] = 0.f;
    // this lane's rows of x: g and g + 8 of each row tile (rows past Rows read as zero)
    const vec16* xrow[MT][2];
    bool xok[MT][2];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int h = 0; h < 2; h++)
        {
            int r = m * 16 + g + 8 * h;
            xok[m][h] = r < p.Rows;
            xrow[m][h] = (const vec16*)p.X + (u64)min(r, p.Rows - 1) * pieces + t;
        }

    for (int c = c0; c < c1; c += SK_STEP)
    {
#pragma unroll
        for (int s = 0; s < SK_STEP; s++)
        {
            if (c + s >= c1) break;
            vec16 xa[MT][2];
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int h = 0; h < 2; h++) xa[m][h] = xok[m][h] ? ld_x(xrow[m][h] + 4 * (c + s)) : zero;
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int j = 0; j < 2; j++)
                {
                    mma16816(acc[m][j], xa[m][0].x, xa[m][1].x, xa[m][0].y, xa[m][1].y, wv[j][s].x, wv[j][s].y);
                    mma16816(acc[m][j], xa[m][0].z, xa[m][1].z, xa[m][0].w, xa[m][1].w, wv[j][s].z, wv[j][s].w);
                }
        }
        int next = c + SK_STEP;
        if (next >= c1) break;
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int s = 0; s < SK_STEP; s++) wv[j][s] = next + s < c1 ? ld_weights(wrow[j] + 4 * (next - c0) + 4 * s) : zero;
    }
    PDL_LAUNCH();

    // this block's partial: block-local columns (SwiGLU: gate 0..63, up 64..127)
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int j = 0; j < 2; j++)
        {
            int lc = SWIGLU ? j * 64 + warp * 8 + 2 * t : warp * 16 + j * 8 + 2 * t;
            int r = m * 16 + g;
            *(fpair*)&part[r * SK_LD + lc] = fpair{ acc[m][j][0], acc[m][j][1] };
            *(fpair*)&part[(r + 8) * SK_LD + lc] = fpair{ acc[m][j][2], acc[m][j][3] };
        }
    sk_cluster_sync();

    // rank r finishes columns 16r .. 16r + 15 (SwiGLU: gate 8r .. 8r + 7 and their up columns) of every row
    const unsigned int base = smem_addr(part);
    constexpr int PAIRS = SWIGLU ? 4 : 8; // column pairs per row
    bf16_t* y = (bf16_t*)p.Y;
    for (int i = threadIdx.x; i < p.Rows * PAIRS; i += blockDim.x)
    {
        int r = i / PAIRS, pr = i % PAIRS;
        int lc = SWIGLU ? rank * 8 + 2 * pr : rank * 16 + 2 * pr;
        fpair sum = { 0.f, 0.f }, up = { 0.f, 0.f };
#pragma unroll
        for (int q = 0; q < SK_SPLITS; q++)
        {
            fpair v = ld_cluster2(base + (unsigned int)(r * SK_LD + lc) * 4u, q);
            sum.x += v.x;
            sum.y += v.y;
            if (SWIGLU)
            {
                fpair u = ld_cluster2(base + (unsigned int)(r * SK_LD + 64 + lc) * 4u, q);
                up.x += u.x;
                up.y += u.y;
            }
        }
        int oc = SWIGLU ? blockIdx.x * (SK_COLS / 2) + lc : blockIdx.x * SK_COLS + lc;
        if (oc >= p.N) continue; // n % 8 == 0: a pair is wholly in or out
        unsigned int* dst = (unsigned int*)(y + (u64)r * p.N + oc);
        float a = sum.x, b = sum.y;
        if (SWIGLU)
        {
            float ga = bf2f(f2bf(a)), gb = bf2f(f2bf(b)), ua = bf2f(f2bf(up.x)), ub = bf2f(f2bf(up.y));
            a = ga / (1.f + expf(-ga)) * ua;
            b = gb / (1.f + expf(-gb)) * ub;
        }
        else if (MODE == 1)
        {
            unsigned int old = *dst;
            a += __uint_as_float(old << 16);
            b += __uint_as_float(old & 0xffff0000u);
        }
        *dst = (unsigned int)f2bf(a) | ((unsigned int)f2bf(b) << 16);
    }
    sk_cluster_sync(); // no block leaves while another reads its partial
}

#define SKINNY_KERNELS(MT) \
    extern "C" __global__ void __cluster_dims__(1, SK_SPLITS, 1) __launch_bounds__(SK_WARPS * 32, 2) skinny_##MT(SkinnyParams p) { skinny_body<MT, 0>(p); } \
    extern "C" __global__ void __cluster_dims__(1, SK_SPLITS, 1) __launch_bounds__(SK_WARPS * 32, 2) skinny_acc_##MT(SkinnyParams p) { skinny_body<MT, 1>(p); } \
    extern "C" __global__ void __cluster_dims__(1, SK_SPLITS, 1) __launch_bounds__(SK_WARPS * 32, 2) skinny_swiglu_##MT(SkinnyParams p) { skinny_body<MT, 2>(p); }

SKINNY_KERNELS(1)
SKINNY_KERNELS(2)
SKINNY_KERNELS(3)
SKINNY_KERNELS(4)
