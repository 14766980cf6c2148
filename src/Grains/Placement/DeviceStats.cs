namespace Actors.Grains.Placement;

/// <summary>One device of one silo as its engine sees it now. Pages are KV pages of <see cref="PageBytes"/> bytes each.</summary>
[GenerateSerializer, Immutable]
public sealed record DeviceStats(
    [property: Id(0)] int Ordinal,
    [property: Id(1)] long TotalVramBytes,
    [property: Id(2)] long FreeVramBytes,
    [property: Id(3)] int TotalPages,
    [property: Id(4)] int FreePages,
    [property: Id(5)] int PagesOnHost,
    [property: Id(6)] int QueueDepth,
    [property: Id(7)] long PageBytes)
{
    public int UsedPages => TotalPages - FreePages;
}

/// <summary>
/// What a silo's devices hold: per-device numbers and the ids of sessions with KV pages on a device (most recently
/// used first, at most VramAwarePlacementOptions.MaxReportedSessions; <see cref="SessionsTruncated"/> when cut).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DeviceSnapshot(
    [property: Id(0)] DeviceStats[] Devices,
    [property: Id(1)] string[] Sessions,
    [property: Id(2)] bool SessionsTruncated);

/// <summary>A silo's <see cref="DeviceSnapshot"/> with its origin and capture time (the silo's clock).</summary>
[GenerateSerializer, Immutable]
public sealed record SiloDeviceReport(
    [property: Id(0)] SiloAddress Silo,
    [property: Id(1)] DateTimeOffset CapturedAt,
    [property: Id(2)] DeviceSnapshot Snapshot)
{
    public int TotalPages => Snapshot.Devices.Sum(d => d.TotalPages);
    public int FreePages => Snapshot.Devices.Sum(d => d.FreePages);
    public int LargestDeviceFreePages => Snapshot.Devices.Length == 0 ? 0 : Snapshot.Devices.Max(d => d.FreePages);
    public int QueueDepth => Snapshot.Devices.Sum(d => d.QueueDepth);
}

/// <summary>
/// This silo's devices. Synchronous and cheap: it is read on every report pull. The real one reads the engine's page
/// pools; <see cref="SimulatedDevice"/> stands in on CPU-only silos and in tests.
/// </summary>
public interface IDeviceStatsSource
{
    DeviceSnapshot Capture(int maxSessions);
}

/// <summary>
/// Tells the silo's device accounting how much KV a session holds. The engine's page pool will do this by itself;
/// until then the session grain reports after each turn. Thread-safe.
/// </summary>
public interface ISessionKvTracker
{
    /// <summary>The session's KV now covers <paramref name="tokens"/> tokens on this silo.</summary>
    void RecordTokens(string sessionId, int tokens);

    /// <summary>
    /// As <see cref="RecordTokens"/>, with the token ids themselves, so a tracker can tell the pages sessions share
    /// (a common system prompt or document) from their own.
    /// </summary>
    void RecordTokenIds(string sessionId, IReadOnlyList<int> tokenIds) => RecordTokens(sessionId, tokenIds.Count);

    /// <summary>
    /// The session was placed here expecting to need <paramref name="tokens"/> tokens of KV: the device counts (and
    /// lists) that many pages for it from now on, unless it already holds more, so every silo's next report shows them.
    /// </summary>
    void ExpectTokens(string sessionId, int tokens);

    /// <summary>Counts one generation in this silo's queue until disposed.</summary>
    IDisposable BeginGeneration(string sessionId);
}
