// Hopper GEMM (sm_90a: wgmma, TMA multicast within 2-CTA clusters, mbarriers): compiled after common.cuh and hopper.cuh
// into a module of its own (GemmKernels), only on compute capability 9.0.
//
// gemm_wgmma: y (rows, n) = x (rows, k) w^T with x and w (n, k) bf16 and row-major (both K-major operands), f32
// accumulation, bf16 out; optionally
// - SwiGLU in the epilogue (swiglu = 1): w is the MLP's fused gate/up weight (2n rows: gate, then up) and
//   y = silu(x gate^T) * (x up^T), so the 2n-column product is never written nor read back;
// - y added to (accumulate = 1): y = y + x w^T, the residual add of the o and down products.
// Layout of the work:
// - A tile is 128 rows x 256 columns of the product: for SwiGLU columns n0 .. n0 + 127 of gate and of up, which give
//   output columns n0 .. n0 + 127; otherwise output columns n0 .. n0 + 255. k runs in blocks of 64 (128 bytes).
// - Blocks come in clusters of 2 (CTA rank 0 / 1) that take row tiles 2i and 2i + 1 of the same columns: each rank
//   loads its own 128 x 64 block of x, and one half of w's 256 x 64 block (rank 0 rows 0 .. 127 of the tile: gate or the
//   first half; rank 1 rows 128 .. 255: up or the second half), multicast into both blocks' shared memory, so w crosses
//   L2 once per pair of row tiles.
// - Persistent: gridDim.x / 2 clusters walk the tile pairs (stride: the cluster count), in raster groups of `group`
//   row-tile pairs by every column tile, so the x and w panels that run together stay in L2.
// - Per block 384 threads: two consumer warpgroups (warpgroup w: tile rows 64w .. 64w + 63, one m64n256k16 wgmma per
//   k16 step, 128 f32 accumulators per thread) and a producer warpgroup of which one warp issues the TMA loads. A ring
//   of GM_STAGES stages of {x block, w block}; stage s has a full mbarrier (the producer's expect_tx of the 48 KiB
//   that arrive from both ranks' loads) and an empty one (count 16: one arrival per consumer warp of both blocks, since
//   a rank's multicast writes into both blocks' stage). The producer runs up to GM_STAGES k-blocks ahead, across tiles,
//   so it is loading the next tile while the consumers run the epilogue.
// - Epilogue from the accumulators: thread (warp, gid, tig) holds rows 16 (warp % 4) + gid (+ 8) and columns 8 nt + 2 tig,
//   +1 (nt < 32); for SwiGLU, gate column c (nt < 16) and up column c (nt + 16) sit in the same thread.
//   - SwiGLU with tmaStore: each consumer warpgroup writes its 64 x 128 outputs into a staging buffer of its own in
//     shared memory (the 128-byte swizzle, so the warps' 4-byte writes meet no bank conflict) and one thread hands it to
//     two TMA stores, which run while the warpgroup goes on with its next tile; before the next epilogue writes the
//     buffer, that thread waits until the stores have read it. Measured on an H200 (harness, 8K gate/up, hot): the
//     straight 4-byte global stores cost 4 % of the kernel's time (2.85-2.92 ms with them, 2.74-2.81 without any store).
//   - Otherwise (plain, accumulate, or an output TMA cannot address) straight from the registers, 4 bytes per store.
// Shared memory: GM_STAGES x {x: 128 rows, w: 256 rows} of 128-byte rows (64 bf16 of k) in the 128-byte swizzle (as the
// TMA writes them and wgmma reads them, 8-row groups 1024 bytes apart), the two warpgroups' 16 KiB output staging
// buffers (each two 64-column halves of 64 rows x 128 bytes, swizzled likewise), then the mbarriers.
// Rows of x past `rows` and of w past its end arrive as zeros (TMA bounds), columns of k past k likewise, so they add
// nothing; a block whose row tile lies past the last (an odd tile count) loads the last tile again and stores nothing.

