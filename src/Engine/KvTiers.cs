namespace Actors.Engine;

/// <summary>Where the KV of a session's prompt came from when its turn started (ARCHITECTURE.md §3, resume order).</summary>
public enum KvTier
{
    /// <summary>Pages were still in the device page pool (prefix hit).</summary>
    Device = 0,
    /// <summary>Pages were swapped in from the pinned host page pool.</summary>
    Host = 1,
    /// <summary>Pages were downloaded from a blob snapshot (through the host pool).</summary>
    Blob = 2,
    /// <summary>No tier held the prompt's KV: it was prefilled from the persisted tokens.</summary>
    Recompute = 3,
}

/// <summary>
/// Identity and geometry of one engine's KV pages: a page holds PageSize tokens of K and V for every layer as one
/// contiguous block (page → layer → K (slot, kvHead, headDim), V (same)) of <see cref="PageBytes"/> bytes.
/// DType is "f32" (CPU engine) or "bf16" (CUDA engine). Pages move between engines only when every field matches.
/// </summary>
public sealed record KvPageFormat(
    string ModelId, string RopeProfile, string DType, int PageSize, int LayerCount, int KvHeads, int HeadDim)
{
    public int ElementSize => DType == "f32" ? 4 : 2;

    public long PageBytes => (long)LayerCount * 2 * PageSize * KvHeads * HeadDim * ElementSize;
}

/// <summary>
/// How many leading tokens of a token sequence have their KV in each tier now. Only full pages count (the hash chain
/// identifies full pages). <see cref="HostTokens"/> are the tokens past <see cref="DeviceTokens"/> found in the host
/// pool, so DeviceTokens + HostTokens leading tokens need no prefill.
/// </summary>
public readonly record struct KvResidency(int DeviceTokens, int HostTokens)
{
    public int CachedTokens => DeviceTokens + HostTokens;
}

/// <summary>
/// The KV of the first <see cref="Tokens"/>.Count tokens of a sequence (a whole number of pages), as page blocks in
/// <see cref="Format"/>. Pages[i] holds tokens i*PageSize .. i*PageSize+PageSize−1.
/// </summary>
public sealed record KvExport(KvPageFormat Format, IReadOnlyList<int> Tokens, IReadOnlyList<ReadOnlyMemory<byte>> Pages);

/// <summary>What the engine reports when it admits a request: how its prompt's KV was found.</summary>
public readonly record struct KvAdmission(int PromptTokens, int DeviceHitTokens, int HostHitTokens)
{
    /// <summary>Prompt tokens prefilled on the device for this request.</summary>
    public int ComputedTokens => PromptTokens - DeviceHitTokens - HostHitTokens;
}

/// <summary>Numbers of the tiers of one engine now.</summary>
public readonly record struct KvTierStats(
    int DevicePagesTotal, int DevicePagesFree, int DevicePagesCached, int HostPagesUsed, int HostPagesCapacity, long PageBytes);

/// <summary>
/// The KV tiers of one engine (ARCHITECTURE.md §3): the device page pool and a host page pool below it, both addressed
/// by the page hash chain (model id, RoPE profile, token ids), so a session finds its pages by its tokens alone.
/// Thread-safe; every method runs its work on the engine loop between steps.
/// </summary>
public interface IKvTiers
{
    KvPageFormat PageFormat { get; }

    KvTierStats TierStats { get; }

    /// <summary>Leading tokens of <paramref name="tokens"/> whose KV is on the device and, after those, in the host pool.</summary>
    KvResidency Probe(IReadOnlyList<int> tokens);

    /// <summary>
    /// <see cref="Probe"/> for callers that must not block (grains): completes once the engine loop has run it.
    /// The default runs <see cref="Probe"/> inline.
    /// </summary>
    Task<KvResidency> ProbeAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default) => Task.FromResult(Probe(tokens));

    /// <summary>
    /// Copies out the KV of the longest prefix of <paramref name="tokens"/> held on the device or in the host pool
    /// (full pages only); null when no page is held. Nothing is moved or freed.
    /// </summary>
    Task<KvExport?> ExportAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default);

    /// <summary>
    /// Puts pages computed elsewhere (a blob snapshot) into the host pool, where the next request with these tokens
    /// finds them. Returns the tokens accepted (fewer when the host budget is smaller). Throws ArgumentException naming
    /// the field when the format does not match <see cref="PageFormat"/> or a page has the wrong size.
    /// </summary>
    Task<int> ImportAsync(KvExport export, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves the device pages of the prefix of <paramref name="tokens"/> that no running request holds to the host pool
    /// and frees them on the device. Returns the tokens moved.
    /// </summary>
    Task<int> OffloadAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default);
}
