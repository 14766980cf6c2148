using System.Text;
using Actors.Grains.Ingestion;
using Actors.Grains.Storage;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Content-addressed storage: names, once-only writes, load back, and no orphan when the second write fails.</summary>
public sealed class StorageTests : IngestionTestBase
{
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    private const string AbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    [Fact]
    public async Task Hash_is_sha256_of_the_original_bytes_and_names_the_blobs()
    {
        var doc = await IngestAsync("abc"u8.ToArray(), "abc.txt");
        Assert.Equal(AbcSha256, doc.ContentHash);
        Assert.Equal(AbcSha256, DocumentIngestor.ComputeContentHash("abc"u8));
        Assert.Equal($"documents/{AbcSha256}", doc.OriginalBlobName);
        Assert.Equal($"documents/{AbcSha256}.txt", doc.TextBlobName);
        Assert.Equal(3, doc.OriginalLength);
        Assert.False(doc.AlreadyStored);
        Assert.Equal([doc.OriginalBlobName, doc.TextBlobName], await BlobNamesAsync());
        Assert.Equal("abc"u8.ToArray(), await ReadBlobAsync(doc.OriginalBlobName));
        Assert.Equal("abc"u8.ToArray(), await ReadBlobAsync(doc.TextBlobName));
        var props = await Store.GetPropertiesAsync(doc.OriginalBlobName, Ct);
        Assert.Equal("sha256:" + AbcSha256, props!.ContentHash);
    }

    [Fact]
    public async Task Same_document_twice_is_stored_once()
    {
        var pdf = TestDocuments.Pdf("Twice", ["Stored once."]);
        var first = await IngestAsync(pdf, "a.pdf");
        var before = await PropertiesAsync(first);
        var second = await IngestAsync(pdf, "renamed copy.pdf");
        Assert.False(first.AlreadyStored);
        Assert.True(second.AlreadyStored);
        Assert.Equal(first.ContentHash, second.ContentHash);
        Assert.Equal(first.Text, second.Text);
        Assert.Equal(2, (await BlobNamesAsync()).Count);
        // Not rewritten: same ETags (a rewrite gives a new one).
        Assert.Equal(before, await PropertiesAsync(second));
    }

