// Hopper prefill attention (sm_90a: wgmma, TMA, mbarrier): compiled as attention.cu + attention_fast.cu + this file
// into a third module, only on compute capability 9.0, so the params structs and PTX helpers of attention_fast.cu are
// shared. Same contract, block-row mapping and split-KV outputs as paged_prefill_fa128g / paged_prefill_fa128g_split
// (which stay the path on other devices and for page sizes this kernel does not take).
//
// paged_prefill_wgmma: a FlashAttention-3-style warp-specialised block of 384 threads (3 warpgroups).
// - Rows: 128 query rows, the group = heads / kvHeads query heads of one KV head at rows = 128 / group positions (block
//   row g * rows + i is head kvh * group + g at query q0 + i), as paged_prefill_fa128g. Two consumer warpgroups
//   (warps 0-7): warpgroup w owns block rows 64w .. 64w + 63, warp k of it 16 of those.
// - Producer: warp 8 (warps 9-11 only hand their registers over). The K and V tiles (128 keys) are gathered from the
//   pages by the tensor memory accelerator: one box of (64 dims x pageSize keys) per page, half of the head dim and K
//   or V, 4 boxes per page, issued by the producer's lanes straight into the 128-byte-swizzled layout wgmma reads;
//   each stage's arrival is an mbarrier (full, with the byte count), its release by the consumers another (empty).
//   WGP_STAGES stages, so the producer runs up to two tiles ahead and the consumers never execute a load instruction
//   or a block-wide barrier in the loop.
// - Consumers, per warpgroup and tile j: S(j) = Q K(j) (8 wgmma m64n128k16, Q and K from shared memory), O rescaled by
//   the previous softmax's factors while it runs, then O += P(j-1) V(j-1) (8 more, P from registers: the S
//   accumulators packed to bf16 are already in the A-fragment layout; V from shared memory, transposed by the
//   instruction); the online softmax of S(j) runs on the CUDA cores while the tensor cores do P(j-1) V(j-1).
// - The two consumer warpgroups take turns at issuing their products (FlashAttention-3's ping-pong, two named
//   barriers), so one's softmax overlaps the other's matrix work. Measured on an H200 with the harness
//   (scripts/gpu/prefill-harness, 64-token pages): 8K causal 627 TFLOP/s without the turns and the early rescale,
//   634 with either alone, 650 with both; at 32K the spread between runs (620-670) hides the difference. The engine's
//   profile: 8K prefill attention 37.3 -> 34.6 ms, 32K 523 -> 499 ms. WGP_PINGPONG=0 / WGP_EARLY_RESCALE=0 build the
//   earlier schedule.
// - The pool is viewed by the tensor map as 4-D: (kvHeads * headDim elements, pageSize slots, 2 * layers (K / V of
//   each layer), pages). Keys past the block's last key arrive as whatever the page holds (or nothing, past the last
//   page); K there is masked, and V rows there are zeroed in shared memory before P V (0 * NaN would poison O).
// Shared memory: Q (128 rows) and WGP_STAGES stages of {K tile, V tile}, each a 128-row x 256-byte operand kept as two
// 16 KiB halves (dims 0-63, 64-127) of 128-byte rows in the 128-byte swizzle: 16-byte chunk c of row r at
// r * 128 + ((c ^ (r & 7)) * 16). The same bytes are a K-major operand for K (and Q) and an MN-major one for V.
// Accumulator layout of m64nNk16 (f32), per warp k of the warpgroup: d[4 nt + e] is row 16k + gid + 8 (e >> 1), column
// 8 nt + 2 tig + (e & 1), i.e. the nt-th m16n8 C fragment of mma_bf16, as fb_prefill's s[nt][e] and o[dt][e].

#define WGP_BC 128
#ifndef WGP_STAGES
#define WGP_STAGES 3                         // harness builds may try 2 (shared memory holds no 4th)
#endif
#define WGP_HALF (128 * 128)                 // bytes of one 64-dim half of a 128-row operand
#define WGP_TILE (2 * WGP_HALF)              // one 128 x 128 bf16 operand (Q, a K tile or a V tile)
#define WGP_STAGE (2 * WGP_TILE)             // K tile then V tile
#define WGP_BARRIERS (WGP_TILE + WGP_STAGES * WGP_STAGE) // full[WGP_STAGES], empty[WGP_STAGES]: 8 bytes each
// + alignment slack: the swizzled operands start 1024-byte aligned
#define WGP_SHARED (WGP_BARRIERS + 2 * WGP_STAGES * 8 + 1024)
#define WGP_THREADS 384                      // 2 consumer warpgroups + the producer warpgroup (one warp of it works)


// The kernel's one parameter, passed by value (__grid_constant__: TMA reads the map from parameter space).
// C# twin: AttentionKernels.WgmmaPrefillParams (same order; 256 bytes).
struct alignas(64) WgmmaPrefillParams
{
    TmaMap kvMap;    // the pool (see above)
    PrefillParams p;
    float* acc;      // split-KV partial outputs, as PrefillSplitParams; null: write normalised rows to p.out
    float* max;
    float* sum;
    int splits;
    int tilesPerSplit;
};
// (NVRTC has no offsetof: the field offsets are asserted in scripts/gpu/layout-asserts-attention_hopper.h, checked by
// scripts/gpu/check-kernels.sh, and on the C# side by CudaHostTests.)
static_assert(sizeof(WgmmaPrefillParams) == 256, "layout must match AttentionKernels.WgmmaPrefillParams");

