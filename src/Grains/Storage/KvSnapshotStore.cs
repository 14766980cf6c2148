using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Actors.Grains.Storage;

/// <summary>Why a load gave or did not give pages.</summary>
public enum KvSnapshotLoadStatus
{
    Loaded,
    /// <summary>No snapshot for the session.</summary>
    Missing,
    /// <summary>Not a valid snapshot (truncated, checksum, sizes); the blob was deleted.</summary>
    Corrupt,
    /// <summary>A valid snapshot of another model / RoPE profile / geometry; the blob was deleted.</summary>
    Foreign,
    /// <summary>The store could not be reached; the blob is kept for a later try.</summary>
    Unavailable,
}

/// <summary>Outcome of <see cref="KvSnapshotStore.TryLoadAsync"/>: <see cref="Header"/> is null unless Loaded, and <see cref="Reason"/> says why.</summary>
public sealed record KvSnapshotLoadResult(KvSnapshotLoadStatus Status, KvSnapshotHeader? Header, string Reason)
{
    public bool Loaded => Status == KvSnapshotLoadStatus.Loaded;
}

/// <summary>
/// Session KV snapshots in an <see cref="IBlobStore"/>, one blob per session at <see cref="BlobName"/>.
/// Loading streams and verifies the whole snapshot; any failure is an answer (Missing, Corrupt, Foreign,
/// Unavailable) so the caller recomputes, never an exception — except the caller's own cancellation and
/// exceptions thrown by the caller's page callback.
/// </summary>
public sealed class KvSnapshotStore(IBlobStore blobs, ILogger<KvSnapshotStore>? logger = null)
{
    public const string Prefix = "kv/";
    private const string FormatMetadata = "kvsnapshot_v1";
    private readonly ILogger _log = logger ?? NullLogger<KvSnapshotStore>.Instance;

    public IBlobStore Blobs { get; } = blobs ?? throw new ArgumentNullException(nameof(blobs));

    /// <summary>
    /// Blob of a session: "kv/s-{id}.kvs" when the id is made of blob-safe characters, else "kv/h-{hex of UTF-8}.kvs"
    /// (the two prefixes keep the encodings from colliding).
    /// </summary>
    public static string BlobName(string sessionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        var safe = sessionId.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
        var name = Prefix + (safe ? "s-" + sessionId : "h-" + Convert.ToHexStringLower(Encoding.UTF8.GetBytes(sessionId))) + ".kvs";
        if (name.Length > BlobNames.MaxNameLength) throw new ArgumentException($"session id of {sessionId.Length} chars is too long for a blob name", nameof(sessionId));
        return name;
    }

    /// <summary>Stores an already-encoded snapshot stream (as written by <see cref="KvSnapshotWriter"/>), replacing the session's previous one.</summary>
    public Task<BlobProperties> SaveAsync(string sessionId, Stream snapshot, CancellationToken cancellationToken = default) =>
        Blobs.PutAsync(BlobName(sessionId), snapshot, new BlobPutOptions { Metadata = new Dictionary<string, string> { ["format"] = FormatMetadata } }, cancellationToken);

