namespace Actors.Kernels.Cpu;

/// <summary>
/// Layout of the paged KV pool. A page is one contiguous block holding <see cref="PageSize"/> tokens of K and V
/// for every layer, so moving a page between tiers is one copy:
/// page → layer → { K: (slot, kvHead, headDim), V: (slot, kvHead, headDim) }.
/// </summary>
public readonly record struct KvLayout(int PageSize, int Layers, int KvHeads, int HeadDim)
{
    /// <summary>Floats of one token's K (or V) for one layer: (kvHeads, headDim).</summary>
    public int TokenStride => KvHeads * HeadDim;

    /// <summary>Floats of one layer inside a page: K block then V block.</summary>
    public int LayerStride => 2 * PageSize * TokenStride;

    /// <summary>Floats of one whole page.</summary>
    public int PageStride => Layers * LayerStride;

    public long KeyOffset(int page, int layer, int slot) =>
        (long)page * PageStride + (long)layer * LayerStride + (long)slot * TokenStride;

    public long ValueOffset(int page, int layer, int slot) =>
        KeyOffset(page, layer, slot) + (long)PageSize * TokenStride;
}
