// Token sampling on the device: one block per logits row, (rows, vocab) bf16 logits in, one token id per row out, so the
// logits never cross to the host. Launcher and scalar reference: Sampling.cs (SamplingKernels).
//
// Semantics are Actors.Engine.Sampling.Sampler's, given the same uniform u in [0, 1) per row (the host draws it from
// the sequence's own generator): greedy (temperature <= 0 or top-k 1) is the argmax, lowest index on ties. Otherwise
// scaled = logit / (double)temperature; top-k keeps every token whose logit is >= the k-th largest (ties with it kept);
// softmax over the kept tokens in double; top-p walks them in descending order (ties: lower index first) and keeps a
// token while the probability mass ranked above it is < top_p, then renormalises by the kept mass; the token is the
// first index (vocabulary order) whose cumulative probability exceeds u, or the last kept token when u falls in the
// rounding gap above the final sum. Sums are taken in a different order than on the host, so the two agree except when
// u (or top_p) lies within rounding (~1e-15) of a boundary.
//
// How, without sorting the vocabulary: bf16 logits have at most 65536 distinct values, and scaled values are ordered
// like the logits and equal exactly when the logits are (double division by a positive temperature is strictly
// monotonic over floats). So each token is reduced to a 16-bit order key; a per-row histogram of keys (global
// workspace, integer atomics: deterministic) gives the top-k threshold by a descending scan, the softmax sum and the
// top-p cut from per-key masses (every token of one key has the same probability), and only the cut key's tokens need
// their index rank, which a scan over index-ordered segments provides. NaN logits get key 0 and are never counted.
// Grid: min(rows, workspace rows) blocks, each looping over rows blockIdx.x, + gridDim.x, ...
// Block: SAMPLE_THREADS threads (power of two dividing SAMPLE_BINS).

#define SAMPLE_BINS 65536
#define SAMPLE_THREADS 1024

// One row's parameters (the C# twin is SamplingKernels.SampleRow).
struct SampleRow
{
    double uniform;
    float temperature;
    int topK;
    float topP;
    int pad;
};
static_assert(sizeof(SampleRow) == 24, "layout must match SamplingKernels.SampleRow");

struct SampleParams
{
    const bf16_t* logits;    // (rows, vocab)
    const SampleRow* rows;   // (rows)
    int* hist;               // (gridDim.x, SAMPLE_BINS) workspace
    int* out;                // (rows)
    int count;               // rows
    int vocab;
};
static_assert(sizeof(SampleParams) == 40, "layout must match SamplingKernels.SampleParams");

// Order key of a bf16 logit: larger value, larger key; -0 and +0 share a key (they compare equal); NaN is 0.
__device__ __forceinline__ int order_key(bf16_t b)
{
    if ((b & 0x7fffu) > 0x7f80u) return 0;
    if (b == 0x8000u) b = 0;
    return (b & 0x8000u) ? (int)(~(unsigned int)b & 0xffffu) : (int)(b | 0x8000u);
}

__device__ __forceinline__ float key_value(int key)
{
    return bf2f((bf16_t)((key & 0x8000) ? (key & 0x7fff) : (~key & 0xffff)));
}

// Exclusive prefix over the block's threads in threadIdx order (a fixed order, so results repeat bit for bit), and the
// block total. scratch: 65 elements. Every thread of the block must call it.
template <typename T>
__device__ T block_exclusive_scan(T v, T* scratch, T* total)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    T inc = v;
    for (int o = 1; o < 32; o <<= 1)
    {
        T n = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += n;
    }
    T exc = __shfl_up_sync(0xffffffffu, inc, 1);
    if (lane == 0) exc = (T)0;
    __syncthreads(); // earlier readers of scratch are done
    if (lane == 31) scratch[warp] = inc;
    __syncthreads();
    if (warp == 0)
    {
        T w = lane < warps ? scratch[lane] : (T)0;
        for (int o = 1; o < 32; o <<= 1)
        {
            T n = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += n;
        }
        T we = __shfl_up_sync(0xffffffffu, w, 1);
        if (lane == 0) we = (T)0;
        scratch[32 + lane] = we;
        if (lane == 31) scratch[64] = w;
    }
    __syncthreads();
    *total = scratch[64];
    return scratch[32 + warp] + exc;
}

