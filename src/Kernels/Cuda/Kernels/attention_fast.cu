// Fast attention kernels: compiled as attention.cu + this file into a second module (AttentionKernels), so the params
// structs (DecodeParams, PrefillParams) and their layouts are shared with the simple kernels, and a fast path that
// fails to compile or misbehaves can be bypassed with ACTORS_ATTENTION_SIMPLE=1 (only attention.cu is then compiled).
// Inline PTX needs sm_80+ (cp.async, ldmatrix, mma.sync bf16, cvt.rn.bf16x2), which CudaDevice already requires.

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// 16-byte vector; alignas makes extern __shared__ arrays of it 16-byte aligned.
struct alignas(16) u32x4 { unsigned int x, y, z, w; };

// ---------------------------------------------------------------------------------------------------------------------
// PTX helpers
// ---------------------------------------------------------------------------------------------------------------------

// 16-byte global -> shared copy, bypassing L1; bytes = 0 writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(unsigned int dst, const void* src, int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i. Without .trans, lane l receives
// (row l/4, columns 2(l%4), 2(l%4)+1) of each matrix; with .trans the transpose: (rows 2(l%4), 2(l%4)+1, column l/4).
__device__ __forceinline__ void ldsm_x4(unsigned int addr, unsigned int& r0, unsigned int& r1, unsigned int& r2, unsigned int& r3)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr) : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned int addr, unsigned int& r0, unsigned int& r1, unsigned int& r2, unsigned int& r3)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr) : "memory");
}

// D = A B + D, m16n8k16, bf16 inputs, f32 accumulators. Fragment layout (PTX ISA, "mma.m16n8k16" for .bf16), with
// gid = lane / 4, tig = lane % 4; a pair {x, y} in one .b32 register keeps x (the lower column / row index) in the low half:
//   A (16x16, row-major): a0 = A[gid][2tig..+1], a1 = A[gid+8][2tig..+1], a2 = A[gid][2tig+8..+9], a3 = A[gid+8][2tig+8..+9]
//   B (16x8, "col"):      b0 = B[2tig..+1][gid],  b1 = B[2tig+8..+9][gid]
//   C/D (16x8, f32):      c0, c1 = C[gid][2tig], C[gid][2tig+1];  c2, c3 = C[gid+8][2tig], C[gid+8][2tig+1]
__device__ __forceinline__ void mma_bf16(float* c, unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                         unsigned int b0, unsigned int b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16 bytes from global memory through the read-only path (the pool is not written while attention runs).
__device__ __forceinline__ void ld_nc16(const void* p, unsigned int* w)
{
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3]) : "l"(p));
}

__device__ __forceinline__ float bf_lo(unsigned int w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }

// ---------------------------------------------------------------------------------------------------------------------
// Prefill: FlashAttention-2 over the paged pool, head dim 128, tensor cores (mma.sync m16n8k16 bf16 -> f32).
// Same contract and params as paged_prefill (attention.cu). Grid (ceil(queries / 64), heads); block 128 (4 warps);
// dynamic shared memory 2 * 64 * FA_LD bf16 (K tile, V tile) = 34816 bytes.
// Each block owns 64 query rows of one head (warp w: rows 16w .. 16w+15), keeps its Q fragments in registers (read once
// from global memory), and walks key tiles of 64 from key 0 to its last row's position. K and V tiles are gathered
// from the pages with cp.async (a 64-key tile spans several pages); the V copy of tile j overlaps S = Q K^T of tile j,
// the K copy of tile j+1 overlaps O += P V of tile j. Online softmax in f32 registers in the log2 domain.
// Tiles past a warp's last row are skipped by that warp; causal masking is applied only on tiles that reach past a
// warp's first row. Blocks are issued last-tile-first, so the long causal rows start early.
// ---------------------------------------------------------------------------------------------------------------------
#define FA_D 128
#define FA_BR 64
#define FA_BC 64
#define FA_LD 136 // padded shared row (bf16): 272 bytes, so the 8 rows of an ldmatrix land 4 banks apart (conflict-free)

// Gathers keys t0 .. t0 + 63 (K, or V when valueHalf) of KV head kvh into dst (64 rows x FA_LD); keys past lastKey
// are zero-filled (their pages may not exist, and a zero V row keeps 0 * V finite).
__device__ __forceinline__ void fa_load_tile(bf16_t* dst, const PrefillParams& p, int kvh, int t0, int lastKey, bool valueHalf)
{
    u64 half = valueHalf ? (u64)p.pageSize * p.tokenStride : 0;
#pragma unroll
    for (int k = 0; k < FA_BC * (FA_D / 8) / 128; k++)
    {
        int i = threadIdx.x + 128 * k;
        int r = i >> 4, c = i & 15; // 16 consecutive threads copy one 256-byte row (coalesced)
        int pos = t0 + r;
        const bf16_t* src = p.kv;
        int bytes = 0;
        if (pos <= lastKey)
        {
            src = p.kv + (u64)p.pageTable[pos / p.pageSize] * p.pageStride + p.layerOffset
                  + (u64)(pos % p.pageSize) * p.tokenStride + half + (u64)kvh * FA_D + c * 8;
            bytes = 16;
        }
        cp_async16(smem_addr(dst + r * FA_LD + c * 8), src, bytes);
    }
}

