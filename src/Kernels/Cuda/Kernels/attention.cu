// Attention over the paged KV pool, bf16 K/V/q/out, f32 math. Launchers: Attention.cs.
// Pool layout (elements, as Actors.Kernels.Cpu.KvLayout but bf16): page -> layer -> { K (slot, kvHead, headDim),
// V (slot, kvHead, headDim) }. Key position p of a sequence lives in page pageTable[p / pageSize], slot p % pageSize:
//   K at page * pageStride + layerOffset + slot * tokenStride + kvHead * headDim, V pageSize * tokenStride further.
// Query head h reads KV head h / (heads / kvHeads). headDim <= 256 (per-lane registers hold headDim / 32 channels).

// Writes k, v (tokens, kvHeads, headDim) of one sequence at positions firstPosition .. firstPosition + tokens - 1.
// Token t of k starts at k + t * kRowStride (so k and v may sit inside a fused qkv row). Grid: ceil(tokens * kvHeads * headDim / block).
struct KvWriteParams
{
    const bf16_t* k;
    const bf16_t* v;
    bf16_t* kv;
    const int* pageTable;
    long long pageStride;
    long long layerOffset;
    int tokenStride;
    int pageSize;
    int tokens;
    int kvHeads;
    int headDim;
    int firstPosition;
    int kRowStride;
    int vRowStride;
};
static_assert(sizeof(KvWriteParams) == 80, "layout must match AttentionKernels.KvWriteParams");

extern "C" __global__ void kv_write(KvWriteParams p)
{
    PDL_ENTER();
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long perToken = (long long)p.kvHeads * p.headDim;
    if (idx >= (long long)p.tokens * perToken) return;
    int t = (int)(idx / perToken);
    int e = (int)(idx % perToken); // kvHead * headDim + channel
    int pos = p.firstPosition + t;
    u64 off = (u64)p.pageTable[pos / p.pageSize] * p.pageStride + p.layerOffset + (u64)(pos % p.pageSize) * p.tokenStride + e;
    p.kv[off] = p.k[(u64)t * p.kRowStride + e];
    p.kv[off + (u64)p.pageSize * p.tokenStride] = p.v[(u64)t * p.vRowStride + e];
}

// Decode: one query per sequence (at position contextLens[s] - 1, attending keys 0 .. contextLens[s] - 1), batched over
// sequences of different lengths. Split-K: the context is cut into splits of splitSize keys; paged_decode_split writes
// per split the running max, the sum of exp(score - max) and the unnormalised sum of exp(score - max) * v, and
// paged_decode_reduce merges the splits. maxSplits (grid x) must cover the longest context: a longer one gives NaN rows.
struct DecodeParams
{
    const bf16_t* q;          // (seqs, heads, headDim)
    const bf16_t* kv;         // pool
    const int* pageTables;    // (seqs, pageTableStride)
    const int* contextLens;   // (seqs)
    float* partialAcc;        // (seqs, heads, maxSplits, headDim)
    float* partialMax;        // (seqs, heads, maxSplits)
    float* partialSum;        // (seqs, heads, maxSplits)
    bf16_t* out;              // (seqs, heads, headDim)
    long long pageStride;
    long long layerOffset;
    int tokenStride;
    int pageSize;
    int heads;
    int kvHeads;
    int headDim;
    int pageTableStride;
    int splitSize;
    int maxSplits;
    float scale;
    int balanced;             // 0: every split takes splitSize keys; 1: see decode_split_size (paged_decode_tma only)
};
static_assert(sizeof(DecodeParams) == 120, "layout must match AttentionKernels.DecodeParams");

// Keys per split of a sequence of len keys: splitSize; or, balanced, its keys cut into maxSplits equal parts (rounded up
// to 64-key tiles, at most splitSize since maxSplits * splitSize covers the grid's context). A CUDA graph's grid covers
// its context bucket, so with a fixed splitSize a sequence early in the bucket ran fewer, longer splits than its
// context needs, or (splits sized at capture) more than one wave once it grew; balanced splits fill the grid at every
// context. paged_decode_reduce merges by the same rule. C# twin: AttentionKernels.BalancedSplitSize.
__device__ __forceinline__ int decode_split_size(const DecodeParams& p, int len)
{
    if (!p.balanced) return p.splitSize;
    int even = (len + p.maxSplits - 1) / p.maxSplits;
    return min(p.splitSize, max(64, (even + 63) & ~63));
}