// d (+)= A B over one k16 step, m64n128, bf16 -> f32: A (64 x 16) and B (16 x 128) from shared memory through their
// descriptors, both K-major; accumulate = 0 overwrites d. d: this thread's 64 accumulators (layout: see above).
__device__ __forceinline__ void wgmma_ss(float* d, u64 descA, u64 descB, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(descA), "l"(descB), "r"(accumulate));
}

// d += A B over one k16 step, m64n128, bf16 -> f32: A (64 x 16) from registers (per warp, its 16 rows as an
// m16n8k16 A fragment: a[0..3] as mma_bf16's a0..a3), B (16 x 128) from shared memory MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_tb(float* d, const unsigned int* a, u64 descB)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(1));
}


// Byte offset of 16-byte chunk c (0 .. 15: dims 8c .. 8c + 7) of row r in a swizzled 128-row operand.
__device__ __forceinline__ unsigned int wgp_off(int r, int c)
{
    return (unsigned int)((c >> 3) * WGP_HALF + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}


#ifndef WGP_PINGPONG
#define WGP_PINGPONG 1
#endif
#ifndef WGP_EARLY_RESCALE
#define WGP_EARLY_RESCALE 1
#endif
#ifndef WGP_LAZY_RESCALE
// 1: a warp keeps its rows' running max until some score of them exceeds it by more than 2^8 (FlashAttention-4's
// conditional rescale), so most tiles skip O's rescale (64 multiplies a thread) and the weights stay at most 256.
// AttentionKernels.PrefillLazyRescale (ACTORS_PREFILL_LAZY_RESCALE=0) builds 0: a rescale at every new max.
#define WGP_LAZY_RESCALE 1
#endif
#ifdef WGP_TIMING
// Harness builds only (-DWGP_TIMING, scripts/gpu/prefill-harness): lane 0 of each consumer warp adds the SM cycles it
// spent in each part of the tile loop to wgp_timing[0..9] (the parts as the harness names them), its loop tiles to [10]
// and itself to [11]; the producer warp adds its waits for a free stage to [12], the rest of its time to [13] and its
// tiles to [14]. A clock read costs tens of cycles, so an instrumented kernel runs some 8 % slower.
__device__ unsigned long long wgp_timing[16];
#define WGP_T_DECL unsigned int tq_[11] = {0}; long long tl_ = clock64();
#define WGP_T(i) do { long long n_ = clock64(); tq_[i] += (unsigned int)(n_ - tl_); tl_ = n_; } while (0)
#define WGP_T_FLUSH() do { if ((threadIdx.x & 31) == 0) { for (int i_ = 0; i_ < 11; i_++) atomicAdd(&wgp_timing[i_], (unsigned long long)tq_[i_]); atomicAdd(&wgp_timing[11], 1ull); } } while (0)
#else
#define WGP_T_DECL
#define WGP_T(i) do { } while (0)
#define WGP_T_FLUSH() do { } while (0)
#endif
// Turns of the two consumer warpgroups at the tensor cores (named barriers 4 and 5, 256 threads: 128 wait, 128
// arrive): warpgroup wg issues its products only after the other one issued its own, so one's softmax runs while the
// other's products do. Warpgroup 1 gives warpgroup 0 the first turn and does not hand over after its last.
__device__ __forceinline__ void wgp_turn_begin(int wg)
{
    if (WGP_PINGPONG) named_barrier(4 + wg, 256);
}
__device__ __forceinline__ void wgp_turn_end(int wg, bool last)
{
    if (WGP_PINGPONG && !(last && wg == 1)) named_barrier_arrive(5 - wg, 256);
}
__device__ __forceinline__ void wgp_rescale(float* o, float cA, float cB)
{
#pragma unroll
    for (int dt = 0; dt < 16; dt++) { o[4 * dt] *= cA; o[4 * dt + 1] *= cA; o[4 * dt + 2] *= cB; o[4 * dt + 3] *= cB; }
}

// Issues S = Q K^T for the warpgroup's 64 rows (Q at qWg) and a 128-key tile (K at kBase): 8 k16 steps.
__device__ __forceinline__ void wgp_qk(float* s, unsigned int qWg, unsigned int kBase)
{
#pragma unroll
    for (int kk = 0; kk < 8; kk++)
    {
        unsigned int koff = (unsigned int)((kk >> 2) * WGP_HALF + (kk & 3) * 32);
        wgmma_ss(s, wgp_desc(qWg + koff, 16, 1024), wgp_desc(kBase + koff, 16, 1024), kk > 0);
    }
}

// Issues O += P V for a 128-key tile (V at vBase, MN-major: 8-key groups 1024 bytes apart, dim halves WGP_HALF apart).
__device__ __forceinline__ void wgp_pv(float* o, const unsigned int* pa, unsigned int vBase)
{
#pragma unroll
    for (int kk = 0; kk < 8; kk++) wgmma_rs_tb(o, pa + 4 * kk, wgp_desc(vBase + kk * 16 * 128, WGP_HALF, 1024));
}

// The row maxima the softmax of one tile's scores s takes for this thread's rows A and B (across the 4 lanes of each
// row), starting from the running ones mA, mB; with the lazy rescale they stay mA, mB unless some score of the warp's
// rows exceeds its row's by more than 2^8 after scaling (rescale: warp-uniform, whether they moved).
__device__ __forceinline__ void wgp_row_max(const float* s, float mA, float mB, float scale2, float& mxA, float& mxB, bool& rescale)
{
    mxA = mA;
    mxB = mB;
#pragma unroll
    for (int nt = 0; nt < 16; nt++)
    {
        mxA = fmaxf(mxA, fmaxf(s[4 * nt], s[4 * nt + 1]));
        mxB = fmaxf(mxB, fmaxf(s[4 * nt + 2], s[4 * nt + 3]));
    }
    mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
    mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
    mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
    mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
#if WGP_LAZY_RESCALE
    // (scale2 > 0; a max still -inf stays so: -inf - -inf is NaN, not > 8)
    rescale = __any_sync(0xffffffffu, (mxA - mA) * scale2 > 8.f || (mxB - mB) * scale2 > 8.f);
    if (!rescale) { mxA = mA; mxB = mB; }
#else
    rescale = true;
#endif
}

// Online softmax of one tile's raw scores s (keys t0 ..) for this thread's rows A and B, in place: s becomes the
// weights 2^(s scale2 - m scale2) (0 where masked); m, l updated; cA, cB the factors the old O rows must take, and
// rescale (warp-uniform) false where both are 1 for every row of the warp.
__device__ __forceinline__ void wgp_softmax(float* s, int t0, bool warpActive, int warpFirstPos, int posA, int posB, int tig,
                                            float scale2, float& mA, float& mB, float& lA, float& lB, float& cA, float& cB,
                                            bool& rescale)
{
    if (warpActive && t0 + WGP_BC - 1 > warpFirstPos) // some key of the tile may lie after some row of the warp
#pragma unroll
        for (int i = 0; i < 64; i++)
            if (t0 + (i >> 2) * 8 + 2 * tig + (i & 1) > ((i & 2) ? posB : posA)) s[i] = NEG_INF;
    float mxA, mxB;
    wgp_row_max(s, mA, mB, scale2, mxA, mxB, rescale);
    // Without split-KV tile 0 holds key 0, which every row attends; a tile can also lie wholly after a row (every
    // warpgroup computes every tile of its block), and a split's first tiles can: while the max stays -inf the factor
    // is 1 and every weight 0.
    cA = mxA == NEG_INF ? 1.f : ex2((mA - mxA) * scale2);
    cB = mxB == NEG_INF ? 1.f : ex2((mB - mxB) * scale2);
    mA = mxA;
    mB = mxB;
    float nA = mA == NEG_INF ? 0.f : -mA * scale2, nB = mB == NEG_INF ? 0.f : -mB * scale2;
    float sA = 0.f, sB = 0.f;
#pragma unroll
    for (int nt = 0; nt < 16; nt++)
    {
        s[4 * nt] = ex2(fmaf(s[4 * nt], scale2, nA)); // masked: -inf -> 0
        s[4 * nt + 1] = ex2(fmaf(s[4 * nt + 1], scale2, nA));
        s[4 * nt + 2] = ex2(fmaf(s[4 * nt + 2], scale2, nB));
        s[4 * nt + 3] = ex2(fmaf(s[4 * nt + 3], scale2, nB));
        sA += s[4 * nt] + s[4 * nt + 1];
        sB += s[4 * nt + 2] + s[4 * nt + 3];
    }
    lA = lA * cA + sA;
    lB = lB * cB + sB;
}

// Packs the weights into P's A fragments: keys 16kk .. +15 are S chunks 2kk (a0: row gid, a1: row gid + 8) and
// 2kk + 1 (a2: row gid, a3: row gid + 8).
__device__ __forceinline__ void wgp_pack(const float* s, unsigned int* pa)
{
#pragma unroll
    for (int nt = 0; nt < 16; nt++)
    {
        pa[(nt >> 1) * 4 + (nt & 1) * 2] = pack_bf16(s[4 * nt], s[4 * nt + 1]);
        pa[(nt >> 1) * 4 + (nt & 1) * 2 + 1] = pack_bf16(s[4 * nt + 2], s[4 * nt + 3]);
    }
}

// Producer (one warp): fills stage j % WGP_STAGES with tile j once the consumers released its previous tile.
// Lane b issues boxes b, b + 32, ...: box b is page b / 4 of the tile, dim half (b / 2) & 1, K (b even) or V.
__device__ __forceinline__ void wgp_produce(const WgmmaPrefillParams& ps, unsigned int stages, unsigned int bars, int kvh,
                                           int tileBase, int nTiles, int lastKey)
{
    const PrefillParams& p = ps.p;
    int lane = threadIdx.x & 31;
    int pagesPerTile = WGP_BC / p.pageSize;
    int layer = (int)(p.layerOffset / (2LL * p.pageSize * p.tokenStride));
    unsigned int boxBytes = 64 * 2 * p.pageSize;
#ifdef WGP_TIMING
    long long pw_ = 0, p0_ = clock64();
#endif
    for (int j = 0; j < nTiles; j++)
    {
        int stage = j % WGP_STAGES;
        unsigned int full = bars + stage * 8, empty = bars + (WGP_STAGES + stage) * 8;
#ifdef WGP_TIMING
        long long pt_ = clock64();
#endif
        if (j >= WGP_STAGES) mbar_wait(empty, (unsigned int)(j / WGP_STAGES - 1) & 1u);
#ifdef WGP_TIMING
        pw_ += clock64() - pt_;
#endif
        int t0 = tileBase + j * WGP_BC;
        int pages = min(pagesPerTile, (lastKey - t0) / p.pageSize + 1); // pages holding keys t0 ..= lastKey
        if (lane == 0) mbar_expect_tx(full, (unsigned int)pages * 4u * boxBytes);
        __syncwarp();
        unsigned int st = stages + stage * WGP_STAGE;
        for (int b = lane; b < pages * 4; b += 32)
        {
            int pi = b >> 2, half = (b >> 1) & 1, isV = b & 1;
            int page = p.pageTable[t0 / p.pageSize + pi];
            tma_load_4d(st + isV * WGP_TILE + half * WGP_HALF + pi * p.pageSize * 128, &ps.kvMap,
                        kvh * FA_D + half * 64, 0, layer * 2 + isV, page, full);
        }
    }
#ifdef WGP_TIMING
    if (lane == 0)
    {
        atomicAdd(&wgp_timing[12], (unsigned long long)pw_);
        atomicAdd(&wgp_timing[13], (unsigned long long)(clock64() - p0_ - pw_));
        atomicAdd(&wgp_timing[14], (unsigned long long)nTiles);
    }
#endif
}

// Zeroes V rows from .. 127 of a stage (keys past the block's last key: stale or never-written slots, or no page at
// all) for one warpgroup, and publishes the zeros to its tensor cores. Both warpgroups write the same zeros.
__device__ __forceinline__ void wgp_zero_v(unsigned int v, int from, int wg)
{
    int t = threadIdx.x & 127;
    for (int i = t; i < (WGP_BC - from) * 16; i += 128)
    {
        unsigned int a = v + wgp_off(from + (i >> 4), i & 15);
        asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};" ::"r"(a), "r"(0) : "memory");
    }
    fence_async_shared();
    named_barrier(2 + wg, 128);
}