extern "C" __global__ void __launch_bounds__(128) paged_prefill_fa(PrefillParams p)
{
    extern __shared__ u32x4 fa_smem[];
    bf16_t* Ks = (bf16_t*)fa_smem;
    bf16_t* Vs = Ks + FA_BC * FA_LD;

    int qt = gridDim.x - 1 - blockIdx.x; // heaviest (latest) query tiles first
    int h = blockIdx.y, kvh = h / (p.heads / p.kvHeads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;

    int q0 = qt * FA_BR;
    int lastQ = min(p.queries, q0 + FA_BR) - 1;
    int lastKey = p.firstPosition + lastQ; // this block needs keys 0 ..= lastKey
    int nTiles = lastKey / FA_BC + 1;
    int wq0 = q0 + warp * 16;              // the warp's first query row
    bool warpActive = wq0 <= lastQ;
    int warpLastPos = p.firstPosition + min(wq0 + 15, lastQ);
    int warpFirstPos = p.firstPosition + wq0;
    int rowA = wq0 + gid, rowB = rowA + 8;  // the two rows this thread holds in C fragments
    int posA = p.firstPosition + rowA, posB = posA + 8;

    // Q fragments of the warp's 16 rows x 128 dims: qa[ks] = A fragment of dims 16ks .. 16ks+15 (see mma_bf16).
    // Rows past the queries are zero (they compute harmless finite values and are never stored).
    unsigned int qa[8][4];
    {
        const unsigned int* qA = (const unsigned int*)(p.q + ((u64)rowA * p.heads + h) * FA_D);
        const unsigned int* qB = (const unsigned int*)(p.q + ((u64)rowB * p.heads + h) * FA_D);
        bool okA = rowA < p.queries, okB = rowB < p.queries;
#pragma unroll
        for (int ks = 0; ks < 8; ks++)
        {
            qa[ks][0] = okA ? qA[ks * 8 + tig] : 0u;     // dims 16ks + 2tig, +1
            qa[ks][1] = okB ? qB[ks * 8 + tig] : 0u;
            qa[ks][2] = okA ? qA[ks * 8 + 4 + tig] : 0u; // dims 16ks + 8 + 2tig, +1
            qa[ks][3] = okB ? qB[ks * 8 + 4 + tig] : 0u;
        }
    }

    float o[16][4]; // O (16 rows x 128 dims) as 16 C fragments of 8 dims
#pragma unroll
    for (int i = 0; i < 16; i++) { o[i][0] = 0.f; o[i][1] = 0.f; o[i][2] = 0.f; o[i][3] = 0.f; }
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f; // running max (log2 units) and this thread's partial row sums
    float scale2 = p.scale * LOG2E;

    unsigned int ksBase = smem_addr(Ks), vsBase = smem_addr(Vs);
    // ldmatrix row addresses (bytes). K (non-trans): matrix i = keys 8nt + (lane & 7), dims 32kk + 8i.
    unsigned int kLane = (unsigned int)(((lane & 7) * FA_LD + 8 * (lane >> 3)) * 2);
    // V (trans): matrix i = keys 16kk + (lane & 7) + 8 (i & 1), dims 16dp + 8 (i >> 1).
    unsigned int vLane = (unsigned int)((((lane & 7) + 8 * ((lane >> 3) & 1)) * FA_LD + 8 * (lane >> 4)) * 2);

    fa_load_tile(Ks, p, kvh, 0, lastKey, false);
    cp_async_commit();

    for (int j = 0; j < nTiles; j++)
    {
        int t0 = j * FA_BC;
        cp_async_wait_all();
        __syncthreads(); // K(j) landed for everyone; every warp is done with V(j-1)
        fa_load_tile(Vs, p, kvh, t0, lastKey, true);
        cp_async_commit();

        bool compute = warpActive && t0 <= warpLastPos; // warp-uniform
        float s[8][4];                                  // S (16 rows x 64 keys) as 8 C fragments of 8 keys
        if (compute)
        {
#pragma unroll
            for (int nt = 0; nt < 8; nt++) { s[nt][0] = 0.f; s[nt][1] = 0.f; s[nt][2] = 0.f; s[nt][3] = 0.f; }
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int nt = 0; nt < 8; nt++)
                {
                    unsigned int b0, b1, b2, b3; // B fragments (K^T) of dims 32kk .. +15 (b0, b1) and +16 .. +31 (b2, b3)
                    ldsm_x4(ksBase + kLane + (unsigned int)((nt * 8 * FA_LD + kk * 32) * 2), b0, b1, b2, b3);
                    mma_bf16(s[nt], qa[2 * kk][0], qa[2 * kk][1], qa[2 * kk][2], qa[2 * kk][3], b0, b1);
                    mma_bf16(s[nt], qa[2 * kk + 1][0], qa[2 * kk + 1][1], qa[2 * kk + 1][2], qa[2 * kk + 1][3], b2, b3);
                }

            bool diag = t0 + FA_BC - 1 > warpFirstPos; // some key of the tile may lie after some row of the warp
            float mxA = mA, mxB = mB;
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    int key = t0 + nt * 8 + 2 * tig + (e & 1);
                    float v = s[nt][e] * scale2;
                    if (diag && key > (e < 2 ? posA : posB)) v = NEG_INF;
                    s[nt][e] = v;
                    if (e < 2) mxA = fmaxf(mxA, v); else mxB = fmaxf(mxB, v);
                }
            // the 4 threads of a quad hold one row
            mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
            mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
            mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
            mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
            // Finite: tile 0 holds key 0, which every row attends, and tiles go in order.
            float cA = exp2f(mA - mxA), cB = exp2f(mB - mxB); // 0 on the first tile (mA = -inf)
            mA = mxA;
            mB = mxB;
            lA *= cA;
            lB *= cB;
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                s[nt][0] = exp2f(s[nt][0] - mA);
                s[nt][1] = exp2f(s[nt][1] - mA);
                s[nt][2] = exp2f(s[nt][2] - mB);
                s[nt][3] = exp2f(s[nt][3] - mB);
                lA += s[nt][0] + s[nt][1];
                lB += s[nt][2] + s[nt][3];
            }
#pragma unroll
            for (int dt = 0; dt < 16; dt++) { o[dt][0] *= cA; o[dt][1] *= cA; o[dt][2] *= cB; o[dt][3] *= cB; }
        }

        cp_async_wait_all();
        __syncthreads(); // V(j) landed; every warp is done with K(j)
        if (j + 1 < nTiles) fa_load_tile(Ks, p, kvh, t0 + FA_BC, lastKey, false);
        cp_async_commit();

        if (compute)
        {
#pragma unroll
            for (int kk = 0; kk < 4; kk++) // keys 16kk .. 16kk+15: P's A fragment is two S C fragments
            {
                unsigned int a0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]);         // row gid, keys 2tig, +1
                unsigned int a1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);         // row gid + 8
                unsigned int a2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]); // row gid, keys 8 + 2tig, +1
                unsigned int a3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]); // row gid + 8