    [Fact]
    public async Task Concurrent_ingestions_of_one_document_store_it_once()
    {
        var docx = TestDocuments.Docx("Race", [new("Two uploads at once.")]);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Ingestor().IngestAsync(docx, $"copy{i}.docx", null, Ct)));
        Assert.All(results, r => Assert.Equal("Two uploads at once.", r.Text));
        Assert.Single(results.Select(r => r.ContentHash).Distinct());
        Assert.Equal(2, (await BlobNamesAsync()).Count);
    }

    [Fact]
    public async Task Different_documents_get_different_blobs()
    {
        var a = await IngestAsync("first document"u8.ToArray(), "a.txt");
        var b = await IngestAsync("second document"u8.ToArray(), "b.txt");
        Assert.NotEqual(a.ContentHash, b.ContentHash);
        Assert.Equal(4, (await BlobNamesAsync()).Count);
    }

    [Fact]
    public async Task Stored_text_is_utf8_of_the_extracted_text()
    {
        var bytes = new byte[] { 0xFF, 0xFE }.Concat(Encoding.Unicode.GetBytes("na\u00efve \u6771\u4eac")).ToArray();
        var doc = await IngestAsync(bytes, "u16.txt");
        Assert.Equal(bytes, await ReadBlobAsync(doc.OriginalBlobName));
        Assert.Equal(Encoding.UTF8.GetBytes("na\u00efve \u6771\u4eac"), await ReadBlobAsync(doc.TextBlobName));
    }

    [Fact]
    public async Task Load_returns_what_was_ingested()
    {
        var html = Encoding.UTF8.GetBytes("<html><head><title>Caf\u00e9 \u2014 notes</title></head><body><p>Body text.</p></body></html>");
        var doc = await IngestAsync(html, "caf\u00e9 notes.html");
        var loaded = await Ingestor().LoadAsync(doc.ContentHash, Ct);
        Assert.NotNull(loaded);
        Assert.Equal(doc with { AlreadyStored = true }, loaded);
        Assert.Null(await Ingestor().LoadAsync(AbcSha256, Ct));
        Assert.Throws<ArgumentException>(() => DocumentIngestor.TextBlobName("../etc/passwd"));
    }

    [Fact]
    public async Task Failed_text_write_deletes_the_original_it_created()
    {
        var failing = new FailingTextStore(Store);
        var ingestor = Ingestor(store: failing);
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => ingestor.IngestAsync("some text"u8.ToArray(), "t.txt", null, Ct));
        Assert.Equal(1, failing.TextPuts);
        Assert.Empty(await BlobNamesAsync());
    }

    [Fact]
    public async Task Failed_text_write_keeps_an_original_that_was_already_there()
    {
        // A crash between the two writes left the original; the retry's failure must not delete it (another ingestion may own it).
        var bytes = "left behind"u8.ToArray();
        var name = await IngestAsync(bytes, "x.txt");
        await Store.DeleteAsync(name.TextBlobName, Ct);
        var failing = new FailingTextStore(Store);
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => Ingestor(store: failing).IngestAsync(bytes, "x.txt", null, Ct));
        Assert.Equal([name.OriginalBlobName], await BlobNamesAsync());
        // And an ingestion that can write completes the pair.
        var again = await IngestAsync(bytes, "x.txt");
        Assert.False(again.AlreadyStored);
        Assert.Equal(2, (await BlobNamesAsync()).Count);
    }

    [Fact]
    public async Task Stream_overload_reads_a_non_seekable_stream()
    {
        var bytes = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("A line of a longer text file.\n", 20_000)));
        var doc = await Ingestor().IngestAsync(new Storage.NonSeekableStream(bytes), "long.txt", null, Ct);
        Assert.Equal(bytes.Length, doc.OriginalLength);
        Assert.Equal(Encoding.UTF8.GetString(bytes).TrimEnd(), doc.Text);
        Assert.Equal(bytes, await ReadBlobAsync(doc.OriginalBlobName));
    }

    [Fact]
    public async Task Cancelled_ingestion_writes_nothing()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Ingestor().IngestAsync("text"u8.ToArray(), "c.txt", null, cts.Token));
        Assert.Empty(await BlobNamesAsync());
    }

    private async Task<byte[]> ReadBlobAsync(string name)
    {
        await using var d = await Store.GetAsync(name, Ct);
        Assert.NotNull(d);
        using var ms = new MemoryStream();
        await d.Content.CopyToAsync(ms, Ct);
        return ms.ToArray();
    }

    private async Task<(string, string)> PropertiesAsync(IngestedDocument doc) =>
        ((await Store.GetPropertiesAsync(doc.OriginalBlobName, Ct))!.ETag, (await Store.GetPropertiesAsync(doc.TextBlobName, Ct))!.ETag);

    /// <summary>Passes everything through except puts of "*.txt" blobs, which fail as an unreachable service would.</summary>
    private sealed class FailingTextStore(IBlobStore inner) : IBlobStore
    {
        public int TextPuts { get; private set; }

        private void FailText(string name)
        {
            if (!name.EndsWith(".txt", StringComparison.Ordinal)) return;
            TextPuts++;
            throw new BlobStoreUnavailableException($"put of {name} failed on purpose");
        }

        public Task<BlobProperties> PutAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default)
        {
            FailText(name);
            return inner.PutAsync(name, content, options, cancellationToken);
        }

        public Task<bool> PutIfNotExistsAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default)
        {
            FailText(name);
            return inner.PutIfNotExistsAsync(name, content, options, cancellationToken);
        }

        public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default) => inner.GetAsync(name, cancellationToken);
        public Task<BlobProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default) => inner.GetPropertiesAsync(name, cancellationToken);
        public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) => inner.ExistsAsync(name, cancellationToken);
        public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default) => inner.DeleteAsync(name, cancellationToken);
        public IAsyncEnumerable<BlobProperties> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);
    }
}