__device__ __forceinline__ void wgp_consume(const WgmmaPrefillParams& ps, unsigned int qs, unsigned int stages,
                                            unsigned int bars, int wg, int q0, int lastQ, int lastKey, int tileBase, int nTiles);

// Grid (ceil(queries / rows), kvHeads, splits); block WGP_THREADS; dynamic shared memory WGP_SHARED. Blocks are issued
// last-tile-first. With ps.acc null (splits 1) the normalised rows go to p.out; otherwise block z takes key tiles
// z * tilesPerSplit .. + tilesPerSplit - 1 (128 keys each) and writes the partial state prefill_split_reduce merges.
extern "C" __global__ void __launch_bounds__(WGP_THREADS, 1) paged_prefill_wgmma(const __grid_constant__ WgmmaPrefillParams ps)
{
    extern __shared__ u32x4 fa_smem[];
    const PrefillParams& p = ps.p;
    unsigned int base = (smem_addr(fa_smem) + 1023u) & ~1023u;
    unsigned int qs = base, stages = base + WGP_TILE, bars = base + WGP_BARRIERS;

    int group = p.heads / p.kvHeads, rows = 128 / group;
    int kvh = blockIdx.y;
    int q0 = (gridDim.x - 1 - blockIdx.x) * rows;
    int lastQ = min(p.queries, q0 + rows) - 1;
    int lastKey = p.firstPosition + lastQ;
    bool split = ps.acc != nullptr;
    int tileBegin = split ? (int)blockIdx.z * ps.tilesPerSplit : 0;
    int tileEnd = split ? tileBegin + ps.tilesPerSplit : 0x7fffffff;
    int nTiles = max(0, min(lastKey / WGP_BC + 1, tileEnd) - tileBegin);
    int tileBase = tileBegin * WGP_BC;

    if (threadIdx.x == 0)
    {
        for (int s = 0; s < WGP_STAGES; s++)
        {
            mbar_init(bars + s * 8, 1);                        // full: the producer's expect_tx arrival + the bytes
            mbar_init(bars + (WGP_STAGES + s) * 8, 256);       // empty: every consumer thread
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    // Warpgroup index made warp-uniform for the compiler (a role branch it cannot see as uniform serialises wgmma).
    // Registers: launched at 168 per thread (384 threads); the producer warpgroup gives most of its share back and the
    // consumers take it (168 x 128 released down to 24 = 18432 = 256 x (240 - 168): an increase is served only from what the block released).
    int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    if (wg == 2)
    {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;" ::: "memory");
        if (threadIdx.x / 32 == 8) wgp_produce(ps, stages, bars, kvh, tileBase, nTiles, lastKey);
    }
    else
    {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 240;" ::: "memory");
        wgp_consume(ps, qs, stages, bars, wg, q0, lastQ, lastKey, tileBase, nTiles);
    }
}

// The consumer warpgroups' work: Q, the tile loop, the output rows.
__device__ __forceinline__ void wgp_consume(const WgmmaPrefillParams& ps, unsigned int qs, unsigned int stages,
                                            unsigned int bars, int wg, int q0, int lastQ, int lastKey, int tileBase, int nTiles)
{
    const PrefillParams& p = ps.p;
    int group = p.heads / p.kvHeads, rows = 128 / group, kvh = blockIdx.y;
    bool split = ps.acc != nullptr;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
    int h = kvh * group + warp * 16 / rows;
    int wq0 = q0 + warp * 16 % rows; // the warp's first query row
    bool warpActive = wq0 <= lastQ;
    int warpFirstPos = p.firstPosition + wq0;
    int rowA = wq0 + gid, rowB = rowA + 8;
    int posA = p.firstPosition + rowA, posB = posA + 8;
    WGP_T_DECL

    // Q: block rows r0 + 16 k of chunk c (256 consumer threads), zero past the queries; published to the tensor cores
    // of both consumer warpgroups.
    {
        int c = threadIdx.x & 15, r0 = threadIdx.x >> 4;
#pragma unroll
        for (int k = 0; k < 8; k++)
        {
            int r = r0 + 16 * k, g = r / rows, i = q0 + r % rows;
            bool ok = i <= lastQ;
            const bf16_t* src = ok ? p.q + ((u64)i * p.heads + kvh * group + g) * FA_D + c * 8 : p.q;
            cp_async16(qs + wgp_off(r, c), src, ok ? 16 : 0);
        }
        cp_async_commit();
        cp_async_wait_all();
        fence_async_shared();
        named_barrier(1, 256);
    }

    float o[64];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;
    float s[64];         // S of tile j, then its softmax weights (f32) until they are packed into pa
    unsigned int pa[32]; // P of the previous tile as 8 A fragments of 16 keys: pa[4 kk .. 4 kk + 3]
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f;
    float scale2 = p.scale * LOG2E;
    unsigned int qWg = qs + wg * 64 * 128; // this warpgroup's 64 rows of Q
    unsigned int vPrev = 0;                // the previous tile's V

    // No branch that ptxas cannot prove warpgroup-uniform may surround the wgmma (it would serialise them all, C7520):
    // every warpgroup computes every tile of the block (a tile wholly after a row is fully masked: weight 0), and the
    // first tile's S and the last tile's P V are peeled out of the loop. Per tile j (FlashAttention-3's order): issue
    // S(j) = Q K(j), rescale O by the previous softmax's factors while it runs, issue O += P(j-1) V(j-1), then the
    // softmax of S(j) while P V runs. Each warpgroup takes nTiles + 1 turns (wgp_turn_begin / _end).
    float cA = 1.f, cB = 1.f; // the factors O takes before the next P V
    bool rescale = false;     // whether they are not both 1 for some row of the warp (warp-uniform)
    if (nTiles > 0)
    {
        if (WGP_PINGPONG && wg == 1) named_barrier_arrive(4, 256); // warpgroup 0 takes the first turn
        mbar_wait(bars, 0);
        if (tileBase + WGP_BC - 1 > lastKey) wgp_zero_v(stages + WGP_TILE, lastKey + 1 - tileBase, wg);
        wgp_turn_begin(wg);
        wgmma_hold(s);
        wgmma_fence();
        wgp_qk(s, qWg, stages);
        wgmma_commit();
        wgp_turn_end(wg, false);
        wgmma_wait<0>();
        wgmma_hold(s);
        wgp_softmax(s, tileBase, warpActive, warpFirstPos, posA, posB, tig, scale2, mA, mB, lA, lB, cA, cB, rescale);
        wgp_pack(s, pa);
        vPrev = stages + WGP_TILE;
    }
    for (int j = 1; j < nTiles; j++)
    {
        int t0 = tileBase + j * WGP_BC, stage = j % WGP_STAGES;
        unsigned int kBase = stages + stage * WGP_STAGE;
        WGP_T(j == 1 ? 0 : 8);
        mbar_wait(bars + stage * 8, (unsigned int)(j / WGP_STAGES) & 1u);
        WGP_T(1);
        if (t0 + WGP_BC - 1 > lastKey) wgp_zero_v(kBase + WGP_TILE, lastKey + 1 - t0, wg);
        WGP_T(2);
        wgp_turn_begin(wg);
        WGP_T(3);
        wgmma_hold(s);
        wgmma_hold(o);
        wgmma_fence();
        wgp_qk(s, qWg, kBase);
        wgmma_commit();
#if WGP_EARLY_RESCALE
        if (rescale) wgp_rescale(o, cA, cB);
        wgmma_hold(o);
        wgmma_fence();
#endif
        wgp_pv(o, pa, vPrev);
        wgmma_commit();
        wgp_turn_end(wg, false);
        WGP_T(4);
        wgmma_wait<1>(); // S(j) done; P(j-1) V(j-1) may still run
        wgmma_hold(s);
        WGP_T(5);
        wgp_softmax(s, t0, warpActive, warpFirstPos, posA, posB, tig, scale2, mA, mB, lA, lB, cA, cB, rescale);
        WGP_T(6);
        wgmma_wait<0>();
        wgmma_hold(o);
        WGP_T(7);
#ifdef WGP_TIMING
        tq_[10]++;
#endif
        mbar_arrive(bars + (WGP_STAGES + (j - 1) % WGP_STAGES) * 8); // tile j - 1's stage is free
#if !WGP_EARLY_RESCALE
        if (rescale) wgp_rescale(o, cA, cB);
        cA = cB = 1.f;
#endif
        wgp_pack(s, pa);
        vPrev = kBase + WGP_TILE;
    }
    WGP_T(nTiles > 1 ? 8 : 0);
    if (nTiles > 0)
    {
        wgp_turn_begin(wg);
        if (rescale) wgp_rescale(o, cA, cB);
        wgmma_hold(o);
        wgmma_fence();
        wgp_pv(o, pa, vPrev);
        wgmma_commit();
        wgp_turn_end(wg, true);
        wgmma_wait<0>();
        wgmma_hold(o);
    }

    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    if (split)
    {
        WGP_T(9);
        WGP_T_FLUSH();
        if (!warpActive) return;
        if (rowA < p.queries)
        {
            u64 i = ((u64)rowA * p.heads + h) * ps.splits + blockIdx.z;
            float* acc = ps.acc + i * FA_D;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) { acc[dt * 8 + 2 * tig] = o[4 * dt]; acc[dt * 8 + 2 * tig + 1] = o[4 * dt + 1]; }
            if (tig == 0) { ps.max[i] = mA == NEG_INF ? NEG_INF : mA * scale2; ps.sum[i] = lA; }
        }
        if (rowB < p.queries)
        {
            u64 i = ((u64)rowB * p.heads + h) * ps.splits + blockIdx.z;
            float* acc = ps.acc + i * FA_D;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) { acc[dt * 8 + 2 * tig] = o[4 * dt + 2]; acc[dt * 8 + 2 * tig + 1] = o[4 * dt + 3]; }
            if (tig == 0) { ps.max[i] = mB == NEG_INF ? NEG_INF : mB * scale2; ps.sum[i] = lB; }
        }
        return;
    }
    // The normalised rows leave through the warpgroup's own 64 rows of the Q buffer (same swizzled layout, so the
    // 4-byte writes meet no bank conflict), then as 16-byte stores of whole 256-byte rows: straight 4-byte stores from
    // the accumulators cost 3-4 % of the 8K attention (harness, H200). Every warp's last products (the only readers of
    // those Q rows) are done once the whole warpgroup is past its final wait.
    named_barrier(2 + wg, 128);
    {
        int r = wg * 64 + (warp & 3) * 16 + gid; // block row of rowA (rowB: r + 8)
        float ra = 1.f / lA, rb = 1.f / lB;    // rows past the queries are not stored
#pragma unroll
        for (int dt = 0; dt < 16; dt++)
        {
            asm volatile("st.shared.b32 [%0], %1;" ::"r"(qs + wgp_off(r, dt) + 4 * tig), "r"(pack_bf16(o[4 * dt] * ra, o[4 * dt + 1] * ra)) : "memory");
            asm volatile("st.shared.b32 [%0], %1;" ::"r"(qs + wgp_off(r + 8, dt) + 4 * tig), "r"(pack_bf16(o[4 * dt + 2] * rb, o[4 * dt + 3] * rb)) : "memory");
        }
    }
    named_barrier(2 + wg, 128);
    int t = threadIdx.x & 127;
#pragma unroll
    for (int pass = 0; pass < 8; pass++)
    {
        int r = wg * 64 + pass * 8 + (t >> 4), c = t & 15; // block row r: head kvh * group + r / rows at query q0 + r % rows
        int i = q0 + r % rows;
        if (i <= lastQ)
        {
            vec16 v;
            asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(qs + wgp_off(r, c)) : "memory");
            *(vec16*)(p.out + ((u64)i * p.heads + kvh * group + r / rows) * FA_D + c * 8) = v;
        }
    }
    WGP_T(9);
    WGP_T_FLUSH();
}