#pragma unroll
                for (int dp = 0; dp < 8; dp++)
                {
                    unsigned int b0, b1, b2, b3; // B fragments (V) of dims 16dp .. +7 (b0, b1) and +8 .. +15 (b2, b3)
                    ldsm_x4_trans(vsBase + vLane + (unsigned int)((kk * 16 * FA_LD + dp * 16) * 2), b0, b1, b2, b3);
                    mma_bf16(o[2 * dp], a0, a1, a2, a3, b0, b1);
                    mma_bf16(o[2 * dp + 1], a0, a1, a2, a3, b2, b3);
                }
            }
        }
    }

    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    if (warpActive)
    {
        if (rowA < p.queries)
        {
            unsigned int* out = (unsigned int*)(p.out + ((u64)rowA * p.heads + h) * FA_D);
            float r = 1.f / lA;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) out[dt * 4 + tig] = pack_bf16(o[dt][0] * r, o[dt][1] * r); // dims 8dt + 2tig, +1
        }
        if (rowB < p.queries)
        {
            unsigned int* out = (unsigned int*)(p.out + ((u64)rowB * p.heads + h) * FA_D);
            float r = 1.f / lB;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) out[dt * 4 + tig] = pack_bf16(o[dt][2] * r, o[dt][3] * r);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Prefill, 128-row blocks: paged_prefill_fa128. Same contract, params and per-warp arithmetic (fragment layouts, online
// softmax) as paged_prefill_fa above; what changes is the block and the pipeline:
// - 128 query rows of one head per block (8 warps of 16 rows, 256 threads), so each K/V tile gathered from the pages
//   serves twice the rows: half the L2 -> shared traffic and cp.async / page-table work per FLOP of the 64-row kernel.
// - FB_STAGES (3) shared stages of {K tile, V tile} (64 keys each): tile j + 2 is requested while tile j is computed,
//   so a copy has two tiles of tensor-core work (~2 x 1500 cycles per SM) to land, and there is one __syncthreads per
//   tile instead of two wait-all barriers. Dynamic shared memory FB_STAGES * 2 * 64 * FA_LD bf16 = 104448 bytes (the
//   launcher opts in above 48 KiB); one block per SM (registers: ~170-255 per thread x 256 threads).
// - Each thread copies the same 4 key rows (16-byte column chunk c) of K and of V, so a row's page lookup (one integer
//   division by the page size) serves both.
// - Softmax on raw scores: the running max is kept unscaled and p = 2^(s * scale2 - m * scale2) is one FFMA + ex2
//   per score, which needs scale > 0 (the launcher sends any other scale to paged_prefill_fa).
// Grid (ceil(queries / 128), heads); block 256. Blocks are issued last-tile-first, as paged_prefill_fa.
// ---------------------------------------------------------------------------------------------------------------------
#define FB_WARPS 8
#define FB_BR (16 * FB_WARPS)
#define FB_STAGES 3
#define FB_STAGE (2 * FA_BC * FA_LD) // bf16 elements of one stage: K tile then V tile, FA_BC rows x FA_LD each

// 2^x on the MUFU (ex2.approx.ftz: results below 2^-126 flush to 0, harmless for softmax weights; 2^-inf = 0).
__device__ __forceinline__ float ex2(float x)
{
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}

template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

// Page ids of the 4 key rows (t0 + threadIdx.x / 16 + 16 k) this thread copies for the tile at t0 (0 past lastKey).
// Read one tile ahead of fb_load_stage, so the page-table load's latency hides behind a tile of mma work instead of
// stalling the copy issue right after the barrier.
__device__ __forceinline__ void fb_pages(const PrefillParams& p, int t0, int lastKey, int* pg)
{
    int r0 = threadIdx.x >> 4;
#pragma unroll
    for (int k = 0; k < FA_BC / 16; k++)
    {
        int pos = t0 + r0 + 16 * k;
        pg[k] = pos <= lastKey ? p.pageTable[pos / p.pageSize] : 0;
    }
}

// Gathers keys t0 .. t0 + 63 of KV head kvh, K into stage[0 .. 64 * FA_LD) and V into the next 64 * FA_LD; keys past
// lastKey are zero-filled (their pages may not exist, and a zero V row keeps 0 * V finite). 256 threads: thread t copies
// 16-byte chunk t % 16 of rows t / 16 + 16 k (k = 0 .. 3), 16 consecutive threads covering one 256-byte row (coalesced).
// pg: the rows' page ids from fb_pages for the same t0.
__device__ __forceinline__ void fb_load_stage(bf16_t* stage, const PrefillParams& p, int kvh, int t0, int lastKey, const int* pg)
{
    int c = threadIdx.x & 15, r0 = threadIdx.x >> 4;
    u64 vHalf = (u64)p.pageSize * p.tokenStride;
    unsigned int dst0 = smem_addr(stage + r0 * FA_LD + c * 8);
#pragma unroll
    for (int k = 0; k < FA_BC / 16; k++)
    {
        int pos = t0 + r0 + 16 * k;
        const bf16_t* src = p.kv;
        int bytes = 0;
        if (pos <= lastKey)
        {
            int slot = pos - pos / p.pageSize * p.pageSize;
            src = p.kv + (u64)pg[k] * p.pageStride + p.layerOffset + (u64)slot * p.tokenStride + (u64)kvh * FA_D + c * 8;
            bytes = 16;
        }
        unsigned int dst = dst0 + (unsigned int)(16 * k * FA_LD * 2);
        cp_async16(dst, src, bytes);
        cp_async16(dst + (unsigned int)(FA_BC * FA_LD * 2), bytes ? src + vHalf : src, bytes);
    }
}

// The work of one block of paged_prefill_fa128 / paged_prefill_fa128g once each warp knows its head h (reading KV
// head kvh), its first query row wq0, and the block's last query row lastQ: the FB_STAGES-deep page gather, Q K^T,
// the raw-score online softmax, P V and the output rows. The two kernels differ only in how they map block rows to
// (head, query).
// Split-KV output of one block (paged_prefill_fa128g_split): unnormalised O, and per row the running max in the
// exp2 domain (m * scale * log2 e) and the sum l, at (row, head, split); prefill_split_reduce merges the splits.
struct PrefillSplitOut
{
    float* acc;   // (queries, heads, splits, 128)
    float* max;   // (queries, heads, splits)
    float* sum;   // (queries, heads, splits)
    int splits;
    int split;
};

__device__ __forceinline__ void fb_prefill(const PrefillParams& p, bf16_t* stages, int h, int kvh, int lastQ, int wq0,
                                           int tileBegin = 0, int tileEnd = 0x7fffffff, const PrefillSplitOut* part = nullptr)
{
    int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
    int lastKey = p.firstPosition + lastQ; // this block needs keys 0 ..= lastKey
    // Tiles tileBegin .. nTiles - 1 of the block's keys (all of them unless split-KV gives the block a range); the
    // pipeline below counts tiles from tileBegin (stage and commit group j hold tile tileBegin + j).
    int nTiles = min(lastKey / FA_BC + 1, tileEnd) - tileBegin;
    if (nTiles < 0) nTiles = 0;
    int tileBase = tileBegin * FA_BC;
    bool warpActive = wq0 <= lastQ;
    int warpLastPos = p.firstPosition + min(wq0 + 15, lastQ);
    int warpFirstPos = p.firstPosition + wq0;
    int rowA = wq0 + gid, rowB = rowA + 8;  // the two rows this thread holds in C fragments
    int posA = p.firstPosition + rowA, posB = posA + 8;

    // Request the first FB_STAGES - 1 tiles before anything else (one commit group each, empty past nTiles, so that
    // group g always holds tile g).
    int pg[FA_BC / 16]; // page ids of the next tile to request
#pragma unroll
    for (int s = 0; s < FB_STAGES - 1; s++)
    {
        if (s < nTiles)
        {
            fb_pages(p, tileBase + s * FA_BC, lastKey, pg);
            fb_load_stage(stages + s * FB_STAGE, p, kvh, tileBase + s * FA_BC, lastKey, pg);
        }
        cp_async_commit();
    }
    fb_pages(p, tileBase + (FB_STAGES - 1) * FA_BC, lastKey, pg); // all 0 past lastKey (tile FB_STAGES - 1 may not exist)

    // Q fragments of the warp's 16 rows x 128 dims: qa[ks] = A fragment of dims 16ks .. 16ks+15 (see mma_bf16).
    // Rows past the queries are zero (they compute harmless finite values and are never stored).
    unsigned int qa[8][4];
    {
        const unsigned int* qA = (const unsigned int*)(p.q + ((u64)rowA * p.heads + h) * FA_D);
        const unsigned int* qB = (const unsigned int*)(p.q + ((u64)rowB * p.heads + h) * FA_D);
        bool okA = rowA < p.queries, okB = rowB < p.queries;
#pragma unroll
        for (int ks = 0; ks < 8; ks++)
        {
            qa[ks][0] = okA ? qA[ks * 8 + tig] : 0u;     // dims 16ks + 2tig, +1
            qa[ks][1] = okB ? qB[ks * 8 + tig] : 0u;
            qa[ks][2] = okA ? qA[ks * 8 + 4 + tig] : 0u; // dims 16ks + 8 + 2tig, +1
            qa[ks][3] = okB ? qB[ks * 8 + 4 + tig] : 0u;
        }
    }

    float o[16][4]; // O (16 rows x 128 dims) as 16 C fragments of 8 dims
#pragma unroll
    for (int i = 0; i < 16; i++) { o[i][0] = 0.f; o[i][1] = 0.f; o[i][2] = 0.f; o[i][3] = 0.f; }
    // Running max of the raw scores Q K^T (scale2 > 0, so the max of the scaled scores is scale2 times it) and this
    // thread's partial row sums; p = 2^(s scale2 - m scale2), one FFMA and one MUFU.EX2 per score.
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f;
    float scale2 = p.scale * LOG2E;

    unsigned int smemBase = smem_addr(stages);
    // ldmatrix row addresses (bytes) within a tile. K (non-trans): matrix i = keys 8nt + (lane & 7), dims 32kk + 8i.
    unsigned int kLane = (unsigned int)(((lane & 7) * FA_LD + 8 * (lane >> 3)) * 2);
    // V (trans): matrix i = keys 16kk + (lane & 7) + 8 (i & 1), dims 16dp + 8 (i >> 1).
    unsigned int vLane = (unsigned int)((((lane & 7) + 8 * ((lane >> 3) & 1)) * FA_LD + 8 * (lane >> 4)) * 2);

    for (int j = 0; j < nTiles; j++)
    {
        int t0 = tileBase + j * FA_BC;
        cp_async_wait<FB_STAGES - 2>(); // this thread's copies of tile j (group j) are done
        __syncthreads();                // ... everyone's; and every warp is done with tile j - 1, whose stage is refilled next
        {
            int jn = j + FB_STAGES - 1;
            if (jn < nTiles)
            {
                fb_load_stage(stages + (jn % FB_STAGES) * FB_STAGE, p, kvh, tileBase + jn * FA_BC, lastKey, pg);
                fb_pages(p, tileBase + (jn + 1) * FA_BC, lastKey, pg); // consumed next iteration
            }
            cp_async_commit();
        }

        if (!warpActive || t0 > warpLastPos) continue; // warp-uniform: the whole tile lies after the warp's rows
        unsigned int kBase = smemBase + (unsigned int)((j % FB_STAGES) * FB_STAGE * 2);
        unsigned int vBase = kBase + (unsigned int)(FA_BC * FA_LD * 2);

        float s[8][4]; // S (16 rows x 64 keys) as 8 C fragments of 8 keys
#pragma unroll
        for (int nt = 0; nt < 8; nt++) { s[nt][0] = 0.f; s[nt][1] = 0.f; s[nt][2] = 0.f; s[nt][3] = 0.f; }
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
            {
                unsigned int b0, b1, b2, b3; // B fragments (K^T) of dims 32kk .. +15 (b0, b1) and +16 .. +31 (b2, b3)
                ldsm_x4(kBase + kLane + (unsigned int)((nt * 8 * FA_LD + kk * 32) * 2), b0, b1, b2, b3);
                mma_bf16(s[nt], qa[2 * kk][0], qa[2 * kk][1], qa[2 * kk][2], qa[2 * kk][3], b0, b1);
                mma_bf16(s[nt], qa[2 * kk + 1][0], qa[2 * kk + 1][1], qa[2 * kk + 1][2], qa[2 * kk + 1][3], b2, b3);
            }

        bool diag = t0 + FA_BC - 1 > warpFirstPos; // some key of the tile may lie after some row of the warp
        if (diag)
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (t0 + nt * 8 + 2 * tig + (e & 1) > (e < 2 ? posA : posB)) s[nt][e] = NEG_INF;
        float mxA = mA, mxB = mB;
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            mxA = fmaxf(mxA, fmaxf(s[nt][0], s[nt][1]));
            mxB = fmaxf(mxB, fmaxf(s[nt][2], s[nt][3]));
        }
        // the 4 threads of a quad hold one row
        mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
        mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
        mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
        mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
        // Without split-KV tile 0 holds key 0, which every row attends, so the max is finite from the first tile on.
        // A split's first tiles can lie wholly after a row (its max stays -inf): factor 1, and every p of it 0.
        float cA = mxA == NEG_INF ? 1.f : ex2((mA - mxA) * scale2), cB = mxB == NEG_INF ? 1.f : ex2((mB - mxB) * scale2);
        mA = mxA;
        mB = mxB;
        lA *= cA;
        lB *= cB;
        float nA = mA == NEG_INF ? 0.f : -mA * scale2, nB = mB == NEG_INF ? 0.f : -mB * scale2;
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
        {
            s[nt][0] = ex2(fmaf(s[nt][0], scale2, nA)); // masked: -inf -> 0
            s[nt][1] = ex2(fmaf(s[nt][1], scale2, nA));
            s[nt][2] = ex2(fmaf(s[nt][2], scale2, nB));
            s[nt][3] = ex2(fmaf(s[nt][3], scale2, nB));
            lA += s[nt][0] + s[nt][1];
            lB += s[nt][2] + s[nt][3];
        }
        // Unconditional (no branch to skip it when every factor is 1): one basic block from the exponentials to P V lets
        // ptxas interleave the MUFU ex2s with the P V mma.syncs of the key blocks whose P is ready.
#pragma unroll
        for (int dt = 0; dt < 16; dt++) { o[dt][0] *= cA; o[dt][1] *= cA; o[dt][2] *= cB; o[dt][3] *= cB; }

#pragma unroll
        for (int kk = 0; kk < 4; kk++) // keys 16kk .. 16kk+15: P's A fragment is two S C fragments
        {
            unsigned int a0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]);         // row gid, keys 2tig, +1
            unsigned int a1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);         // row gid + 8
            unsigned int a2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]); // row gid, keys 8 + 2tig, +1
            unsigned int a3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]); // row gid + 8
