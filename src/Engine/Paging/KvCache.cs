using Actors.Kernels.Cpu;

namespace Actors.Engine.Paging;

/// <summary>
/// The f32 KV pool: <see cref="Pages"/> pages laid out as <see cref="KvLayout"/> says,
/// page → layer → { K: (slot, kvHead, headDim), V: (slot, kvHead, headDim) }, one contiguous block per page.
/// </summary>
public sealed class KvCache
{
    public KvCache(KvLayout layout, int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(layout.PageSize, 1, nameof(layout));
        long floats = (long)pages * layout.PageStride;
        if (floats > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(pages), $"{pages} pages of {layout.PageStride} floats exceed one array ({Array.MaxLength} floats); use fewer pages.");
        Layout = layout;
        Pages = pages;
        Pool = new float[floats];
    }

    public KvLayout Layout { get; }
    public int Pages { get; }

    /// <summary>(pages, layers, {K,V}, pageSize, kvHeads, headDim) row-major.</summary>
    public float[] Pool { get; }

    /// <summary>Pages that fit in <paramref name="bytes"/> of f32 KV.</summary>
    public static int PagesFor(long bytes, KvLayout layout) =>
        (int)Math.Min(int.MaxValue, bytes / (layout.PageStride * (long)sizeof(float)));

    /// <summary>Writes one token's K and V (each (kvHeads, headDim)) for one layer at page/slot.</summary>
    public void Write(int layer, int page, int slot, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        if ((uint)page >= (uint)Pages) throw new ArgumentOutOfRangeException(nameof(page), page, $"pool has {Pages} pages");
        if ((uint)layer >= (uint)Layout.Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"model has {Layout.Layers} layers");
        if ((uint)slot >= (uint)Layout.PageSize) throw new ArgumentOutOfRangeException(nameof(slot), slot, $"page holds {Layout.PageSize} slots");
        int n = Layout.TokenStride;
        if (key.Length != n) throw new ArgumentException($"key has {key.Length} floats; a token's K is kvHeads*headDim = {n}", nameof(key));
        if (value.Length != n) throw new ArgumentException($"value has {value.Length} floats; a token's V is kvHeads*headDim = {n}", nameof(value));
        key.CopyTo(Pool.AsSpan((int)Layout.KeyOffset(page, layer, slot), n));
        value.CopyTo(Pool.AsSpan((int)Layout.ValueOffset(page, layer, slot), n));
    }

    public ReadOnlySpan<float> Key(int layer, int page, int slot) => Pool.AsSpan((int)Layout.KeyOffset(page, layer, slot), Layout.TokenStride);
    public ReadOnlySpan<float> Value(int layer, int page, int slot) => Pool.AsSpan((int)Layout.ValueOffset(page, layer, slot), Layout.TokenStride);
}