#ifndef GM_BK
// k per stage: 64 (128-byte rows, 128-byte swizzle, 4 stages) or 32 (64-byte rows and swizzle, 8 stages; slower on an
// H200). Harness builds only: GemmKernels encodes its tensor maps and shared memory for 64.
#define GM_BK 64
#endif
#ifndef GM_STAGES
#define GM_STAGES (GM_BK == 64 ? 4 : 8)
#endif
#define GM_ROW (GM_BK * 2)                  // bytes of one operand row in shared memory (the swizzle span)
#define GM_SWIZZLE (GM_BK == 64 ? 1ull : 2ull) // descriptor swizzle mode: 1 = 128-byte, 2 = 64-byte
#ifndef GM_MULTICAST
#define GM_MULTICAST 1 // 0: each block loads all of its w block (the cluster's blocks then run independently)
#endif
#define GM_HALF (128 * GM_ROW)              // one 128-row operand block (one TMA box): 16 KiB at GM_BK 64
#define GM_STAGE (3 * GM_HALF)              // x (128 rows), then w (256 rows)
#define GM_OUT (GM_STAGES * GM_STAGE)       // output staging: warpgroup w's at GM_OUT + w * GM_OUT_WG
#define GM_OUT_WG (64 * 256)                // 64 rows x 128 bf16 columns
#define GM_BARRIERS (GM_OUT + 2 * GM_OUT_WG) // full[GM_STAGES], empty[GM_STAGES]: 8 bytes each
#define GM_SHARED (GM_BARRIERS + 2 * GM_STAGES * 8 + 1024) // + slack: the swizzled operands start 1024-byte aligned
#define GM_THREADS 384

// The kernel's one parameter (__grid_constant__: TMA reads the maps from parameter space). C# twin:
// GemmKernels.GemmParams (same order; 448 bytes).
struct alignas(64) GemmParams
{
    TmaMap a;        // x: 2-D (k, rows), box (64, 128), 128-byte swizzle
    TmaMap b;        // w: 2-D (k, rows of w), box (64, 128), 128-byte swizzle
    TmaMap c;        // y for the TMA stores (tmaStore): 2-D (n, rows), box (64, 64), 128-byte swizzle
    bf16_t* y;       // (rows, n), row stride ldy
    int rows, k, n, ldy;
    int swiglu;      // 1: w = [gate; up] (2n rows), y = silu(gate) * up
    int accumulate;  // 1: y += x w^T (not with swiglu)
    int tilesM;      // ceil(rows / 128)
    int tilesN;      // ceil(n / 128) with swiglu, else ceil(n / 256)
    int group;       // row-tile pairs per raster group
    int tmaStore;    // 1 (with swiglu; ldy = n, a multiple of 8, y 16-byte aligned): outputs leave by TMA stores (c)
};
static_assert(sizeof(GemmParams) == 448, "layout must match GemmKernels.GemmParams");

// d (+)= A B over one k16 step, m64n256, bf16 -> f32: A (64 x 16) and B (16 x 256) from shared memory through their
// descriptors, both K-major; accumulate = 0 overwrites d. d: this thread's 128 accumulators, d[4 nt + e] = row
// 16 (warp % 4) + gid + 8 (e >> 1), column 8 nt + 2 tig + (e & 1) of the warpgroup's 64 x 256 tile.
__device__ __forceinline__ void wgmma_ss_n256(float* d, u64 descA, u64 descB, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                   "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                   "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                   "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                   "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                   "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                   "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(descA), "l"(descB), "r"(accumulate));
}

