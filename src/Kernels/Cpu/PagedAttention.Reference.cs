namespace Actors.Kernels.Cpu;

public static partial class PagedAttention
{
    /// <summary>
    /// Scalar specification of causal grouped-query attention of one sequence over its paged KV.
    /// q: (queries, heads, headDim); query i sits at absolute position firstPosition + i and attends key positions
    /// 0 ..= firstPosition + i. Key position p lives in page pageTable[p / PageSize], slot p % PageSize, and must
    /// already be written. Query head h reads KV head h / (heads / KvHeads). output: (queries, heads, headDim).
    /// </summary>
    public static void Reference(ReadOnlySpan<float> q, int queries, int heads, int firstPosition,
        ReadOnlySpan<float> kvPool, KvLayout layout, int layer, ReadOnlySpan<int> pageTable, float scale, Span<float> output)
    {
        int d = layout.HeadDim;
        int lastPosition = Validate(q, queries, heads, firstPosition, kvPool, layout, layer, pageTable, output);
        int group = heads / layout.KvHeads;
        var scores = new double[lastPosition + 1];
        var acc = new double[d];
        for (int i = 0; i < queries; i++)
        for (int h = 0; h < heads; h++)
        {
            int kvh = h / group;
            var qv = q.Slice((i * heads + h) * d, d);
            int len = firstPosition + i + 1;
            double max = double.NegativeInfinity;
            for (int p = 0; p < len; p++)
            {
                var kv = kvPool.Slice((int)(layout.KeyOffset(pageTable[p / layout.PageSize], layer, p % layout.PageSize) + kvh * d), d);
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)qv[c] * kv[c];
                scores[p] = dot * scale;
                if (scores[p] > max) max = scores[p];
            }
            double sum = 0;
            for (int p = 0; p < len; p++) { scores[p] = Math.Exp(scores[p] - max); sum += scores[p]; }
            // Each channel still sums its terms in position order (the same result as a loop over channels outside);
            // positions outside so each V row's page lookup happens once, which the GPU tests' long cases need.
            Array.Clear(acc, 0, d);
            for (int p = 0; p < len; p++)
            {
                var v = kvPool.Slice((int)(layout.ValueOffset(pageTable[p / layout.PageSize], layer, p % layout.PageSize) + kvh * d), d);
                double w = scores[p];
                for (int c = 0; c < d; c++) acc[c] += w * v[c];
            }
            var o = output.Slice((i * heads + h) * d, d);
            for (int c = 0; c < d; c++) o[c] = (float)(acc[c] / sum);
        }
    }

    /// <summary>Checks every size, the layer and each page id the positions 0 ..= last need; returns the last position.</summary>
    private static int Validate(ReadOnlySpan<float> q, int queries, int heads, int firstPosition, ReadOnlySpan<float> kvPool,
        KvLayout layout, int layer, ReadOnlySpan<int> pageTable, Span<float> output)
    {
        if (layout.PageSize <= 0 || layout.Layers <= 0 || layout.KvHeads <= 0 || layout.HeadDim <= 0)
            throw new ArgumentException($"layout {layout} needs positive PageSize, Layers, KvHeads and HeadDim", nameof(layout));
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {layout.Layers})");
        Shapes.NonNegative(queries, nameof(queries));
        Shapes.NonNegative(heads, nameof(heads));
        Shapes.NonNegative(firstPosition, nameof(firstPosition));
        if (heads % layout.KvHeads != 0) throw new ArgumentException($"heads {heads} is not a multiple of KV heads {layout.KvHeads}", nameof(heads));
        int d = layout.HeadDim;
        Shapes.Check(q.Length >= (long)queries * heads * d, nameof(q), "queries * heads * headDim");
        Shapes.Check(output.Length >= (long)queries * heads * d, nameof(output), "queries * heads * headDim");
        int lastPosition = firstPosition + queries - 1;
        if (queries == 0) return lastPosition;
        Shapes.Check(pageTable.Length * (long)layout.PageSize > lastPosition, nameof(pageTable), "pages covering every position");
        long pages = kvPool.Length / (long)layout.PageStride;
        for (int i = 0; i <= lastPosition / layout.PageSize; i++)
            if ((ulong)pageTable[i] >= (ulong)pages)
                throw new ArgumentOutOfRangeException(nameof(pageTable), pageTable[i],
                    $"pageTable[{i}] = {pageTable[i]} is outside the KV pool of {pages} pages");
        return lastPosition;
    }
}
