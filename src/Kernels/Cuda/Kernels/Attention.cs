using System.Runtime.InteropServices;
using Actors.Kernels.Cpu;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of attention.cu over the paged KV pool (layout <see cref="KvLayout"/>, in bf16 elements): KV write,
/// split-K paged decode (batched over sequences of different lengths) and causal prefill with a cached prefix.
/// Page ids and context lengths live on the device and are not checked here: the Engine's page allocator owns them.
/// </summary>
public sealed class AttentionKernels
{
    /// <summary>Largest head dimension the kernels hold in registers (8 channels per lane).</summary>
    public const int MaxHeadDim = 256;
    private const int SharedBudget = 48 * 1024;
    private const int PrefillWarps = 4;
    private readonly CudaFunction _kvWrite, _decodeSplit, _decodeReduce, _prefill;

    public AttentionKernels(KernelCompiler compiler)
    {
        var module = compiler.Load(KernelSource.Load("attention.cu"), "attention.cu");
        _kvWrite = module.Function("kv_write");
        _decodeSplit = module.Function("paged_decode_split");
        _decodeReduce = module.Function("paged_decode_reduce");
        _prefill = module.Function("paged_prefill");
    }

    /// <summary>
    /// Writes k, v (tokens, kvHeads, headDim) of one sequence into its pages at positions firstPosition …; token t of k
    /// starts at k[t * kRowStride] (v likewise), so k and v can be read straight out of a fused qkv projection.
    /// </summary>
    public void KvWrite(CudaStream stream, DeviceSpan<ushort> k, int kRowStride, DeviceSpan<ushort> v, int vRowStride, int tokens,
        DeviceSpan<ushort> kvPool, KvLayout layout, int layer, DeviceSpan<int> pageTable, int firstPosition)
    {
        CheckLayout(layout, layer, kvPool);
        ElementwiseKernels.NonNegative(tokens, nameof(tokens));
        ElementwiseKernels.NonNegative(firstPosition, nameof(firstPosition));
        if (tokens == 0) return;
        int perToken = layout.TokenStride;
        if (kRowStride < perToken) throw new ArgumentOutOfRangeException(nameof(kRowStride), kRowStride, $"must be at least kvHeads * headDim = {perToken}");
        if (vRowStride < perToken) throw new ArgumentOutOfRangeException(nameof(vRowStride), vRowStride, $"must be at least kvHeads * headDim = {perToken}");
        k.Require((long)(tokens - 1) * kRowStride + perToken, nameof(k), "(tokens - 1) * kRowStride + kvHeads * headDim");
        v.Require((long)(tokens - 1) * vRowStride + perToken, nameof(v), "(tokens - 1) * vRowStride + kvHeads * headDim");
        pageTable.Require((firstPosition + tokens - 1) / layout.PageSize + 1, nameof(pageTable), "pages covering every position");
        var p = new KvWriteParams
        {
            K = k.Pointer, V = v.Pointer, Kv = kvPool.Pointer, PageTable = pageTable.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Tokens = tokens, KvHeads = layout.KvHeads, HeadDim = layout.HeadDim,
            FirstPosition = firstPosition, KRowStride = kRowStride, VRowStride = vRowStride,
        };
        long total = (long)tokens * perToken;
        _kvWrite.Launch(stream, (checked((uint)((total + 255) / 256)), 1, 1), 256, 0, p);
    }