#pragma unroll
            for (int dp = 0; dp < 8; dp++)
            {
                unsigned int b0, b1, b2, b3; // B fragments (V) of dims 16dp .. +7 (b0, b1) and +8 .. +15 (b2, b3)
                ldsm_x4_trans(vBase + vLane + (unsigned int)((kk * 16 * FA_LD + dp * 16) * 2), b0, b1, b2, b3);
                mma_bf16(o[2 * dp], a0, a1, a2, a3, b0, b1);
                mma_bf16(o[2 * dp + 1], a0, a1, a2, a3, b2, b3);
            }
        }
    }

    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    if (part != nullptr)
    {
        // Split-KV: the partial state of rows A and B (a warp past the block's rows writes nothing).
        if (warpActive && rowA < p.queries)
        {
            u64 i = ((u64)rowA * p.heads + h) * part->splits + part->split;
            float* acc = part->acc + i * FA_D;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) { acc[dt * 8 + 2 * tig] = o[dt][0]; acc[dt * 8 + 2 * tig + 1] = o[dt][1]; }
            if (tig == 0) { part->max[i] = mA == NEG_INF ? NEG_INF : mA * scale2; part->sum[i] = lA; }
        }
        if (warpActive && rowB < p.queries)
        {
            u64 i = ((u64)rowB * p.heads + h) * part->splits + part->split;
            float* acc = part->acc + i * FA_D;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) { acc[dt * 8 + 2 * tig] = o[dt][2]; acc[dt * 8 + 2 * tig + 1] = o[dt][3]; }
            if (tig == 0) { part->max[i] = mB == NEG_INF ? NEG_INF : mB * scale2; part->sum[i] = lB; }
        }
        return;
    }
    if (warpActive)
    {
        if (rowA < p.queries)
        {
            unsigned int* out = (unsigned int*)(p.out + ((u64)rowA * p.heads + h) * FA_D);
            float r = 1.f / lA;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) out[dt * 4 + tig] = pack_bf16(o[dt][0] * r, o[dt][1] * r); // dims 8dt + 2tig, +1
        }
        if (rowB < p.queries)
        {
            unsigned int* out = (unsigned int*)(p.out + ((u64)rowB * p.heads + h) * FA_D);
            float r = 1.f / lB;
#pragma unroll
            for (int dt = 0; dt < 16; dt++) out[dt * 4 + tig] = pack_bf16(o[dt][2] * r, o[dt][3] * r);
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * FB_WARPS, 1) paged_prefill_fa128(PrefillParams p)
{
    extern __shared__ u32x4 fa_smem[];
    bf16_t* stages = (bf16_t*)fa_smem;

    int qt = gridDim.x - 1 - blockIdx.x; // heaviest (latest) query tiles first
    int h = blockIdx.y, kvh = h / (p.heads / p.kvHeads);
    int warp = threadIdx.x >> 5;

    int q0 = qt * FB_BR;
    int lastQ = min(p.queries, q0 + FB_BR) - 1;
    int wq0 = q0 + warp * 16; // the warp's first query row
    fb_prefill(p, stages, h, kvh, lastQ, wq0);
}