// Grid (maxSplits, kvHeads, seqs); block 128. One block serves all query heads of one KV head, so each K/V row is read
// once per group. Dynamic shared memory: group * headDim (q) + group * splitSize (scores) + 32 (scratch) floats.
extern "C" __global__ void paged_decode_split(DecodeParams p)
{
    PDL_ENTER();
    extern __shared__ float smem[];
    int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
    int len = p.contextLens[seq];
    int start = split * p.splitSize;
    if (start >= len) return; // uniform across the block
    int n = min(len - start, p.splitSize);
    int group = p.heads / p.kvHeads, d = p.headDim, S = p.splitSize;
    float* qs = smem;
    float* sc = qs + group * d;
    float* scratch = sc + group * S;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    const bf16_t* qbase = p.q + ((u64)seq * p.heads + (u64)kvh * group) * d; // the group's heads are contiguous
    for (int i = threadIdx.x; i < group * d; i += blockDim.x) qs[i] = bf2f(qbase[i]);
    __syncthreads();

    const int* table = p.pageTables + (u64)seq * p.pageTableStride;
    // scores: one warp per key, lanes across channels (coalesced K reads)
    for (int j = warp; j < n; j += warps)
    {
        int pos = start + j;
        const bf16_t* k = p.kv + (u64)table[pos / p.pageSize] * p.pageStride + p.layerOffset
                          + (u64)(pos % p.pageSize) * p.tokenStride + (u64)kvh * d;
        float kr[8];
#pragma unroll
        for (int i = 0; i < 8; i++) { int c = lane + 32 * i; kr[i] = c < d ? bf2f(k[c]) : 0.f; }
        for (int g = 0; g < group; g++)
        {
            float acc = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) { int c = lane + 32 * i; if (c < d) acc += qs[g * d + c] * kr[i]; }
            acc = warp_sum(acc);
            if (lane == 0) sc[g * S + j] = acc * p.scale;
        }
    }
    __syncthreads();

    u64 part = ((u64)seq * p.heads + (u64)kvh * group) * p.maxSplits + split;
    for (int g = 0; g < group; g++)
    {
        float m = NEG_INF;
        for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[g * S + j]);
        m = block_max(m, scratch);
        float s = 0.f;
        for (int j = threadIdx.x; j < n; j += blockDim.x)
        {
            float e = expf(sc[g * S + j] - m);
            sc[g * S + j] = e;
            s += e;
        }
        s = block_sum(s, scratch);
        if (threadIdx.x == 0)
        {
            p.partialMax[part + (u64)g * p.maxSplits] = m;
            p.partialSum[part + (u64)g * p.maxSplits] = s;
        }
    }
    __syncthreads();

    // weighted V: threads across (head in group, channel); consecutive threads read consecutive channels
    for (int i = threadIdx.x; i < group * d; i += blockDim.x)
    {
        int g = i / d, c = i % d;
        float acc = 0.f;
        for (int j = 0; j < n; j++)
        {
            int pos = start + j;
            const bf16_t* v = p.kv + (u64)table[pos / p.pageSize] * p.pageStride + p.layerOffset
                              + (u64)(pos % p.pageSize) * p.tokenStride + (u64)p.pageSize * p.tokenStride + (u64)kvh * d;
            acc += sc[g * S + j] * bf2f(v[c]);
        }
        p.partialAcc[(part + (u64)g * p.maxSplits) * d + c] = acc;
    }
}