__device__ __forceinline__ unsigned int cluster_rank()
{
    unsigned int r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
// Every thread of both blocks of the cluster (not warp-aligned: the producer warp's lanes may arrive apart).
__device__ __forceinline__ void cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}
// Arrives on the mbarrier at the same shared-memory offset in the cluster's block `rank` (this block included).
__device__ __forceinline__ void mbar_arrive_cluster(unsigned int bar, unsigned int rank)
{
    // Default semantics (release at CTA scope): with .release.cluster every k-block's release stalled the warp and the
    // kernel ran at 410 instead of 650 TFLOP/s (H200). The data a stage's release hands over is only read by the tensor
    // cores, whose reads wgmma.wait_group has already completed.
    asm volatile("{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}" ::"r"(bar), "r"(rank) : "memory");
}
// One 2-D box of the tensor map into this block's shared memory, completing bytes on its mbarrier.
__device__ __forceinline__ void tma_load_2d(unsigned int dst, const TmaMap* map, int c0, int c1, unsigned int bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 ::"r"(dst), "l"((u64)map), "r"(c0), "r"(c1), "r"(bar) : "memory");
}
// The same box into the shared memory of every block in mask (same offsets), completing bytes on each one's mbarrier.
__device__ __forceinline__ void tma_load_2d_multicast(unsigned int dst, const TmaMap* map, int c0, int c1, unsigned int bar, unsigned short mask)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;"
                 ::"r"(dst), "l"((u64)map), "r"(c0), "r"(c1), "r"(bar), "h"(mask) : "memory");
}

// Tile pair q of the raster order: row tile 2 mp + rank, column tile tn. Groups of `group` row-tile pairs are walked
// column tile by column tile, pairs fastest.
__device__ __forceinline__ void gm_tile(const GemmParams& g, int q, int& mp, int& tn)
{
    int pairs = (g.tilesM + 1) >> 1;
    int per = g.group * g.tilesN;
    int grp = q / per, within = q - grp * per, first = grp * g.group;
    int size = min(g.group, pairs - first);
    mp = first + within % size;
    tn = within / size;
}

// Producer (one warp; lane 0 issues): for every tile pair of this cluster and k-block, waits for the stage to be free
// in both blocks, then loads this rank's x block and its half of the w block (multicast to both ranks).
__device__ __forceinline__ void gm_produce(const GemmParams& g, unsigned int base, unsigned int bars, unsigned int rank)
{
    int lane = threadIdx.x & 31;
    int clusters = gridDim.x >> 1, total = ((g.tilesM + 1) >> 1) * g.tilesN, nK = (g.k + GM_BK - 1) / GM_BK;
    int it = 0;
    for (int q = blockIdx.x >> 1; q < total; q += clusters)
    {
        int mp, tn;
        gm_tile(g, q, mp, tn);
        int m = min(2 * mp + (int)rank, g.tilesM - 1); // past the last row tile: load the last again (nothing stored)
        int wRow = g.swiglu ? (int)rank * g.n + tn * 128 : tn * 256 + (int)rank * 128;
        for (int kb = 0; kb < nK; kb++, it++)
        {
            int s = it % GM_STAGES;
            unsigned int full = bars + s * 8, empty = bars + (GM_STAGES + s) * 8, st = base + s * GM_STAGE;
            if (it >= GM_STAGES) mbar_wait(empty, (unsigned int)(it / GM_STAGES - 1) & 1u);
            if (lane == 0)
            {
                mbar_expect_tx(full, GM_STAGE);
                tma_load_2d(st, &g.a, kb * GM_BK, m * 128, full);
#if GM_MULTICAST
                tma_load_2d_multicast(st + GM_HALF + rank * GM_HALF, &g.b, kb * GM_BK, wRow, full, (unsigned short)3);
#else
                int wRow0 = g.swiglu ? tn * 128 : tn * 256, wRow1 = g.swiglu ? g.n + tn * 128 : tn * 256 + 128;
                tma_load_2d(st + GM_HALF, &g.b, kb * GM_BK, wRow0, full);
                tma_load_2d(st + 2 * GM_HALF, &g.b, kb * GM_BK, wRow1, full);
#endif
            }
            __syncwarp();
        }
    }
}

#ifndef GM_SILU
// 1: x sigmoid(x) with sigmoid(x) = 0.5 + 0.5 tanh(x / 2) (one MUFU op; the sigmoid's absolute error is about 2^-12, so
// silu's stays below |x| 2^-12: relative error below bf16's rounding except where silu is small, x below about -4);
// 0: x / (1 + e^-x) (two MUFU ops, ~3 % slower on the 8K gate/up product)
#define GM_SILU 1
#endif
__device__ __forceinline__ float gm_silu(float v)
{
#if GM_SILU == 1
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(0.5f * v));
    return v * fmaf(0.5f, t, 0.5f);