// ---------------------------------------------------------------------------------------------------------------------
// paged_decode_tma: decode attention over the paged pool (head dim 128, G = heads / kvHeads from 1 to 8, pages of 16,
// 32 or 64 tokens). Same DecodeParams contract and partial outputs as paged_decode_split /
// paged_decode_split_d*_g* (partialMax in natural-log units), so paged_decode_reduce merges the splits.
// Why: one sequence's decode attention with the register kernel reaches ~1.84 TB/s at 8K on an H200 (18.3 us per
// layer) and 2.43 at 32K: each of its blocks makes a dependent round trip to memory per step of loads, and it computes
// between them. Here the loads never wait for the arithmetic: a producer warp streams 64-key tiles of K and V through
// the tensor memory accelerator into TD_STAGES stages of shared memory, so up to 128 KiB per SM are in flight, while
// four consumer warps work on the tiles that have arrived; the launcher gives one sequence about one block per SM
// (bigger splits), so the ramp is paid once.
// Grid (maxSplits, kvHeads, seqs); block TD_THREADS (warps 0-3 consume, warp 4 produces); dynamic shared memory
// TD_SHARED. Block (split, kvh, seq) takes keys split * S .. + S - 1, S = decode_split_size (a multiple of 64; the
// launcher sets balanced, so S is about the sequence's context / maxSplits).
// - Producer: per tile, one box of (64 dims x pageSize keys) per page, dim half and K / V, lane b issuing box b (page
//   b / 4, half (b / 2) & 1, V when b is odd), into the 128-byte-swizzled layout of attention_hopper's other kernel
//   (wgp_off with 64-row operands): full mbarrier per stage (expect_tx), empty one (an arrival per consumer warp).
//   The next tile's page ids are read while it waits for a free stage.
// - Consumers: warp w takes keys 16w .. 16w + 15 of every tile, with the tensor cores (mma.sync m16n8k16, bf16 -> f32):
//   S (16 x 16) = Q K^T with the group's G query heads as rows 0 .. G-1 of A (held in registers; the other rows zero),
//   K as B by ldmatrix; its online softmax in f32 (row gid of the thread, the max across the 4 lanes of a row); then
//   O (16 x 128) += P V with P from the S registers (bf16) and V as B by ldmatrix.trans. Keys past the split's end
//   score -inf, and their V rows (stale or never loaded) are zeroed before P V. At the end the 4 warps' states merge in
//   shared memory into the split's partial output.
// ---------------------------------------------------------------------------------------------------------------------
#define TD_KEYS 64
#ifndef TD_STAGES
#define TD_STAGES 4                          // AttentionKernels.TmaDecodeStages (ACTORS_TMA_DECODE_STAGES defines it)
#endif
#define TD_HALF (TD_KEYS * 128)              // one 64-dim half of a 64-key operand (8 KiB)
#define TD_TILE (2 * TD_HALF)                // K or V of a tile
#define TD_STAGE (2 * TD_TILE)               // K then V
#define TD_MERGE (TD_STAGES * TD_STAGE)      // per-warp states: 4 warps x up to 8 heads x (128 + 2) f32 (the launcher
                                             // takes groups of at most 8: a larger one would overrun this area)