// ---------------------------------------------------------------------------------------------------------------------
// Prefill, GQA-shared 128-row blocks: paged_prefill_fa128g. Same contract, params, pipeline (3 stages, one barrier per
// tile, page ids one tile ahead), per-warp arithmetic and raw-score softmax (scale > 0) as paged_prefill_fa128; what
// changes is which 128 query rows a block owns: the group = heads / kvHeads (1, 2, 4 or 8) query heads of ONE KV head
// at rows = 128 / group consecutive query positions (Llama-3-8B, group 4: 4 heads x 32 positions). Block row
// g * rows + i (warp (g * rows + i) / 16) is head kvh * group + g at query q0 + i.
// Why, and what it can gain: a K/V tile gathered from the pages serves the heads that share it inside one block
// (each head's 32 rows), and the block's 128 rows span 32 positions instead of 128. Note that the total L2 -> SM bytes
// do NOT drop: they depend on the query rows per block (128 either way: (T / 32) x kvHeads blocks here versus
// (T / 128) x heads there, each walking the same tiles), and at 8K one layer's K/V (33 MB) sits in the 50 MB L2 anyway.
// What shrinks: the diagonal tail (the 128-row block's early warps idle ~1.5 tiles while its last warp finishes; here
// ~0.5), the L2 misses at 32K (134 MB of K/V per layer) since the group's heads read each tile at the same moment, and
// the page-table reads. Predicted: +0-5% (170-180 TFLOP/s at 8K, 210-220 at 32K on an H100). The larger lever is 32
// query rows per warp sharing each K/V ldmatrix between two m16 fragments (~1.3-1.5x fewer shared-memory reads per
// FLOP): with Q in registers it needs O 128 + S 64 + Q 64 registers per thread, over the 255 cap, so it needs Q
// re-read from shared memory per tile; not done here.
// Grid (ceil(queries / rows), kvHeads); block 256; same dynamic shared memory as paged_prefill_fa128 (104448 bytes).
// ---------------------------------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(32 * FB_WARPS, 1) paged_prefill_fa128g(PrefillParams p)
{
    extern __shared__ u32x4 fa_smem[];
    bf16_t* stages = (bf16_t*)fa_smem;

    int qt = gridDim.x - 1 - blockIdx.x; // heaviest (latest) query tiles first
    int group = p.heads / p.kvHeads;     // 1, 2, 4 or 8 (the launcher checks)
    int rows = FB_BR / group;            // query positions per block: 128, 64, 32 or 16
    int kvh = blockIdx.y;
    int warp = threadIdx.x >> 5;
    // Block rows head-major: block row r = g * rows + i is head kvh * group + g at query q0 + i. rows is a multiple of
    // 16, so a warp's 16 rows lie in one head at 16 consecutive positions, and the per-warp causal logic of
    // paged_prefill_fa128 (first / last position, tile skipping, diagonal masking) carries over unchanged.
    int h = kvh * group + warp * 16 / rows;

    int q0 = qt * rows;
    int lastQ = min(p.queries, q0 + rows) - 1;
    int wq0 = q0 + warp * 16 % rows; // the warp's first query row
    fb_prefill(p, stages, h, kvh, lastQ, wq0);
}

