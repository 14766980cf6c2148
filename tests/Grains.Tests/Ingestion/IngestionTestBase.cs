using Actors.Grains.Ingestion;
using Actors.Grains.Storage;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>A <see cref="LocalDiskBlobStore"/> in a fresh temp directory per test, and helpers to ingest into it.</summary>
public abstract class IngestionTestBase : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-ingest-" + Guid.NewGuid().ToString("N"));

    protected IngestionTestBase() => Store = new LocalDiskBlobStore(_root);

    protected LocalDiskBlobStore Store { get; }
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected DocumentIngestor Ingestor(IngestionOptions? options = null, IBlobStore? store = null) => new(store ?? Store, options);

    protected Task<IngestedDocument> IngestAsync(byte[] bytes, string fileName, string? mediaType = null, IngestionOptions? options = null) =>
        Ingestor(options).IngestAsync(bytes, fileName, mediaType, Ct);

    protected async Task<List<string>> BlobNamesAsync()
    {
        var names = new List<string>();
        await foreach (var b in Store.ListAsync("", Ct)) names.Add(b.Name);
        return names;
    }

    /// <summary>Ingests, expects a rejection with <paramref name="reason"/>, and checks that the store is still empty.</summary>
    protected async Task<DocumentRejectedException> RejectedAsync(byte[] bytes, string fileName, DocumentRejectionReason reason, string? mediaType = null, IngestionOptions? options = null)
    {
        var e = await Assert.ThrowsAsync<DocumentRejectedException>(() => IngestAsync(bytes, fileName, mediaType, options));
        Assert.True(reason == e.Reason, $"expected {reason}, got {e.Reason}: {e.Message}");
        Assert.Equal(fileName, e.FileName);
        Assert.Contains(fileName, e.Message);
        Assert.Empty(await BlobNamesAsync());
        return e;
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        try { Directory.Delete(_root, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}