#else
    return v / (1.f + __expf(-v));
#endif
}

// Bulk (TMA) stores from shared memory: a 2-D box of the tensor map from src, in this thread's bulk async-group.
__device__ __forceinline__ void tma_store_2d(const TmaMap* map, unsigned int src, int c0, int c1)
{
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];"
                 ::"l"((u64)map), "r"(src), "r"(c0), "r"(c1) : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
// Until this thread's committed bulk stores have read their shared memory (.read) or completed.
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }

// SwiGLU epilogue of one tile through warpgroup wg's staging buffer and two TMA stores (see the top of the file). Rows
// and columns past the output are dropped by the TMA (the tensor map's bounds).
__device__ __forceinline__ void gm_store_tma(const GemmParams& g, const float* d, int m, int tn, int wg, unsigned int buf)
{
    int t = threadIdx.x & 127, warp = t >> 5, gid = (t & 31) >> 2, tig = t & 3;
    if (t == 0) bulk_wait_read(); // the previous tile's stores are done with the buffer
    named_barrier(1 + wg, 128);
#pragma unroll
    for (int half = 0; half < 2; half++)
    {
        int r = warp * 16 + gid + 8 * half; // row within the warpgroup's 64; r & 7 = gid
#pragma unroll
        for (int nt = 0; nt < 16; nt++)
        {
            float v0 = gm_silu(d[4 * nt + 2 * half]) * d[4 * (nt + 16) + 2 * half];
            float v1 = gm_silu(d[4 * nt + 2 * half + 1]) * d[4 * (nt + 16) + 2 * half + 1];
            unsigned int a = buf + (nt >> 3) * (GM_OUT_WG / 2) + r * 128 + (((nt & 7) ^ gid) << 4) + 4 * tig;
            asm volatile("st.shared.b32 [%0], %1;" ::"r"(a), "r"(pack_bf16(v0, v1)) : "memory");
        }
    }
    fence_async_shared(); // the writes, visible to the TMA
    named_barrier(1 + wg, 128);
    if (t == 0)
    {
        int row0 = m * 128 + wg * 64;
        tma_store_2d(&g.c, buf, tn * 128, row0);
        tma_store_2d(&g.c, buf + GM_OUT_WG / 2, tn * 128 + 64, row0);
        bulk_commit();
    }
}

// Epilogue of one tile straight from the accumulators (see the top of the file).
__device__ __forceinline__ void gm_store(const GemmParams& g, const float* d, int m, int tn, int wg)
{
    int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
    int rowA = m * 128 + wg * 64 + warp * 16 + gid;
#pragma unroll
    for (int half = 0; half < 2; half++)
    {
        int row = rowA + 8 * half;
        if (row >= g.rows) continue;
        bf16_t* yr = g.y + (u64)row * g.ldy;
        if (g.swiglu)
        {
#pragma unroll
            for (int nt = 0; nt < 16; nt++)
            {
                int col = tn * 128 + nt * 8 + 2 * tig;
                if (col >= g.n) break;
                float v0 = gm_silu(d[4 * nt + 2 * half]) * d[4 * (nt + 16) + 2 * half];
                float v1 = gm_silu(d[4 * nt + 2 * half + 1]) * d[4 * (nt + 16) + 2 * half + 1];
                *(unsigned int*)(yr + col) = pack_bf16(v0, v1);
            }
        }
        else
        {
#pragma unroll
            for (int nt = 0; nt < 32; nt++)
            {
                int col = tn * 256 + nt * 8 + 2 * tig;
                if (col >= g.n) break;
                float v0 = d[4 * nt + 2 * half], v1 = d[4 * nt + 2 * half + 1];
                if (g.accumulate)
                {
                    unsigned int old = *(const unsigned int*)(yr + col);
                    v0 += __uint_as_float(old << 16);
                    v1 += __uint_as_float(old & 0xffff0000u);
                }
                *(unsigned int*)(yr + col) = pack_bf16(v0, v1);
            }
        }
    }
}

