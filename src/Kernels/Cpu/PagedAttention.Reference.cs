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
        if (heads % layout.KvHeads != 0) throw new ArgumentException($"heads {heads} is not a multiple of KV heads {layout.KvHeads}", nameof(heads));
        Shapes.Check(q.Length >= (long)queries * heads * d, nameof(q), "queries * heads * headDim");
        Shapes.Check(output.Length >= (long)queries * heads * d, nameof(output), "queries * heads * headDim");
        int lastPosition = firstPosition + queries - 1;
        Shapes.Check(pageTable.Length * (long)layout.PageSize > lastPosition, nameof(pageTable), "pages covering every position");
        int group = heads / layout.KvHeads;
        var scores = new double[lastPosition + 1];
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
            var o = output.Slice((i * heads + h) * d, d);
            for (int c = 0; c < d; c++)
            {
                double acc = 0;
                for (int p = 0; p < len; p++)
                    acc += scores[p] * kvPool[(int)(layout.ValueOffset(pageTable[p / layout.PageSize], layer, p % layout.PageSize) + kvh * d + c)];
                o[c] = (float)(acc / sum);
            }
        }
    }
}
