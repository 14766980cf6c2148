namespace Actors.Kernels.Cpu;

// Paged attention fast path. One work item is one (query, head) pair: its scores over key positions
// 0 ..= firstPosition + i go into a per-thread f32 scratch row, then softmax (max, exp, sum) and the weighted sum of
// V rows. Keys and values are walked page by page, slot by slot, so each page's (slot, kvHead, headDim) block is read
// in address order. Items of one query are adjacent, so the heads of one GQA group run back to back on a thread
// and find their KV head's pages still in cache. Parallel.For over items once the work outweighs its scheduling.
public static partial class PagedAttention
{
    /// <summary>Below this many multiply-adds (q·k plus p·v) the call stays on the calling thread.</summary>
    private const long ParallelThreshold = 1 << 15;

    [ThreadStatic] private static float[]? t_scores;

    /// <summary>Fast path (SIMD, multithreaded where it pays); same contract as <see cref="Reference"/>.</summary>
    public static unsafe void Compute(ReadOnlySpan<float> q, int queries, int heads, int firstPosition, ReadOnlySpan<float> kvPool,
        KvLayout layout, int layer, ReadOnlySpan<int> pageTable, float scale, Span<float> output)
    {
        Validate(q, queries, heads, firstPosition, kvPool, layout, layer, pageTable, output);
        if (queries == 0 || heads == 0) return;
        fixed (float* pq = q, pkv = kvPool, po = output)
        fixed (int* ppt = pageTable)
        {
            var job = new Job(pq, heads, firstPosition, pkv, layout, layer, ppt, scale, po);
            int items = queries * heads;
            long work = 2L * items * (firstPosition + (queries + 1) / 2) * layout.HeadDim;
            if (items > 1 && work >= ParallelThreshold && Environment.ProcessorCount > 1)
                Parallel.For(0, items, job.Run);
            else
                for (int item = 0; item < items; item++) job.Run(item);
        }
    }

    private readonly unsafe struct Job(float* q, int heads, int firstPosition, float* kv, KvLayout layout, int layer, int* pageTable,
        float scale, float* output)
    {
        public void Run(int item)
        {
            int d = layout.HeadDim;
            if (V512.IsHardwareAccelerated && d >= V512.Count) Run<V512>(item);
            else if (V256.IsHardwareAccelerated && d >= V256.Count) Run<V256>(item);
            else Run<V128>(item); // headDim < 4 (or no SIMD): the scalar tails do the work
        }

        private void Run<V>(int item) where V : struct, ISimdVector<V>
        {
            int d = layout.HeadDim, pageSize = layout.PageSize, tokenStride = layout.TokenStride;
            int i = item / heads, h = item % heads;
            int kvHeadOffset = h / (heads / layout.KvHeads) * d;
            int len = firstPosition + i + 1;
            float* qv = q + (long)item * d, o = output + (long)item * d; // (queries, heads, headDim)
            var buffer = t_scores;
            if (buffer == null || buffer.Length < len) t_scores = buffer = new float[Math.Max(len, 2 * (buffer?.Length ?? 0))];
            fixed (float* scores = buffer)
            {
                // Pass 1: scaled scores, page by page.
                float max = float.NegativeInfinity;
                for (int page = 0, p0 = 0; p0 < len; page++, p0 += pageSize)
                {
                    float* keys = kv + layout.KeyOffset(pageTable[page], layer, 0) + kvHeadOffset;
                    int count = Math.Min(pageSize, len - p0);
                    for (int slot = 0; slot < count; slot++)
                    {
                        float s = Dot<V>(qv, keys + (long)slot * tokenStride, d) * scale;
                        scores[p0 + slot] = s;
                        max = MathF.Max(max, s);
                    }
                }
                // Pass 2: e^(s − max) and their sum.
                float sum = ExpAndSum<V>(scores, len, max);
                // Pass 3: o = Σ e_p · v_p / sum.
                new Span<float>(o, d).Clear();
                for (int page = 0, p0 = 0; p0 < len; page++, p0 += pageSize)
                {
                    float* values = kv + layout.ValueOffset(pageTable[page], layer, 0) + kvHeadOffset;
                    int count = Math.Min(pageSize, len - p0);
                    for (int slot = 0; slot < count; slot++)
                        MultiplyAddInto<V>(o, values + (long)slot * tokenStride, scores[p0 + slot], d);
                }
                Scale<V>(o, 1f / sum, d);
            }
        }
    }

    private static unsafe float Dot<V>(float* a, float* b, int n) where V : struct, ISimdVector<V>
    {
        V s0 = V.Zero, s1 = V.Zero;
        int i = 0;
        for (; i <= n - 2 * V.Count; i += 2 * V.Count)
        {
            s0 = V.MultiplyAdd(V.Load(a + i), V.Load(b + i), s0);
            s1 = V.MultiplyAdd(V.Load(a + i + V.Count), V.Load(b + i + V.Count), s1);
        }
        if (i <= n - V.Count) { s0 = V.MultiplyAdd(V.Load(a + i), V.Load(b + i), s0); i += V.Count; }
        float sum = n >= V.Count ? V.Sum(s0 + s1) : 0;
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    private static unsafe float ExpAndSum<V>(float* s, int n, float max) where V : struct, ISimdVector<V>
    {
        V vmax = V.Broadcast(max), acc = V.Zero;
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            V e = V.Exp(V.Load(s + i) - vmax);
            V.Store(e, s + i);
            acc += e;
        }
        float sum = n >= V.Count ? V.Sum(acc) : 0;
        for (; i < n; i++) { s[i] = MathF.Exp(s[i] - max); sum += s[i]; }
        return sum;
    }

    /// <summary>o += weight · v over n floats.</summary>
    private static unsafe void MultiplyAddInto<V>(float* o, float* v, float weight, int n) where V : struct, ISimdVector<V>
    {
        V w = V.Broadcast(weight);
        int i = 0;
        for (; i <= n - V.Count; i += V.Count) V.Store(V.MultiplyAdd(V.Load(v + i), w, V.Load(o + i)), o + i);
        for (; i < n; i++) o[i] += weight * v[i];
    }

    private static unsafe void Scale<V>(float* o, float factor, int n) where V : struct, ISimdVector<V>
    {
        V f = V.Broadcast(factor);
        int i = 0;
        for (; i <= n - V.Count; i += V.Count) V.Store(V.Load(o + i) * f, o + i);
        for (; i < n; i++) o[i] *= factor;
    }
}