#define TD_BARRIERS (TD_MERGE + 4 * 8 * 130 * 4)
#define TD_SHARED (TD_BARRIERS + 2 * TD_STAGES * 8 + 1024)
#define TD_THREADS 160

// C# twin: AttentionKernels.TmaDecodeParams (256 bytes).
struct alignas(64) TmaDecodeParams
{
    TmaMap kvMap; // the pool, as WgmmaPrefillParams.kvMap
    DecodeParams p;
    int early;    // 1: load the tiles before the one holding the last position before waiting for the previous kernel
    int pad;
};
static_assert(sizeof(TmaDecodeParams) == 256, "layout must match AttentionKernels.TmaDecodeParams");

// Byte offset of 16-byte chunk c (0 .. 15) of row r in a swizzled 64-row operand (two 64-dim halves of 128-byte rows).
__device__ __forceinline__ unsigned int td_off(int r, int c)
{
    return (unsigned int)((c >> 3) * TD_HALF + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

__device__ __forceinline__ void td_produce(const TmaDecodeParams& ps, unsigned int stages, unsigned int bars, int kvh, int seq,
                                           int len, int start, int n, int nTiles)
{
    const DecodeParams& p = ps.p;
    int b = threadIdx.x & 31;              // box b of a tile: page b >> 2, half (b >> 1) & 1, V when b & 1
    int ppt = TD_KEYS / p.pageSize;        // pages per tile
    int layer = (int)(p.layerOffset / (2LL * p.pageSize * p.tokenStride));
    unsigned int boxBytes = 64 * 2 * p.pageSize;
    const int* table = p.pageTables + (u64)seq * p.pageTableStride + start / p.pageSize;
    int lastPage = (n - 1) / p.pageSize;   // the split's pages 0 ..= lastPage (from its first)
    bool lane = b < ppt * 4;
    int page = lane ? table[min(b >> 2, lastPage)] : 0;
    // early: only the tile holding the sequence's last position (the last tile of its last split) has keys the previous
    // kernel writes (this step's K and V); the other tiles load while that kernel drains
    bool waited = !ps.early;
    for (int j = 0; j < nTiles; j++)
    {
        int stage = j % TD_STAGES;
        unsigned int full = bars + stage * 8, empty = bars + (TD_STAGES + stage) * 8;
        int pages = min(ppt, lastPage - j * ppt + 1);
        int next = j + 1 < nTiles && lane ? table[min((j + 1) * ppt + (b >> 2), lastPage)] : 0;
        if (!waited && start + TD_KEYS * (j + 1) >= len)
        {
            PDL_WAIT();
            waited = true;
        }
        if (j >= TD_STAGES) mbar_wait(empty, (unsigned int)(j / TD_STAGES - 1) & 1u);
        if (b == 0) mbar_expect_tx(full, (unsigned int)pages * 4u * boxBytes);
        __syncwarp();
        if (b < pages * 4)
        {
            int half = (b >> 1) & 1, isV = b & 1;
            tma_load_4d(stages + stage * TD_STAGE + isV * TD_TILE + half * TD_HALF + (b >> 2) * p.pageSize * 128, &ps.kvMap,
                        kvh * FA_D + half * 64, 0, layer * 2 + isV, page, full);
        }
        page = next;
    }
}

__device__ __forceinline__ void td_consume(const TmaDecodeParams& ps, unsigned int stages, unsigned int bars, float* merge,
                                           int split, int kvh, int seq, int n, int nTiles)
{
    const DecodeParams& p = ps.p;
    const int group = p.heads / p.kvHeads;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
    bool rowValid = gid < group;
    // Q of head kvh * group + gid as the A fragments (a0, a2) of the 8 k16 steps; a1, a3 (rows gid + 8) are zero
    unsigned int qa[8][2];
    {
        const unsigned int* qrow = (const unsigned int*)(p.q + ((u64)seq * p.heads + (u64)kvh * group + (rowValid ? gid : 0)) * FA_D);
#pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            qa[kk][0] = rowValid ? qrow[8 * kk + tig] : 0u;
            qa[kk][1] = rowValid ? qrow[8 * kk + 4 + tig] : 0u;
        }
    }
    float o[16][4];
#pragma unroll
    for (int dt = 0; dt < 16; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
    float m = NEG_INF, l = 0.f; // row gid: running max (scaled, log2 units) and this lane's part of the sum
    const float scale2 = p.scale * LOG2E;
    const int r0 = warp * 16;   // this warp's keys within a tile
    const int mi = lane >> 3;   // the ldmatrix matrix this lane addresses a row of
    for (int j = 0; j < nTiles; j++)
    {
        int stage = j % TD_STAGES;
        unsigned int kB = stages + stage * TD_STAGE, vB = kB + TD_TILE;
        mbar_wait(bars + stage * 8, (unsigned int)(j / TD_STAGES) & 1u);
        int valid = n - j * TD_KEYS; // keys of the split left from this tile on
        if (valid < r0 + 16)         // warp-uniform; only in the last tile
        {
            int from = max(valid, r0);
            for (int i = lane; i < (r0 + 16 - from) * 16; i += 32)
                asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};" ::"r"(vB + td_off(from + (i >> 4), i & 15)), "r"(0) : "memory");
            __syncwarp();
        }
        float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
        for (int kk = 0; kk < 8; kk++)
        {
            // matrices: keys r0 .. +7 dims 16kk .. +7 / +8 .. +15, keys r0 + 8 .. +15 likewise
            unsigned int b0, b1, b2, b3;
            ldsm_x4(kB + td_off(r0 + (mi >> 1) * 8 + (lane & 7), 2 * kk + (mi & 1)), b0, b1, b2, b3);
            mma_bf16(s[0], qa[kk][0], 0u, qa[kk][1], 0u, b0, b1);
            mma_bf16(s[1], qa[kk][0], 0u, qa[kk][1], 0u, b2, b3);
        }
        // online softmax of row gid over the warp's 16 keys (lane: keys 8 nt + 2 tig + e)
        int k0 = j * TD_KEYS + r0 + 2 * tig;
        float v00 = k0 < n ? s[0][0] * scale2 : NEG_INF, v01 = k0 + 1 < n ? s[0][1] * scale2 : NEG_INF;
        float v10 = k0 + 8 < n ? s[1][0] * scale2 : NEG_INF, v11 = k0 + 9 < n ? s[1][1] * scale2 : NEG_INF;
        float mx = fmaxf(fmaxf(v00, v01), fmaxf(v10, v11));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float mNew = fmaxf(m, mx);
        float corr = mNew == NEG_INF ? 1.f : ex2(m - mNew), base = mNew == NEG_INF ? 0.f : mNew;
        float p00 = ex2(v00 - base), p01 = ex2(v01 - base), p10 = ex2(v10 - base), p11 = ex2(v11 - base);
        l = l * corr + (p00 + p01) + (p10 + p11);
        m = mNew;
#pragma unroll
        for (int dt = 0; dt < 16; dt++) { o[dt][0] *= corr; o[dt][1] *= corr; }
        unsigned int pa0 = pack_bf16(p00, p01), pa2 = pack_bf16(p10, p11);
#pragma unroll
        for (int dp = 0; dp < 8; dp++)
        {
            // matrices (transposed): keys r0 .. +7 / r0 + 8 .. +15 of dims 16dp .. +7, then of dims 16dp + 8 .. +15
            unsigned int b0, b1, b2, b3;
            ldsm_x4_trans(vB + td_off(r0 + (mi & 1) * 8 + (lane & 7), 2 * dp + (mi >> 1)), b0, b1, b2, b3);
            mma_bf16(o[2 * dp], pa0, 0u, pa2, 0u, b0, b1);
            mma_bf16(o[2 * dp + 1], pa0, 0u, pa2, 0u, b2, b3);
        }
        if (valid < r0 + 16) fence_async_shared(); // the zeros were generic-proxy writes into a TMA buffer
        __syncwarp();
        if (lane == 0) mbar_arrive(bars + (TD_STAGES + stage) * 8);
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    // the 4 warps' states: acc (4, group, 128), max and sum (4, group)
    float* racc = merge;
    float* rm = racc + 4 * group * FA_D;
    float* rl = rm + 4 * group;
    if (rowValid)
    {
#pragma unroll
        for (int dt = 0; dt < 16; dt++)
        {
            racc[(warp * group + gid) * FA_D + 8 * dt + 2 * tig] = o[dt][0];
            racc[(warp * group + gid) * FA_D + 8 * dt + 2 * tig + 1] = o[dt][1];
        }
        if (tig == 0) { rm[warp * group + gid] = m; rl[warp * group + gid] = l; }
    }
    named_barrier(1, 128);
    decode_write_partials(p, racc, rm, rl, group, FA_D, seq, kvh, split, threadIdx.x, 128);
}

extern "C" __global__ void __launch_bounds__(TD_THREADS, 1) paged_decode_tma(const __grid_constant__ TmaDecodeParams ps)
{
    extern __shared__ u32x4 fa_smem[];
    const DecodeParams& p = ps.p;
    unsigned int raw = smem_addr(fa_smem), base = (raw + 1023u) & ~1023u;
    unsigned int stages = base, bars = base + TD_BARRIERS;
    float* merge = (float*)((char*)fa_smem + (base - raw) + TD_MERGE);
    if (threadIdx.x == 0)
    {
        for (int s = 0; s < TD_STAGES; s++)
        {
            mbar_init(bars + s * 8, 1);                  // full: the producer's expect_tx arrival + the bytes
            mbar_init(bars + (TD_STAGES + s) * 8, 4);    // empty: one arrival per consumer warp
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    // q and this step's K and V are written by the kernel before this one; the page tables and context lengths are
    // uploaded before the step's first kernel, and the other keys by earlier steps. Without early, every thread waits
    // here; with it, the consumers wait before they read q and the producer before the tile holding the last position.
    if (!ps.early) PDL_WAIT();
    PDL_LAUNCH();
    int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
    int len = p.contextLens[seq], splitSize = decode_split_size(p, len), start = split * splitSize;
    if (start >= len) return; // uniform across the block
    int n = min(len - start, splitSize);
    int nTiles = (n + TD_KEYS - 1) / TD_KEYS;
    if (threadIdx.x >= 128)
    {
        if (threadIdx.x < 160) td_produce(ps, stages, bars, kvh, seq, len, start, n, nTiles);
        return;
    }
    if (ps.early) PDL_WAIT();
    td_consume(ps, stages, bars, merge, split, kvh, seq, n, nTiles);
}