    /// <summary>
    /// Encodes and stores a snapshot in one pass: <paramref name="writePages"/> gets a writer whose header is
    /// already out and must write every page (CompleteAsync is called here). Bytes flow through a bounded pipe, so
    /// memory stays at a few pages whatever the session size.
    /// </summary>
    public async Task<BlobProperties> SaveAsync(string sessionId, KvSnapshotHeader header, Func<KvSnapshotWriter, CancellationToken, ValueTask> writePages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(writePages);
        header.Validate();
        var name = BlobName(sessionId);
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 16 << 20, resumeWriterThreshold: 8 << 20));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var produce = Task.Run(async () =>
        {
            var output = pipe.Writer.AsStream();
            try
            {
                var writer = await KvSnapshotWriter.CreateAsync(output, header, cts.Token);
                await writePages(writer, cts.Token);
                await writer.CompleteAsync(cts.Token);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e); // the upload's read fails, so a partial snapshot is never committed
                throw;
            }
        }, CancellationToken.None);
        try
        {
            var props = await SaveAsync(sessionId, pipe.Reader.AsStream(), cts.Token);
            await produce;
            return props;
        }
        catch
        {
            cts.Cancel();
            await pipe.Reader.CompleteAsync();
            try { await produce; } catch { /* the producer's own exception is rethrown below when it is the cause */ }
            if (produce.IsFaulted) throw produce.Exception!.InnerException!;
            _log.LogWarning("Saving KV snapshot {Blob} failed", name);
            throw;
        }
    }

    /// <summary>
    /// Streams the session's snapshot into <paramref name="onPage"/> (page index, bytes valid only during the call)
    /// after checking it against <paramref name="expected"/>. The result is Loaded only when every page was read and
    /// the checksum held; on any other result the pages delivered so far must be discarded. Corrupt and foreign
    /// blobs are deleted.
    /// </summary>
    public async Task<KvSnapshotLoadResult> TryLoadAsync(
        string sessionId,
        KvSnapshotExpectation expected,
        Func<KvSnapshotHeader, int, ReadOnlyMemory<byte>, CancellationToken, ValueTask> onPage,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(onPage);
        var name = BlobName(sessionId);
        try
        {
            await using var download = await Blobs.GetAsync(name, cancellationToken);
            if (download is null) return new(KvSnapshotLoadStatus.Missing, null, $"no snapshot {name}");
            var reader = await KvSnapshotReader.OpenAsync(download.Content, expected, name, cancellationToken);
            await reader.ReadAllPagesAsync((i, page, ct) => onPage(reader.Header, i, page, ct), cancellationToken);
            return new(KvSnapshotLoadStatus.Loaded, reader.Header, $"loaded {reader.Header.PageCount} pages ({reader.Header.TokenCount} tokens) from {name}");
        }
        catch (SnapshotMismatchException e)
        {
            return await DiscardAsync(name, KvSnapshotLoadStatus.Foreign, e.Message);
        }
        catch (KvSnapshotFormatException e)
        {
            return await DiscardAsync(name, KvSnapshotLoadStatus.Corrupt, e.Message);
        }
        catch (BlobStoreUnavailableException e)
        {
            _log.LogWarning(e, "KV snapshot {Blob}: store unavailable", name);
            return new(KvSnapshotLoadStatus.Unavailable, null, e.Message);
        }
        catch (BlobStoreException e)
        {
            // The backend could not even frame the blob (e.g. a damaged local file): as corrupt as a bad checksum.
            return await DiscardAsync(name, KvSnapshotLoadStatus.Corrupt, e.Message);
        }
    }

    /// <summary>Reads the whole snapshot into memory (tests and small sessions): header and pages, or the failure.</summary>
    public async Task<(KvSnapshotLoadResult Result, List<byte[]> Pages)> TryLoadAllAsync(string sessionId, KvSnapshotExpectation expected, CancellationToken cancellationToken = default)
    {
        var pages = new List<byte[]>();
        var result = await TryLoadAsync(sessionId, expected, (_, _, page, _) => { pages.Add(page.ToArray()); return ValueTask.CompletedTask; }, cancellationToken);
        if (!result.Loaded) pages.Clear();
        return (result, pages);
    }

    public Task<bool> ExistsAsync(string sessionId, CancellationToken cancellationToken = default) => Blobs.ExistsAsync(BlobName(sessionId), cancellationToken);

    public Task<bool> DeleteAsync(string sessionId, CancellationToken cancellationToken = default) => Blobs.DeleteAsync(BlobName(sessionId), cancellationToken);

    private async Task<KvSnapshotLoadResult> DiscardAsync(string name, KvSnapshotLoadStatus status, string reason)
    {
        _log.LogWarning("KV snapshot {Blob} is {Status}, deleting it: {Reason}", name, status, reason);
        try { await Blobs.DeleteAsync(name); }
        catch (BlobStoreException e) { reason += $" (deleting it failed too: {e.Message})"; }
        return new(status, null, reason);
    }
}