// ---------------------------------------------------------------------------------------------------------------------
// Split-KV prefill for few query rows over a long cached context (a new turn on a long session): the GQA-shared
// kernel's blocks, each also given one of `splits` ranges of the key tiles (grid z), writing the partial state that
// prefill_split_reduce merges. Without it, 19 rows over 32K keys make 8 blocks (one per KV head) that walk all 512
// tiles each while the other 124 multiprocessors idle.
// Grid (ceil(queries / rows), kvHeads, splits); block 256; shared memory as paged_prefill_fa128g.
// ---------------------------------------------------------------------------------------------------------------------
struct PrefillSplitParams
{
    PrefillParams p;
    float* acc;
    float* max;
    float* sum;
    int splits;
    int tilesPerSplit;
};

extern "C" __global__ void __launch_bounds__(32 * FB_WARPS, 1) paged_prefill_fa128g_split(PrefillSplitParams ps)
{
    extern __shared__ u32x4 fa_smem[];
    bf16_t* stages = (bf16_t*)fa_smem;
    const PrefillParams& p = ps.p;

    int qt = gridDim.x - 1 - blockIdx.x;
    int group = p.heads / p.kvHeads;
    int rows = FB_BR / group;
    int kvh = blockIdx.y;
    int warp = threadIdx.x >> 5;
    int h = kvh * group + warp * 16 / rows;
    int q0 = qt * rows;
    int lastQ = min(p.queries, q0 + rows) - 1;
    int wq0 = q0 + warp * 16 % rows;
    PrefillSplitOut part = { ps.acc, ps.max, ps.sum, ps.splits, (int)blockIdx.z };
    int begin = (int)blockIdx.z * ps.tilesPerSplit;
    fb_prefill(p, stages, h, kvh, lastQ, wq0, begin, begin + ps.tilesPerSplit, &part);
}

