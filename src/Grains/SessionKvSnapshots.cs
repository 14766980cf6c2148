using Actors.Abstractions;
using Actors.Engine;
using Actors.Grains.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Actors.Grains;

/// <summary>How sessions move their KV to and from blob snapshots. Defaults are the constants.</summary>
public sealed class SessionKvOptions
{
    public static readonly TimeSpan DefaultSnapshotSaveTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultSnapshotLoadTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Longest a deactivation waits for export + upload; past it the snapshot is abandoned (logged).</summary>
    public TimeSpan SnapshotSaveTimeout { get; set; } = DefaultSnapshotSaveTimeout;

    /// <summary>Longest a turn waits for download + import before it recomputes instead.</summary>
    public TimeSpan SnapshotLoadTimeout { get; set; } = DefaultSnapshotLoadTimeout;

    /// <summary>Write a snapshot when a session deactivates (idle collection, graceful silo shutdown, explicit).</summary>
    public bool SnapshotOnDeactivation { get; set; } = true;

    public const double DefaultSnapshotAtHostPressure = 0.9;

    /// <summary>
    /// Host pool fill (pages used / capacity) at or above which a session also stores its snapshot right after each
    /// turn: the host pool drops its least recently used pages when full, and those pages should reach blob first.
    /// 0 (or anything outside (0, 1]) turns it off.
    /// </summary>
    public double SnapshotAtHostPressure { get; set; } = DefaultSnapshotAtHostPressure;
}

/// <summary>What <see cref="SessionKvSnapshots.RestoreAsync"/> did: pages imported into the host pool, or why not.</summary>
public readonly record struct SnapshotRestore(bool Imported, int ImportedTokens, KvSnapshotLoadStatus? Status, string Reason);

/// <summary>What <see cref="SessionKvSnapshots.SaveAsync"/> did: tokens stored (0 when nothing was stored) and why.</summary>
public readonly record struct SnapshotSave(bool Saved, int Tokens, string Reason);