// Grid (heads, seqs); block: a multiple of 32, at most 1024 (1024 from the launcher). out = sum_s e^(m_s - M) acc_s /
// sum_s e^(m_s - M) l_s, M = max_s m_s. The weights e^(m_s - M) are computed once per split into shared memory (in
// chunks of 256 splits); each channel's sum over the splits is spread over blockDim / headDim threads (one sequence
// decoding has only heads blocks, so a thread per channel walking every split one load at a time was latency-bound).
// An empty context gives a zero row.
#define REDUCE_CHUNK 256
extern "C" __global__ void paged_decode_reduce(DecodeParams p)
{
    PDL_ENTER();
    int h = blockIdx.x, seq = blockIdx.y, d = p.headDim;
    u64 base = ((u64)seq * p.heads + h) * p.maxSplits;
    // With at most one split per thread, each thread reads its split's max and sum at once, beside the context length
    // (the splits past it are masked below).
    const bool staged = p.maxSplits <= REDUCE_CHUNK && p.maxSplits <= (int)blockDim.x;
    float ms = NEG_INF, ls = 0.f;
    if (staged && (int)threadIdx.x < p.maxSplits) { ms = p.partialMax[base + threadIdx.x]; ls = p.partialSum[base + threadIdx.x]; }
    int len = p.contextLens[seq], splitSize = decode_split_size(p, len);
    int splits = (len + splitSize - 1) / splitSize;
    bf16_t* o = p.out + ((u64)seq * p.heads + h) * d;
    if (splits > p.maxSplits)
    {
        for (int c = threadIdx.x; c < d; c += blockDim.x) o[c] = f2bf(__uint_as_float(0x7fc00000u)); // NaN: grid too small
        return;
    }
    __shared__ float scratch[32];
    __shared__ float wts[REDUCE_CHUNK];
    __shared__ float part[1024];
    // M and L over the splits, spread over the block (long contexts have hundreds of splits)
    float M = NEG_INF, L = 0.f;
    if (staged)
    {
        // one split per thread: its weight goes straight to shared memory
        int s = threadIdx.x;
        if (s >= splits) { ms = NEG_INF; ls = 0.f; }
        M = block_max(ms, scratch);
        float w = s < splits ? expf(ms - M) : 0.f;
        if (s < REDUCE_CHUNK) wts[s] = w;
        L = block_sum(ls * w, scratch); // its barriers also publish wts
    }
    else
    {
        for (int s = threadIdx.x; s < splits; s += blockDim.x) M = fmaxf(M, p.partialMax[base + s]);
        M = block_max(M, scratch);
        for (int s = threadIdx.x; s < splits; s += blockDim.x) L += p.partialSum[base + s] * expf(p.partialMax[base + s] - M);
        L = block_sum(L, scratch);
    }
    // thread t sums channels c = t % d (and c + blockDim, ... when d > blockDim) over splits r, r + R, ... (r = t / d)
    int R = max(1, (int)blockDim.x / d), r = threadIdx.x / d;
    for (int c0 = 0; c0 < d; c0 += blockDim.x)
    {
        int c = c0 + (int)threadIdx.x % d;
        bool mine = r < R && c < d && (d >= (int)blockDim.x ? c0 + (int)threadIdx.x < d : true);
        float acc = 0.f;
        for (int s0 = 0; s0 < splits; s0 += REDUCE_CHUNK)
        {
            int cnt = min(REDUCE_CHUNK, splits - s0);
            if (!staged)
            {
                __syncthreads(); // earlier readers of wts are done
                for (int s = threadIdx.x; s < cnt; s += blockDim.x) wts[s] = expf(p.partialMax[base + s0 + s] - M);
                __syncthreads();
            }
            if (mine)
            {
                const float* pa = p.partialAcc + (base + s0) * d + c;
#pragma unroll 8
                for (int s = r; s < cnt; s += R) acc += pa[(u64)s * d] * wts[s];
            }
        }
        if (R == 1)
        {
            if (mine) o[c] = f2bf(splits > 0 ? acc / L : 0.f);
            continue;
        }
        __syncthreads();
        if (mine) part[threadIdx.x] = acc;
        __syncthreads();
        if (r == 0)
        {
            float t = 0.f;
            for (int k = 0; k < R; k++) t += part[k * d + c];
            o[c] = f2bf(splits > 0 ? t / L : 0.f);
        }
    }
}

// C floats at p (8-byte aligned for 2, 16-byte for 4 and 8) through L2 only (ld.global.cg: written by the previous
// kernel, read once).
template <int C>
__device__ __forceinline__ void load_partial(const float* p, float* v)
{
    if constexpr (C == 1) asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v[0]) : "l"(p));
    else if constexpr (C == 2) asm volatile("ld.global.cg.v2.f32 {%0, %1}, [%2];" : "=f"(v[0]), "=f"(v[1]) : "l"(p));
    else
    {
#pragma unroll
        for (int i = 0; i < C; i += 4)
            asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v[i]), "=f"(v[i + 1]), "=f"(v[i + 2]), "=f"(v[i + 3]) : "l"(p + i));
    }
}

// A warp merging the split-K partial states of one (row, head): partial outputs acc (splits, 32 * C) f32 (C channels per
// lane, as float / float2 / float4 vectors: 16-byte-aligned rows), maxima mx and sums sm (splits), maxima in natural-log
// units (Exp2 false) or exp2 units (Exp2 true). out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s, M = max_s m_s.
// The splits come in chunks of CH (at most 64 registers of partial outputs per lane: 32 splits for head dims 32 and 64,
// 16 for 128, 8 for 256; 32 for head dim 128 measured slower at 16 splits): lanes s < CH load split s0 + s's max
// and sum while every lane loads its C channels of the chunk's outputs, all independent loads, so a head of at most CH
// splits merges after a single round trip to L2 (a block per head chained the max and sum loads, block barriers, then
// the output loads). Chunks merge online: running max, the sum and the outputs rescaled by e^(old max - new max). Splits
// with m = -inf weigh nothing. Use: Load(first chunk, with any bound the memory allows: its loads can be issued before
// the split count is known), then Merge.
template <int C, bool Exp2>
struct SplitMerge
{
    static constexpr int CH = C >= 8 ? 8 : C == 4 ? 16 : 32;
    static constexpr int D = 32 * C;
    const float *acc, *mx, *sm;
    int lane;
    float v[CH][C];
    float ms, ls;