    /// <summary>Keys per split for a head group: as many as fit 48 KiB of shared memory, at most 256, a multiple of 32.</summary>
    public static int DecodeSplitSize(int group, int headDim)
    {
        int floats = SharedBudget / sizeof(float) - 32;
        int s = Math.Min(256, floats / group - headDim) / 32 * 32;
        if (s < 32)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"a group of {group} heads of dim {headDim} does not fit the decode kernel's shared memory");
        return s;
    }

    /// <summary>f32 elements of the decode workspace: (seqs, heads, splits) × (headDim + 2).</summary>
    public static long DecodeWorkspaceLength(int seqs, int heads, int kvHeads, int headDim, int maxContext)
    {
        int splits = Math.Max(1, (maxContext + DecodeSplitSize(heads / kvHeads, headDim) - 1) / DecodeSplitSize(heads / kvHeads, headDim));
        return (long)seqs * heads * splits * (headDim + 2);
    }

    /// <summary>
    /// Decode attention: q (seqs, heads, headDim), one query per sequence attending its keys 0 .. contextLens[s] − 1;
    /// pageTables (seqs, pageTableStride); output (seqs, heads, headDim). maxContext bounds every contextLens[s]
    /// (the grid is sized from it, so a CUDA graph captured with it serves any shorter context); a longer context gives NaN rows.
    /// workspace: at least <see cref="DecodeWorkspaceLength"/> floats.
    /// </summary>
    public void Decode(CudaStream stream, DeviceSpan<ushort> q, int seqs, int heads, DeviceSpan<ushort> kvPool, KvLayout layout, int layer,
        DeviceSpan<int> pageTables, int pageTableStride, DeviceSpan<int> contextLens, int maxContext, float scale,
        DeviceSpan<float> workspace, DeviceSpan<ushort> output)
    {
        CheckLayout(layout, layer, kvPool);
        CheckHeads(heads, layout);
        ElementwiseKernels.NonNegative(seqs, nameof(seqs));
        ElementwiseKernels.Positive(maxContext, nameof(maxContext));
        if (seqs == 0) return;
        if ((long)pageTableStride * layout.PageSize < maxContext)
            throw new ArgumentOutOfRangeException(nameof(pageTableStride), pageTableStride, $"page tables of {pageTableStride} pages cannot hold maxContext {maxContext}");
        int d = layout.HeadDim, group = heads / layout.KvHeads;
        q.Require((long)seqs * heads * d, nameof(q), "seqs * heads * headDim");
        output.Require((long)seqs * heads * d, nameof(output), "seqs * heads * headDim");
        pageTables.Require((long)seqs * pageTableStride, nameof(pageTables), "seqs * pageTableStride");
        contextLens.Require(seqs, nameof(contextLens), "seqs");
        int splitSize = DecodeSplitSize(group, d);
        int maxSplits = (maxContext + splitSize - 1) / splitSize;
        long partial = (long)seqs * heads * maxSplits;
        workspace.Require(partial * (d + 2), nameof(workspace), "seqs * heads * splits * (headDim + 2)");
        var p = new DecodeParams
        {
            Q = q.Pointer, Kv = kvPool.Pointer, PageTables = pageTables.Pointer, ContextLens = contextLens.Pointer,
            PartialAcc = workspace.Pointer,
            PartialMax = workspace.Slice(partial * d).Pointer,
            PartialSum = workspace.Slice(partial * (d + 1)).Pointer,
            Out = output.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Heads = heads, KvHeads = layout.KvHeads, HeadDim = d, PageTableStride = pageTableStride,
            SplitSize = splitSize, MaxSplits = maxSplits, Scale = scale,
        };
        uint shared = (uint)((group * (d + splitSize) + 32) * sizeof(float));
        _decodeSplit.Launch(stream, ((uint)maxSplits, (uint)layout.KvHeads, (uint)seqs), 128, shared, p);
        _decodeReduce.Launch(stream, ((uint)heads, (uint)seqs, 1), 128, 0, p);
    }

    /// <summary>
    /// Causal prefill of one sequence: q (queries, heads, headDim); query i at position firstPosition + i attends keys
    /// 0 ..= firstPosition + i, already written to the pool (see <see cref="KvWrite"/>). output (queries, heads, headDim).
    /// Matches <see cref="PagedAttention.Reference"/>.
    /// </summary>
    public void Prefill(CudaStream stream, DeviceSpan<ushort> q, int queries, int heads, int firstPosition, DeviceSpan<ushort> kvPool,
        KvLayout layout, int layer, DeviceSpan<int> pageTable, float scale, DeviceSpan<ushort> output)
    {
        CheckLayout(layout, layer, kvPool);
        CheckHeads(heads, layout);
        ElementwiseKernels.NonNegative(queries, nameof(queries));
        ElementwiseKernels.NonNegative(firstPosition, nameof(firstPosition));
        if (queries == 0) return;
        int d = layout.HeadDim;
        q.Require((long)queries * heads * d, nameof(q), "queries * heads * headDim");
        output.Require((long)queries * heads * d, nameof(output), "queries * heads * headDim");
        pageTable.Require((firstPosition + queries - 1) / layout.PageSize + 1, nameof(pageTable), "pages covering every position");
        var p = new PrefillParams
        {
            Q = q.Pointer, Kv = kvPool.Pointer, PageTable = pageTable.Pointer, Out = output.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Queries = queries, Heads = heads, KvHeads = layout.KvHeads, HeadDim = d,
            FirstPosition = firstPosition, Scale = scale,
        };
        uint shared = (uint)(PrefillWarps * d * sizeof(float) + 32 * (d + 2) * 2 + 32 * d * 2);
        _prefill.Launch(stream, ((uint)((queries + PrefillWarps - 1) / PrefillWarps), (uint)heads, 1), 32 * PrefillWarps, shared, p);
    }

    private static void CheckLayout(KvLayout layout, int layer, DeviceSpan<ushort> kvPool)
    {
        if (layout.PageSize <= 0 || layout.Layers <= 0 || layout.KvHeads <= 0 || layout.HeadDim <= 0)
            throw new ArgumentException($"layout {layout} needs positive PageSize, Layers, KvHeads and HeadDim", nameof(layout));
        if (layout.HeadDim > MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(layout), layout.HeadDim, $"head dim above {MaxHeadDim} is not supported by the CUDA attention kernels");
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {layout.Layers})");
        kvPool.Require(layout.PageStride, nameof(kvPool), "one page (PageStride)");
    }

    private static void CheckHeads(int heads, KvLayout layout)
    {
        ElementwiseKernels.Positive(heads, nameof(heads));
        if (heads % layout.KvHeads != 0)
            throw new ArgumentException($"heads {heads} is not a multiple of KV heads {layout.KvHeads}", nameof(heads));
    }

    // Twins of the params structs in attention.cu.
    [StructLayout(LayoutKind.Sequential)]
    private struct KvWriteParams
    {
        public ulong K, V, Kv, PageTable;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Tokens, KvHeads, HeadDim, FirstPosition, KRowStride, VRowStride;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DecodeParams
    {
        public ulong Q, Kv, PageTables, ContextLens, PartialAcc, PartialMax, PartialSum, Out;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Heads, KvHeads, HeadDim, PageTableStride, SplitSize, MaxSplits;
        public float Scale;
        public int Pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PrefillParams
    {
        public ulong Q, Kv, PageTable, Out;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Queries, Heads, KvHeads, HeadDim, FirstPosition;
        public float Scale;
    }
}