/// <summary>
/// The blob side of the KV tiers for sessions (ARCHITECTURE.md §3): before a turn, when the engine's device and host
/// tiers do not cover the session's full pages, its snapshot is downloaded, checked against the engine's page format
/// and imported into the host pool; on deactivation the pages the engine still holds are exported and stored.
/// Neither direction ever fails a turn or a deactivation: every failure (missing, corrupt or foreign snapshot, store
/// outage, timeout, an engine that refuses the pages) is an answer with a reason, logged, and the session recomputes.
/// Only the caller's own cancellation propagates. Without a <see cref="KvSnapshotStore"/> (no blob store registered)
/// nothing is stored or loaded.
/// </summary>
public sealed partial class SessionKvSnapshots(
    KvSnapshotStore? store,
    GrainMetrics metrics,
    IOptions<SessionKvOptions> options,
    ILogger<SessionKvSnapshots> logger)
{
    public SessionKvOptions Options => options.Value;

    /// <summary>What a snapshot must match to be imported into an engine of <paramref name="format"/>: every field.</summary>
    public static KvSnapshotExpectation ExpectationOf(KvPageFormat format) => new(format.ModelId, format.RopeProfile)
    {
        DType = DTypeOf(format.DType),
        PageSize = format.PageSize,
        LayerCount = format.LayerCount,
        KvHeads = format.KvHeads,
        HeadDim = format.HeadDim,
    };

    public static KvDType DTypeOf(string dtype) => dtype switch
    {
        "f32" => KvDType.F32,
        "bf16" => KvDType.BF16,
        _ => throw new ArgumentException($"KvPageFormat.DType '{dtype}' is neither f32 nor bf16", nameof(dtype)),
    };

    /// <summary>
    /// Makes the session's snapshot available to the engine when its device and host tiers hold fewer of the session's
    /// full pages than the snapshot could give. <paramref name="tokenIds"/>: the session's persisted token ids.
    /// </summary>
    public async Task<SnapshotRestore> RestoreAsync(string sessionId, IKvTiers tiers, IReadOnlyList<int> tokenIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tiers);
        ArgumentNullException.ThrowIfNull(tokenIds);
        KvPageFormat format;
        int fullTokens;
        KvResidency held;
        try
        {
            format = tiers.PageFormat;
            // The last token's KV is not computed when the turn stopped at MaxNewTokens (sampled, never fed back).
            fullTokens = CachedPagesTokens(tokenIds.Count, format.PageSize);
            if (fullTokens == 0) return new(false, 0, null, "the session has no full page");
            held = await tiers.ProbeAsync(tokenIds, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogRestoreFailed(sessionId, e.Message);
            return new(false, 0, null, "probing the engine's tiers failed: " + e.Message);
        }
        if (store is null) return new(false, 0, null, "no blob store is registered");
        if (held.CachedTokens >= fullTokens)
            return new(false, 0, null, $"device ({held.DeviceTokens}) and host ({held.HostTokens}) hold all {fullTokens} tokens of full pages");

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Options.SnapshotLoadTimeout);
        try
        {
            var (result, pages) = await store.TryLoadAllAsync(sessionId, ExpectationOf(format), timeout.Token);
            metrics.Snapshot("load", result.Status.ToString().ToLowerInvariant());
            if (!result.Loaded)
            {
                if (result.Status != KvSnapshotLoadStatus.Missing) LogSnapshotUnusable(sessionId, result.Status, result.Reason);
                return new(false, 0, result.Status, result.Reason);
            }
            var header = result.Header!;
            // Only the full pages whose tokens are the session's own: a snapshot of an older conversation under this id
            // (before a model change) would only fill the host pool with pages nobody asks for.
            var matched = MatchedFullPages(header.TokenIds, tokenIds, format.PageSize);
            if (matched * format.PageSize <= held.CachedTokens)
                return new(false, 0, result.Status, $"the snapshot's {matched} matching pages add nothing to the {held.CachedTokens} tokens held");
            var export = new KvExport(format,
                header.TokenIds.Take(matched * format.PageSize).ToArray(),
                pages.Take(matched).Select(p => (ReadOnlyMemory<byte>)p).ToArray());
            var accepted = await tiers.ImportAsync(export, timeout.Token);
            LogRestored(sessionId, accepted, export.Tokens.Count, held.DeviceTokens, held.HostTokens);
            return new(accepted > held.CachedTokens, accepted, result.Status, $"imported {accepted} of {export.Tokens.Count} snapshot tokens into the host pool");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            metrics.Snapshot("load", "timeout");
            LogRestoreFailed(sessionId, $"timed out after {Options.SnapshotLoadTimeout}");
            return new(false, 0, KvSnapshotLoadStatus.Unavailable, $"loading the snapshot timed out after {Options.SnapshotLoadTimeout}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A store that throws something other than its typed errors, or an engine that refuses the pages.
            metrics.Snapshot("load", "failed");
            LogRestoreFailed(sessionId, e.Message);
            return new(false, 0, KvSnapshotLoadStatus.Unavailable, e.Message);
        }
    }

    /// <summary>
    /// Stores the pages the engine holds for <paramref name="tokenIds"/> as the session's snapshot, unless they are no
    /// more than <paramref name="storedTokens"/> (what the blob is known to hold already: a shorter export must never
    /// replace a longer snapshot). Bounded by SnapshotSaveTimeout and <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task<SnapshotSave> SaveAsync(string sessionId, IKvTiers tiers, IReadOnlyList<int> tokenIds, int storedTokens, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tiers);
        ArgumentNullException.ThrowIfNull(tokenIds);
        if (store is null) return new(false, 0, "no blob store is registered");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Options.SnapshotSaveTimeout);
        try
        {
            var format = tiers.PageFormat;
            if (tokenIds.Count < format.PageSize) return new(false, 0, "the session has no full page");
            if (CachedPagesTokens(tokenIds.Count, format.PageSize) <= storedTokens) return new(false, 0, $"the blob already holds {storedTokens} tokens");
            var export = await tiers.ExportAsync(tokenIds, timeout.Token);
            if (export is null || export.Tokens.Count == 0) return new(false, 0, "the engine holds no page of the session");
            if (export.Tokens.Count <= storedTokens) return new(false, 0, $"the engine holds {export.Tokens.Count} tokens, the blob already {storedTokens}");
            var f = export.Format;
            var header = new KvSnapshotHeader(f.ModelId, f.RopeProfile, DTypeOf(f.DType), f.PageSize, f.LayerCount, f.KvHeads, f.HeadDim, export.Tokens);
            var pages = export.Pages;
            await store.SaveAsync(sessionId, header, async (writer, ct) =>
            {
                foreach (var page in pages) await writer.WritePageAsync(page, ct);
            }, timeout.Token);
            metrics.Snapshot("save", "saved");
            LogSaved(sessionId, export.Tokens.Count, pages.Count);
            return new(true, export.Tokens.Count, $"stored {pages.Count} pages ({export.Tokens.Count} tokens)");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            metrics.Snapshot("save", "timeout");
            LogSaveFailed(sessionId, $"timed out after {Options.SnapshotSaveTimeout}");
            return new(false, 0, $"timed out after {Options.SnapshotSaveTimeout}");
        }
        catch (OperationCanceledException)
        {
            metrics.Snapshot("save", "cancelled");
            LogSaveFailed(sessionId, "cancelled");
            return new(false, 0, "cancelled");
        }
        catch (Exception e)
        {
            metrics.Snapshot("save", "failed");
            LogSaveFailed(sessionId, e.Message);
            return new(false, 0, e.Message);
        }
    }

    /// <summary>
    /// Tokens in the full pages an engine surely holds for a session of <paramref name="tokenCount"/> persisted tokens
    /// when nothing was evicted: the KV of the last token is not computed when a turn stopped at MaxNewTokens (it was
    /// sampled, never fed back), so only the pages before it count (one page short at worst after an end-of-sequence).
    /// </summary>
    public static int CachedPagesTokens(int tokenCount, int pageSize) => tokenCount <= 0 ? 0 : (tokenCount - 1) / pageSize * pageSize;

    /// <summary>How many leading full pages of <paramref name="snapshot"/> hold exactly the session's tokens.</summary>
    public static int MatchedFullPages(IReadOnlyList<int> snapshot, IReadOnlyList<int> session, int pageSize)
    {
        var n = Math.Min(snapshot.Count, session.Count);
        var i = 0;
        while (i < n && snapshot[i] == session[i]) i++;
        return i / pageSize;
    }

    /// <summary>
    /// The tier that served a turn's prompt: the slowest tier that had to contribute to the session's own history.
    /// <paramref name="resumableTokens"/> are the leading prompt tokens, in whole pages, that the session already had
    /// before this turn (its persisted tokens; 0 for a first turn). When the tiers gave fewer than those, part of the
    /// history was prefilled again: Recompute, even if other sessions' pages (a shared system prompt or document)
    /// were found on the device. Otherwise Blob when a snapshot was imported for the turn and the host pool served
    /// pages, Host when it served pages without one, Device when the device alone did, Recompute when nothing was found.
    /// </summary>
    public static KvResumeTier Classify(PromptKvReport admission, bool snapshotImported, int resumableTokens)
    {
        var cached = admission.DeviceHitTokens + admission.HostHitTokens;
        if (cached == 0 || cached < resumableTokens) return KvResumeTier.Recompute;
        if (admission.HostHitTokens > 0) return snapshotImported ? KvResumeTier.Blob : KvResumeTier.Host;
        return KvResumeTier.Device;
    }

    /// <summary>Leading tokens of <paramref name="prompt"/> shared with <paramref name="previous"/>, in whole pages.</summary>
    public static int ResumableTokens(IReadOnlyList<int> prompt, IReadOnlyList<int> previous, int pageSize)
    {
        var n = Math.Min(prompt.Count, previous.Count);
        var i = 0;
        while (i < n && prompt[i] == previous[i]) i++;
        return i / pageSize * pageSize;
    }

    [LoggerMessage(1, LogLevel.Information, "Session {SessionId}: imported {Accepted} of {SnapshotTokens} snapshot tokens into the host pool (device held {DeviceTokens}, host {HostTokens})")]
    private partial void LogRestored(string sessionId, int accepted, int snapshotTokens, int deviceTokens, int hostTokens);

    [LoggerMessage(2, LogLevel.Warning, "Session {SessionId}: KV snapshot not used ({Status}), recomputing: {Reason}")]
    private partial void LogSnapshotUnusable(string sessionId, KvSnapshotLoadStatus status, string reason);

    [LoggerMessage(3, LogLevel.Warning, "Session {SessionId}: restoring the KV snapshot failed, recomputing: {Reason}")]
    private partial void LogRestoreFailed(string sessionId, string reason);

    [LoggerMessage(4, LogLevel.Information, "Session {SessionId}: KV snapshot of {Tokens} tokens ({Pages} pages) stored")]
    private partial void LogSaved(string sessionId, int tokens, int pages);

    [LoggerMessage(5, LogLevel.Warning, "Session {SessionId}: KV snapshot not stored: {Reason}")]
    private partial void LogSaveFailed(string sessionId, string reason);
}