// Grid (heads, queries); block 128. out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s, M = max_s m_s (m in the exp2
// domain). Splits past a row's keys hold m = -inf, l = 0, acc = 0 and weigh nothing; split 0 holds key 0 for every row.
extern "C" __global__ void prefill_split_reduce(PrefillSplitParams ps)
{
    const PrefillParams& p = ps.p;
    int h = blockIdx.x, row = blockIdx.y;
    u64 base = ((u64)row * p.heads + h) * ps.splits;
    __shared__ float scratch[32];
    float M = NEG_INF;
    for (int s = threadIdx.x; s < ps.splits; s += blockDim.x) M = fmaxf(M, ps.max[base + s]);
    M = block_max(M, scratch);
    float L = 0.f;
    for (int s = threadIdx.x; s < ps.splits; s += blockDim.x)
    {
        float m = ps.max[base + s];
        if (m != NEG_INF) L += ps.sum[base + s] * exp2f(m - M);
    }
    L = block_sum(L, scratch);
    bf16_t* o = p.out + ((u64)row * p.heads + h) * FA_D;
    for (int c = threadIdx.x; c < FA_D; c += blockDim.x)
    {
        float acc = 0.f;
        for (int s = 0; s < ps.splits; s++)
        {
            float m = ps.max[base + s];
            if (m != NEG_INF) acc += ps.acc[(base + s) * FA_D + c] * exp2f(m - M);
        }
        o[c] = f2bf(acc / L);
    }
}

// prefill_split_reduce's merge with a warp per (row, head) (SplitMerge in exp2 units): the splits' loads in chunks of
// 16, each one round trip, where prefill_split_reduce's threads walked the splits one load after another (a new turn's
// 19 rows over a 32K prefix take 33 splits). Grid (ceil(heads / 4), queries); block 128.
extern "C" __global__ void prefill_split_reduce_warp(PrefillSplitParams ps)
{
    const PrefillParams& p = ps.p;
    int h = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), row = blockIdx.y;
    if (h >= p.heads) return; // whole warps
    u64 base = ((u64)row * p.heads + h) * ps.splits;
    SplitMerge<FA_D / 32, true> m;
    m.acc = ps.acc + base * FA_D;
    m.mx = ps.max + base;
    m.sm = ps.sum + base;
    m.lane = threadIdx.x & 31;
    m.Load(0, ps.splits);
    m.Merge(ps.splits, p.out + ((u64)row * p.heads + h) * FA_D);
}