// Consumer warpgroup wg: for every tile pair of the cluster, the k loop (one k-block's 4 wgmma in flight while the
// previous block's stage is released), then the epilogue while the producer already loads the next tile.
__device__ __forceinline__ void gm_consume(const GemmParams& g, unsigned int base, unsigned int bars, unsigned int rank, int wg)
{
    int clusters = gridDim.x >> 1, total = ((g.tilesM + 1) >> 1) * g.tilesN, nK = (g.k + GM_BK - 1) / GM_BK;
    bool signal = (threadIdx.x & 31) == 0;
    float d[128];
#pragma unroll
    for (int i = 0; i < 128; i++) d[i] = 0.f;
    int it = 0;
    for (int q = blockIdx.x >> 1; q < total; q += clusters)
    {
        int mp, tn;
        gm_tile(g, q, mp, tn);
        for (int kb = 0; kb < nK; kb++, it++)
        {
            int s = it % GM_STAGES;
            unsigned int st = base + s * GM_STAGE;
            mbar_wait(bars + s * 8, (unsigned int)(it / GM_STAGES) & 1u);
            wgmma_hold<128>(d);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < GM_BK / 16; kk++)
                wgmma_ss_n256(d, wgp_desc(st + wg * 64 * GM_ROW + kk * 32, 16, 8 * GM_ROW, GM_SWIZZLE),
                              wgp_desc(st + GM_HALF + kk * 32, 16, 8 * GM_ROW, GM_SWIZZLE), kb > 0 || kk > 0);
            wgmma_commit();
            wgmma_wait<1>(); // k-block kb - 1 is done with its stage
            wgmma_hold<128>(d);
            if (kb > 0 && signal)
            {
                unsigned int empty = bars + (GM_STAGES + (it - 1) % GM_STAGES) * 8;
                mbar_arrive_cluster(empty, GM_MULTICAST ? 0 : rank);
                if (GM_MULTICAST) mbar_arrive_cluster(empty, 1);
            }
        }
        wgmma_wait<0>();
        wgmma_hold<128>(d);
        if (signal)
        {
            unsigned int empty = bars + (GM_STAGES + (it - 1) % GM_STAGES) * 8;
            mbar_arrive_cluster(empty, GM_MULTICAST ? 0 : rank);
            if (GM_MULTICAST) mbar_arrive_cluster(empty, 1);
        }
        int m = 2 * mp + (int)rank;
        if (m < g.tilesM)
        {
            if (g.tmaStore) gm_store_tma(g, d, m, tn, wg, base + GM_OUT + wg * GM_OUT_WG);
            else gm_store(g, d, m, tn, wg);
        }
    }
    if (g.tmaStore && (threadIdx.x & 127) == 0) bulk_wait(); // the last tile's stores have left shared memory
}

// Grid: 2 x (clusters that fit at once, at most the tile pairs), cluster (2, 1, 1); block GM_THREADS; dynamic shared
// memory GM_SHARED.
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(GM_THREADS, 1) gemm_wgmma(const __grid_constant__ GemmParams g)
{
    extern __shared__ vec16 gm_smem[];
    unsigned int base = (smem_addr(gm_smem) + 1023u) & ~1023u;
    unsigned int bars = base + GM_BARRIERS;
    unsigned int rank = cluster_rank();
    if (threadIdx.x == 0)
    {
        for (int s = 0; s < GM_STAGES; s++)
        {
            mbar_init(bars + s * 8, 1);                 // full: the producer's expect_tx arrival + the bytes
            mbar_init(bars + (GM_STAGES + s) * 8, GM_MULTICAST ? 16 : 8); // empty: one arrival per consumer warp of both blocks
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    cluster_sync(); // both blocks' barriers exist before either multicasts into the other
    // Registers: launched at 168 per thread; the producer warpgroup drops to 40 and the consumers take 232
    // (128 x (168 - 40) = 256 x (232 - 168)).
    int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    if (wg == 2)
    {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;" ::: "memory");
        if (threadIdx.x / 32 == 8) gm_produce(g, base, bars, rank);
    }
    else
    {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;" ::: "memory");
        gm_consume(g, base, bars, rank, wg);
    }
    cluster_sync(); // no block leaves while the other may still write into its shared memory or barriers
}