// Block-wide (largest key, lowest index on ties); the result is returned to every thread. sk, si: 32 elements.
__device__ void block_argmax(int* key, int* index, int* sk, int* si)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int k = *key, i = *index;
    for (int o = 16; o > 0; o >>= 1)
    {
        int ok = __shfl_xor_sync(0xffffffffu, k, o), oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ok > k || (ok == k && oi < i)) { k = ok; i = oi; }
    }
    __syncthreads();
    if (lane == 0) { sk[warp] = k; si[warp] = i; }
    __syncthreads();
    k = lane < warps ? sk[lane] : -1;
    i = lane < warps ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1)
    {
        int ok = __shfl_xor_sync(0xffffffffu, k, o), oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ok > k || (ok == k && oi < i)) { k = ok; i = oi; }
    }
    *key = k;
    *index = i;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_rows(SampleParams p)
{
    PDL_ENTER();
    __shared__ double sd[65];
    __shared__ int si[65];
    __shared__ int sk[32];
    __shared__ int s_kth, s_max, s_cut, s_cutKeep, s_pick, s_last;
    __shared__ double s_cutMass;
    const int tid = threadIdx.x, nt = blockDim.x, n = p.vocab;
    int* hist = p.hist + (u64)blockIdx.x * SAMPLE_BINS;
    const int per = SAMPLE_BINS / nt;       // keys per thread, descending: thread 0 holds the largest
    const int hi = SAMPLE_BINS - 1 - tid * per;
    const int seg = (n + nt - 1) / nt;      // tokens per thread, in vocabulary order
    const int i0 = min(n, tid * seg), i1 = min(n, i0 + seg);

    for (int r = blockIdx.x; r < p.count; r += gridDim.x)
    {
        const bf16_t* row = p.logits + (u64)r * n;
        const SampleRow q = p.rows[r];
        __syncthreads(); // the previous row is finished with hist and the shared scalars
        if (q.temperature <= 0.f || q.topK == 1)
        {
            // Greedy: each thread walks its indices upwards, so a strict > keeps its lowest index among equal keys.
            int bk = -1, bi = 0x7fffffff;
            for (int i = tid; i < n; i += nt)
            {
                int k = order_key(row[i]);
                if (k > bk) { bk = k; bi = i; }
            }
            block_argmax(&bk, &bi, sk, si);
            if (tid == 0) p.out[r] = bi == 0x7fffffff ? 0 : bi;
            continue;
        }

        // 1. Histogram of order keys.
        for (int b = tid; b < SAMPLE_BINS; b += nt) hist[b] = 0;
        if (tid == 0) { s_kth = 1; s_max = -1; s_cut = 0x7fffffff; s_cutKeep = 0; s_pick = 0x7fffffff; s_last = -1; s_cutMass = 0.0; }
        __syncthreads();
        for (int i = tid; i < n; i += nt)
        {
            int k = order_key(row[i]);
            if (k != 0) atomicAdd(&hist[k], 1);
        }
        __syncthreads();

        // 2. Largest key, and the top-k threshold: the k-th largest key counting multiplicity.
        int cnt = 0, top = -1;
        for (int j = 0; j < per; j++)
        {
            int c = hist[hi - j];
            if (c > 0 && top < 0) top = hi - j;
            cnt += c;
        }
        if (top >= 0) atomicMax(&s_max, top);
        int counted;
        int above = block_exclusive_scan<int>(cnt, si, &counted);
        const bool topK = q.topK > 0 && q.topK < n;
        if (topK && above < q.topK && above + cnt >= q.topK)
        {
            int acc = above;
            for (int j = 0; j < per; j++)
            {
                acc += hist[hi - j];
                if (acc >= q.topK) { s_kth = hi - j; break; }
            }
        }
        __syncthreads();
        const int kth = s_kth, maxKey = s_max;
        if (maxKey < 0)
        {
            if (tid == 0) p.out[r] = 0; // every logit NaN
            continue;
        }
        const double t = (double)q.temperature;
        const double m = (double)key_value(maxKey) / t;

        // 3. Softmax denominator over the kept keys: count × exp(scaled − max) per key.
        double e = 0.0;
        for (int j = 0; j < per; j++)
        {
            int k = hi - j, c = hist[k];
            if (c > 0 && k >= kth) e += (double)c * exp((double)key_value(k) / t - m);
        }
        double sum;
        block_exclusive_scan<double>(e, sd, &sum);

        // 4. Top-p: the cut key is the lowest key whose mass ranked above it is < top_p; within it, tokens are kept in
        //    index order while the running mass stays < top_p. The kept mass renormalises.
        const bool topP = q.topP < 1.f;
        const double pp = (double)q.topP;
        double kept = 1.0;
        if (topP)
        {
            double mass = 0.0;
            for (int j = 0; j < per; j++)
            {
                int k = hi - j, c = hist[k];
                if (c > 0 && k >= kth) mass += (double)c * (exp((double)key_value(k) / t - m) / sum);
            }
            double total;
            double a = block_exclusive_scan<double>(mass, sd, &total);
            int cand = -1;
            double candMass = 0.0;
            for (int j = 0; j < per; j++)
            {
                int k = hi - j, c = hist[k];
                if (c == 0 || k < kth) continue;
                if (a < pp) { cand = k; candMass = a; }
                a += (double)c * (exp((double)key_value(k) / t - m) / sum);
            }
            if (cand >= 0) atomicMin(&s_cut, cand);
            __syncthreads();
            if (cand >= 0 && cand == s_cut)
            {
                int c = hist[cand];
                double pr = exp((double)key_value(cand) / t - m) / sum;
                double before = candMass;
                int keep = 0;
                if (pr > 0.0)
                    while (keep < c && before < pp) { before += pr; keep++; }
                else keep = c; // zero-probability tokens never move the mass: all of them stay (and are never drawn)
                s_cutKeep = keep;
                s_cutMass = before;
            }
            __syncthreads();
            kept = s_cutMass;
        }
        const int cut = topP ? s_cut : 0, cutKeep = s_cutKeep;

        // 5. The draw, in vocabulary order: per-thread segment sums, a scan, then the one segment where u falls.
        int rank = 0;
        if (topP)
        {
            int mine = 0;
            for (int i = i0; i < i1; i++) mine += order_key(row[i]) == cut;
            int all;
            rank = block_exclusive_scan<int>(mine, si, &all);
        }
        double segSum = 0.0;
        int lastKept = -1;
        {
            int rk = rank;
            for (int i = i0; i < i1; i++)
            {
                int k = order_key(row[i]);
                if (k == 0 || k < kth || k < cut) continue;
                if (k == cut && rk++ >= cutKeep) continue;
                double pr = exp((double)key_value(k) / t - m) / sum;
                if (topP) pr /= kept;
                if (pr > 0.0) { segSum += pr; lastKept = i; }
            }
        }
        double grand;
        double before = block_exclusive_scan<double>(segSum, sd, &grand);
        if (lastKept >= 0)
        {
            atomicMax(&s_last, lastKept);
            if (q.uniform < before + segSum) atomicMin(&s_pick, tid);
        }
        __syncthreads();
        if (tid == s_pick)
        {
            double cum = before;
            int pick = -1, rk = rank;
            for (int i = i0; i < i1; i++)
            {
                int k = order_key(row[i]);
                if (k == 0 || k < kth || k < cut) continue;
                if (k == cut && rk++ >= cutKeep) continue;
                double pr = exp((double)key_value(k) / t - m) / sum;
                if (topP) pr /= kept;
                if (pr <= 0.0) continue;
                cum += pr;
                if (q.uniform < cum) { pick = i; break; }
            }
            p.out[r] = pick >= 0 ? pick : lastKept; // the walk's own rounding missed u: this segment's last token
        }
        else if (tid == 0 && s_pick == 0x7fffffff)
            p.out[r] = s_last >= 0 ? s_last : 0; // u in the rounding gap above the final sum: the last kept token
    }
}
