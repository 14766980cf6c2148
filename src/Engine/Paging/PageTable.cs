using System.Runtime.InteropServices;

namespace Actors.Engine.Paging;

/// <summary>
/// The KV pages one sequence holds, in position order: token position p lives in page Pages[p / PageSize], slot
/// p % PageSize. Owned by one sequence; changed only through <see cref="BlockManager"/>.
/// </summary>
public sealed class PageTable
{
    internal readonly List<int> PageList = [];

    /// <summary>Chain hashes of the leading full pages whose KV is known to be computed (prefix of PageList).</summary>
    internal readonly List<UInt128> ChainHashes = [];

    /// <param name="variant">
    /// Extra page identity for this sequence on top of the manager's model id and RoPE profile: KV computed under
    /// different RoPE frequencies (dynamic NTK scaling picks them by sequence length) must never be shared.
    /// </param>
    public PageTable(string variant = "") => Variant = variant ?? throw new ArgumentNullException(nameof(variant));

    public string Variant { get; }

    public IReadOnlyList<int> Pages => PageList;

    public int Count => PageList.Count;

    /// <summary>Leading tokens whose KV was found in cached pages at allocation (prefix reuse); always whole pages.</summary>
    public int CachedTokens { get; internal set; }

    /// <summary>Of <see cref="CachedTokens"/>, the tokens whose pages were swapped in from the lower (host) tier.</summary>
    public int HostHitTokens { get; internal set; }

    /// <summary>Of <see cref="CachedTokens"/>, the tokens whose pages were found on the device.</summary>
    public int DeviceHitTokens => CachedTokens - HostHitTokens;

    /// <summary>The page ids as a span, for kernels; valid until the table next changes.</summary>
    public ReadOnlySpan<int> AsSpan() => CollectionsMarshal.AsSpan(PageList);
}