    __device__ __forceinline__ float ex(float x) const { return Exp2 ? exp2f(x) : expf(x); }

    // splits s0 .. s0 + CH - 1 below limit
    __device__ __forceinline__ void Load(int s0, int limit)
    {
        int s = s0 + lane;
        ms = NEG_INF;
        ls = 0.f;
        if (lane < CH && s < limit) { load_partial<1>(mx + s, &ms); load_partial<1>(sm + s, &ls); }
#pragma unroll
        for (int j = 0; j < CH; j++)
        {
            if (s0 + j < limit) load_partial<C>(acc + (u64)(s0 + j) * D + lane * C, v[j]);
            else
            {
#pragma unroll
                for (int c = 0; c < C; c++) v[j][c] = 0.f;
            }
        }
    }

    // merges splits 0 .. splits - 1 (the first chunk already loaded) into out (this lane's C channels); no split: a zero row
    __device__ __forceinline__ void Merge(int splits, bf16_t* out)
    {
        float M = NEG_INF, L = 0.f, o[C];
#pragma unroll
        for (int c = 0; c < C; c++) o[c] = 0.f;
        for (int s0 = 0; s0 < splits; s0 += CH)
        {
            if (s0 > 0) Load(s0, splits);
            int cnt = min(CH, splits - s0);
            if (lane >= cnt) { ms = NEG_INF; ls = 0.f; }
            float nm = fmaxf(M, warp_max(ms));
            if (nm == NEG_INF) continue; // no key in these splits
            float alpha = ex(M - nm), w = ex(ms - nm); // e^-inf = 0: the first chunk, masked lanes, empty splits
            L = L * alpha + warp_sum(ls * w);
#pragma unroll
            for (int c = 0; c < C; c++) o[c] *= alpha;
#pragma unroll
            for (int j = 0; j < CH; j++)
            {
                float wj = __shfl_sync(0xffffffffu, w, j);
                if (j < cnt)
                {
#pragma unroll
                    for (int c = 0; c < C; c++) o[c] += wj * v[j][c];
                }
            }
            M = nm;
        }
        out += lane * C;
#pragma unroll
        for (int c = 0; c < C; c++) out[c] = f2bf(splits > 0 ? o[c] / L : 0.f);
    }
};

// paged_decode_reduce_c{1,2,4,8}: paged_decode_reduce's merge with a warp per (sequence, head) (SplitMerge), for head
// dims 32, 64, 128, 256 (C = headDim / 32). Grid (ceil(heads / warps per block), seqs). The first chunk's loads are
// issued before the context length is known (the workspace holds maxSplits splits per head; splits past the sequence's
// are masked after), so one sequence at 8K (16 splits) merges after one round trip to L2. An empty context gives a
// zero row.
template <int C>
__device__ __forceinline__ void decode_reduce_warp(const DecodeParams& p)
{
    PDL_ENTER();
    int h = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), seq = blockIdx.y;
    if (h >= p.heads) return; // whole warps
    u64 base = ((u64)seq * p.heads + h) * p.maxSplits;
    SplitMerge<C, false> m;
    m.acc = p.partialAcc + base * (32 * C);
    m.mx = p.partialMax + base;
    m.sm = p.partialSum + base;
    m.lane = threadIdx.x & 31;
    m.Load(0, p.maxSplits);
    int len = p.contextLens[seq], splitSize = decode_split_size(p, len);
    int splits = (len + splitSize - 1) / splitSize;
    bf16_t* o = p.out + ((u64)seq * p.heads + h) * (32 * C);
    if (splits > p.maxSplits)
    {
#pragma unroll
        for (int c = 0; c < C; c++) o[m.lane * C + c] = f2bf(__uint_as_float(0x7fc00000u)); // NaN: grid too small
        return;
    }
    m.Merge(splits, o);
}

extern "C" __global__ void paged_decode_reduce_c1(DecodeParams p) { decode_reduce_warp<1>(p); }
extern "C" __global__ void paged_decode_reduce_c2(DecodeParams p) { decode_reduce_warp<2>(p); }
extern "C" __global__ void paged_decode_reduce_c4(DecodeParams p) { decode_reduce_warp<4>(p); }
extern "C" __global__ void paged_decode_reduce_c8(DecodeParams p) { decode_reduce_warp<8>(p); }