// The end of a split-K decode block: merges its 4 warps' softmax states (racc (4, group, d) weighted V sums, rm and rl
// (4, group) maxima in log2 units and sums, in shared memory, published) into the split's partial outputs, as
// paged_decode_split writes them (partialMax in natural-log units). Thread t of `threads` takes channels t, t + threads, ...
// Warp 0 holds the split's first key, so every head's merged max is finite.
__device__ __forceinline__ void decode_write_partials(const DecodeParams& p, const float* racc, const float* rm, const float* rl,
                                                      int group, int d, int seq, int kvh, int split, int t, int threads)
{
    u64 partIdx = ((u64)seq * p.heads + (u64)kvh * group) * p.maxSplits + split;
    for (int i = t; i < group * d; i += threads)
    {
        int g = i / d, c = i % d;
        float mx = NEG_INF;
#pragma unroll
        for (int w = 0; w < 4; w++) mx = fmaxf(mx, rm[w * group + g]);
        float a = 0.f, sum = 0.f;
#pragma unroll
        for (int w = 0; w < 4; w++)
        {
            float f = exp2f(rm[w * group + g] - mx);
            a += racc[(w * group + g) * d + c] * f;
            sum += rl[w * group + g] * f;
        }
        u64 at = partIdx + (u64)g * p.maxSplits;
        p.partialAcc[at * d + c] = a;
        if (c == 0)
        {
            p.partialMax[at] = mx * LN2;
            p.partialSum[at] = sum;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Decode, vectorised split: same contract, params and partial outputs as paged_decode_split (partialMax in natural-log
// units), so paged_decode_reduce merges either. Head dim D in {64, 128}, G query heads per KV head in {1, 2, 4, 8}.
// Grid (maxSplits, kvHeads, seqs); block 128 (4 warps). A key row of D bf16 is read by L = D / 8 lanes, 16 bytes each
// (ld.global.nc.v4), so a warp reads 32 / L rows per step and each thread keeps U steps of loads in flight. Each K/V
// read serves all G query heads of the group.
// One pass: the K and the V row of a position are loaded together (V does not depend on the scores), and every thread
// keeps an online softmax (running max m, sum l, weighted V acc) over the rows it reads, in log2 units. The threads'
// states are merged at the end, across the warp with shuffles, then across the 4 warps in shared memory. So a block
// makes one dependent round trip to memory per U steps instead of two (K, then V after a barrier and the softmax).
// Dynamic shared memory: 4 * G * (D + 2) floats. At most 128 registers for G <= 4, so 4 blocks fit an SM (one wave of
// the ~512 blocks the launcher aims for on 132 SMs).
// ---------------------------------------------------------------------------------------------------------------------
template <int D, int G>
__device__ __forceinline__ void decode_split_vec(const DecodeParams& p)
{
    PDL_ENTER();
    constexpr int L = D / 8;     // lanes per key row
    constexpr int KPW = 32 / L;  // rows per warp step
    constexpr int WARPS = 4; // decode_write_partials merges 4 warps
    constexpr int KPB = KPW * WARPS;
    constexpr int U = G >= 8 ? 2 : 4; // steps of loads in flight (K and V each)
    extern __shared__ float smem[];
    int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
    int start = split * p.splitSize;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int sub = lane / L, part = lane % L; // row within the warp step, 16-byte chunk within the row
    const int* table = p.pageTables + (u64)seq * p.pageTableStride;

    // this thread's 8 channels of each head of the group (the group's heads are contiguous), in log2 units
    const bf16_t* qbase = p.q + ((u64)seq * p.heads + (u64)kvh * G) * D + part * 8;
    const float qscale = p.scale * LOG2E;
    float qr[G][8];
#pragma unroll
    for (int g = 0; g < G; g++)
    {
        unpack8(*(const vec16*)(qbase + g * D), qr[g]);
#pragma unroll
        for (int e = 0; e < 8; e++) qr[g][e] *= qscale;
    }

    const bf16_t* base = p.kv + p.layerOffset + (u64)kvh * D + part * 8;
    const u64 vHalf = (u64)p.pageSize * p.tokenStride;
    const int len = p.contextLens[seq];
    if (start >= len) return; // uniform across the block
    const int n = min(len - start, p.splitSize);
    float m[G], l[G], acc[G][8];
#pragma unroll
    for (int g = 0; g < G; g++)
    {
        m[g] = NEG_INF;
        l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.f;
    }

    // loop bounds are warp-uniform (the shuffles need every lane); rows past n load nothing and score -inf
    for (int b = warp * KPW; b < n; b += KPB * U)
    {
        unsigned int kw[U][4], vw[U][4];
#pragma unroll
        for (int u = 0; u < U; u++)
        {
            int j = b + u * KPB + sub;
            if (j < n)
            {
                int pos = start + j;
                const bf16_t* row = base + (u64)table[pos / p.pageSize] * p.pageStride + (u64)(pos % p.pageSize) * p.tokenStride;
                ld_nc16(row, kw[u]);
                ld_nc16(row + vHalf, vw[u]);
            }
            else
#pragma unroll
                for (int e = 0; e < 4; e++) { kw[u][e] = 0u; vw[u][e] = 0u; }
        }
        float sc[U][G];
#pragma unroll
        for (int u = 0; u < U; u++)
        {
            float k[8];
#pragma unroll
            for (int e = 0; e < 4; e++) { k[2 * e] = bf_lo(kw[u][e]); k[2 * e + 1] = bf_hi(kw[u][e]); }
            bool valid = b + u * KPB + sub < n;
#pragma unroll
            for (int g = 0; g < G; g++)
            {
                float a = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++) a += qr[g][e] * k[e];
#pragma unroll
                for (int o = 1; o < L; o <<= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
                sc[u][g] = valid ? a : NEG_INF;
            }
        }
        // online softmax: one rescale per U rows; a state with no finite score yet keeps m = -inf, l = 0, acc = 0
#pragma unroll
        for (int g = 0; g < G; g++)
        {
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < U; u++) mx = fmaxf(mx, sc[u][g]);
            float ms = mx == NEG_INF ? 0.f : mx;
            float corr = exp2f(m[g] - ms);
            l[g] *= corr;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] *= corr;
#pragma unroll
            for (int u = 0; u < U; u++) sc[u][g] = exp2f(sc[u][g] - ms);
            m[g] = mx;
        }
#pragma unroll
        for (int u = 0; u < U; u++)
        {
            float v[8];
#pragma unroll
            for (int e = 0; e < 4; e++) { v[2 * e] = bf_lo(vw[u][e]); v[2 * e + 1] = bf_hi(vw[u][e]); }
#pragma unroll
            for (int g = 0; g < G; g++)
            {
                l[g] += sc[u][g];
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] += sc[u][g] * v[e];
            }
        }
    }
    // l is the same on the L lanes of a row group (their scores are the same after the shuffles); merge the KPW row
    // groups of the warp (lanes part, part + L, ...)
#pragma unroll
    for (int o = L; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < G; g++)
        {
            float mo = __shfl_xor_sync(0xffffffffu, m[g], o), lo = __shfl_xor_sync(0xffffffffu, l[g], o);
            float mx = fmaxf(m[g], mo), ms = mx == NEG_INF ? 0.f : mx;
            float fa = exp2f(m[g] - ms), fb = exp2f(mo - ms);
            l[g] = l[g] * fa + lo * fb;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] = acc[g][e] * fa + __shfl_xor_sync(0xffffffffu, acc[g][e], o) * fb;
            m[g] = mx;
        }
    // then the 4 warps: per warp acc (G, D), m (G), l (G)
    float* racc = smem;
    float* rm = racc + WARPS * G * D;
    float* rl = rm + WARPS * G;
    if (sub == 0)
#pragma unroll
        for (int g = 0; g < G; g++)
        {
#pragma unroll
            for (int e = 0; e < 8; e++) racc[(warp * G + g) * D + part * 8 + e] = acc[g][e];
            if (part == 0) { rm[warp * G + g] = m[g]; rl[warp * G + g] = l[g]; }
        }
    __syncthreads();
    decode_write_partials(p, racc, rm, rl, G, D, seq, kvh, split, threadIdx.x, blockDim.x);
}

#define DECODE_VEC(D, G) \
    extern "C" __global__ void __launch_bounds__(128, G >= 8 ? 1 : 4) paged_decode_split_d##D##_g##G(DecodeParams p) { decode_split_vec<D, G>(p); }
DECODE_VEC(64, 1)
DECODE_VEC(64, 2)
DECODE_VEC(64, 4)
DECODE_VEC(64, 8)
DECODE_VEC(128, 1)
DECODE_VEC(128, 2)
DECODE_VEC(128, 4)
DECODE_VEC(128, 8)