// Causal prefill of one sequence over its paged KV, including a cached prefix: query i (of queries) sits at position
// firstPosition + i and attends keys 0 ..= firstPosition + i, which must already be in the pool (kv_write first).
// Simple and exact: tiles of 32 keys staged in shared memory, one warp per query row, online softmax in f32.
// The fallback for head dims other than 128 (and for ACTORS_ATTENTION_SIMPLE=1); attention_fast.cu has the
// FlashAttention-2 tensor-core kernel (paged_prefill_fa) with the same params.
// Grid (ceil(queries / warps), heads); block 32 * warps. Dynamic shared memory:
// warps * headDim floats (q) + 32 * (headDim + 2) bf16 (K, padded against bank conflicts) + 32 * headDim bf16 (V).
struct PrefillParams
{
    const bf16_t* q;        // (queries, heads, headDim)
    const bf16_t* kv;       // pool
    const int* pageTable;   // this sequence's pages
    bf16_t* out;            // (queries, heads, headDim)
    long long pageStride;
    long long layerOffset;
    int tokenStride;
    int pageSize;
    int queries;
    int heads;
    int kvHeads;
    int headDim;
    int firstPosition;
    float scale;
};
static_assert(sizeof(PrefillParams) == 80, "layout must match AttentionKernels.PrefillParams");

extern "C" __global__ void paged_prefill(PrefillParams p)
{
    const int TK = 32;
    extern __shared__ float smem[];
    int d = p.headDim, h = blockIdx.y, kvh = h / (p.heads / p.kvHeads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    int kstride = d + 2;
    float* qs = smem;
    bf16_t* Ks = (bf16_t*)(qs + warps * d);
    bf16_t* Vs = Ks + TK * kstride;

    int qi = blockIdx.x * warps + warp;
    bool active = qi < p.queries;
    if (active)
        for (int c = lane; c < d; c += 32) qs[warp * d + c] = bf2f(p.q[((u64)qi * p.heads + h) * d + c]);
    int lastQ = min(p.queries, (int)(blockIdx.x + 1) * warps) - 1;
    int lastKey = p.firstPosition + lastQ; // this block needs keys 0 ..= lastKey
    int myPos = p.firstPosition + qi;

    float m = NEG_INF, l = 0.f;
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.f;

    for (int t0 = 0; t0 <= lastKey; t0 += TK)
    {
        __syncthreads(); // the previous tile is consumed (first pass: q is staged)
        int nk = min(TK, lastKey + 1 - t0);
        for (int i = threadIdx.x; i < nk * d; i += blockDim.x)
        {
            int j = i / d, c = i % d, pos = t0 + j;
            u64 off = (u64)p.pageTable[pos / p.pageSize] * p.pageStride + p.layerOffset
                      + (u64)(pos % p.pageSize) * p.tokenStride + (u64)kvh * d + c;
            Ks[j * kstride + c] = p.kv[off];
            Vs[j * d + c] = p.kv[off + (u64)p.pageSize * p.tokenStride];
        }
        __syncthreads();
        if (active && t0 <= myPos) // warp-uniform
        {
            int pos = t0 + lane;
            float s = NEG_INF;
            if (lane < nk && pos <= myPos)
            {
                const float* qv = qs + warp * d;
                const bf16_t* kr = Ks + lane * kstride;
                float dot = 0.f;
                for (int c = 0; c < d; c++) dot += qv[c] * bf2f(kr[c]);
                s = dot * p.scale;
            }
            float mNew = fmaxf(m, warp_max(s)); // finite: key t0 <= myPos is valid
            float corr = expf(m - mNew);        // 0 on the first tile (m = -inf)
            float pj = lane < nk && pos <= myPos ? expf(s - mNew) : 0.f;
            l = l * corr + warp_sum(pj);
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] *= corr;
            int jmax = min(nk, myPos - t0 + 1);
            for (int j = 0; j < jmax; j++)
            {
                float w = __shfl_sync(0xffffffffu, pj, j);
                const bf16_t* vr = Vs + j * d;
#pragma unroll
                for (int i = 0; i < 8; i++) { int c = lane + 32 * i; if (c < d) acc[i] += w * bf2f(vr[c]); }
            }
            m = mNew;
        }
    }
    if (active)
    {
        bf16_t* o = p.out + ((u64)qi * p.heads + h) * d;
#pragma unroll
        for (int i = 0; i < 8; i++) { int c = lane + 32 * i; if (c < d) o[c] = f2bf(acc[i] / l); }
    }
}
