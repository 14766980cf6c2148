using Actors.Grains.Storage;
using Azure.Storage.Blobs;

namespace Actors.Grains.Tests.Storage;

/// <summary>
/// What every <see cref="IBlobStore"/> must do; run once per backend by the subclasses below, so the local-disk
/// default and Azure behave the same.
/// </summary>
public abstract class BlobStoreContractTests : IAsyncDisposable
{
    private IBlobStore? _store;
    protected IBlobStore Store => _store ??= CreateStore();
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected abstract IBlobStore CreateStore();
    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static Dictionary<string, string> Meta(params (string K, string V)[] kv) => kv.ToDictionary(p => p.K, p => p.V);

    protected static async Task<byte[]> ReadAllAsync(BlobDownload d)
    {
        using var ms = new MemoryStream();
        await d.Content.CopyToAsync(ms, Ct);
        return ms.ToArray();
    }

    [Fact]
    public async Task Put_then_get_returns_the_bytes_metadata_and_content_hash()
    {
        var put = await Store.PutAsync("docs/a.bin", new GeneratedStream(100_000, seed: 3),
            new BlobPutOptions { Metadata = Meta(("model", "llama-3-8b"), ("turns", "4")), ContentHash = "xxh128:00ff" }, Ct);
        Assert.Equal("docs/a.bin", put.Name);
        Assert.Equal(100_000, put.Length);
        Assert.False(string.IsNullOrEmpty(put.ETag));

        await using var got = await Store.GetAsync("docs/a.bin", Ct);
        Assert.NotNull(got);
        Assert.Equal(GeneratedStream.Expected(100_000, seed: 3), await ReadAllAsync(got));
        Assert.Equal(100_000, got.Properties.Length);
        Assert.Equal(put.ETag, got.Properties.ETag);
        Assert.Equal("xxh128:00ff", got.Properties.ContentHash);
        Assert.Equal(Meta(("model", "llama-3-8b"), ("turns", "4")), got.Properties.Metadata);

        var props = await Store.GetPropertiesAsync("docs/a.bin", Ct);
        Assert.NotNull(props);
        Assert.Equal(put.ETag, props.ETag);
        Assert.Equal(100_000, props.Length);
        Assert.True(await Store.ExistsAsync("docs/a.bin", Ct));
    }

    [Fact]
    public async Task Empty_blob_round_trips()
    {
        await Store.PutAsync("empty", new MemoryStream(), cancellationToken: Ct);
        await using var got = await Store.GetAsync("empty", Ct);
        Assert.NotNull(got);
        Assert.Empty(await ReadAllAsync(got));
        Assert.Equal(0, got.Properties.Length);
        Assert.Null(got.Properties.ContentHash);
        Assert.Empty(got.Properties.Metadata);
    }

    [Fact]
    public async Task Missing_blob_is_null_not_an_exception()
    {
        Assert.Null(await Store.GetAsync("nope/none", Ct));
        Assert.Null(await Store.GetPropertiesAsync("nope/none", Ct));
        Assert.False(await Store.ExistsAsync("nope/none", Ct));
        Assert.False(await Store.DeleteAsync("nope/none", Ct));
    }

    [Fact]
    public async Task Put_overwrites_with_a_new_etag()
    {
        var first = await Store.PutAsync("x", new MemoryStream([1, 2, 3]), cancellationToken: Ct);
        var second = await Store.PutAsync("x", new MemoryStream([9, 8]), new BlobPutOptions { Metadata = Meta(("v", "2")) }, Ct);
        Assert.NotEqual(first.ETag, second.ETag);
        await using var got = await Store.GetAsync("x", Ct);
        Assert.Equal(new byte[] { 9, 8 }, await ReadAllAsync(got!));
        Assert.Equal("2", got!.Properties.Metadata["v"]);
    }

    [Fact]
    public async Task PutIfNotExists_writes_once_and_leaves_the_first_content()
    {
        Assert.True(await Store.PutIfNotExistsAsync("doc/sha-1", new MemoryStream([1]), cancellationToken: Ct));
        Assert.False(await Store.PutIfNotExistsAsync("doc/sha-1", new MemoryStream([2, 2]), cancellationToken: Ct));
        await using var got = await Store.GetAsync("doc/sha-1", Ct);
        Assert.Equal(new byte[] { 1 }, await ReadAllAsync(got!));
    }

    [Fact]
    public async Task PutIfNotExists_racing_writers_have_exactly_one_winner()
    {
        var wins = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            Store.PutIfNotExistsAsync("doc/race", new MemoryStream([(byte)i, (byte)i]), cancellationToken: Ct)));
        Assert.Equal(1, wins.Count(w => w));
        var winner = (byte)Array.IndexOf(wins, true);
        await using var got = await Store.GetAsync("doc/race", Ct);
        Assert.Equal(new[] { winner, winner }, await ReadAllAsync(got!));
    }

    [Fact]
    public async Task IfMatch_succeeds_on_the_current_etag_and_fails_on_a_stale_one()
    {
        var v1 = await Store.PutAsync("cas", new MemoryStream([1]), cancellationToken: Ct);
        var v2 = await Store.PutAsync("cas", new MemoryStream([2]), new BlobPutOptions { IfMatch = v1.ETag }, Ct);
        var e = await Assert.ThrowsAsync<BlobConditionFailedException>(() =>
            Store.PutAsync("cas", new MemoryStream([3]), new BlobPutOptions { IfMatch = v1.ETag }, Ct));
        Assert.Equal("cas", e.BlobName);
        await using var got = await Store.GetAsync("cas", Ct);
        Assert.Equal(new byte[] { 2 }, await ReadAllAsync(got!));
        Assert.Equal(v2.ETag, got!.Properties.ETag);
    }

    [Fact]
    public async Task Delete_removes_the_blob()
    {
        await Store.PutAsync("d/1", new MemoryStream([1]), cancellationToken: Ct);
        Assert.True(await Store.DeleteAsync("d/1", Ct));
        Assert.False(await Store.DeleteAsync("d/1", Ct));
        Assert.Null(await Store.GetAsync("d/1", Ct));
        Assert.False(await Store.ExistsAsync("d/1", Ct));
    }

    [Fact]
    public async Task List_by_prefix_is_sorted_and_exact()
    {
        foreach (var n in new[] { "kv/s-b.kvs", "kv/s-a.kvs", "kv/t/deep.kvs", "kvx", "doc/1", "a", "a/b" })
            await Store.PutAsync(n, new MemoryStream([1, 2, 3]), new BlobPutOptions { Metadata = Meta(("n", n.Replace('/', '_'))) }, Ct);

        async Task<List<string>> Names(string prefix)
        {
            var l = new List<string>();
            await foreach (var p in Store.ListAsync(prefix, Ct)) l.Add(p.Name);
            return l;
        }
        Assert.Equal(["kv/s-a.kvs", "kv/s-b.kvs", "kv/t/deep.kvs"], await Names("kv/"));
        Assert.Equal(["kv/s-a.kvs", "kv/s-b.kvs", "kv/t/deep.kvs", "kvx"], await Names("kv"));
        Assert.Equal(["kv/s-a.kvs", "kv/s-b.kvs"], await Names("kv/s-"));
        Assert.Equal(["a", "a/b"], await Names("a"));
        Assert.Empty(await Names("zzz"));
        Assert.Equal(7, (await Names("")).Count);

        await foreach (var p in Store.ListAsync("kv/t", Ct))
        {
            Assert.Equal(3, p.Length);
            Assert.Equal("kv_t_deep.kvs", p.Metadata["n"]);
        }
    }

    [Fact]
    public async Task Large_non_seekable_stream_round_trips()
    {
        const long size = 20L << 20; // more than one Azure block (8 MiB), so the multi-block path runs
        await Store.PutAsync("big", new GeneratedStream(size, seed: 11), cancellationToken: Ct);
        await using var got = await Store.GetAsync("big", Ct);
        Assert.NotNull(got);
        var buffer = new byte[1 << 16];
        long offset = 0;
        int n;
        while ((n = await got.Content.ReadAsync(buffer, Ct)) > 0)
        {
            for (var i = 0; i < n; i++)
                if (buffer[i] != GeneratedStream.ByteAt(offset + i, 11)) Assert.Fail($"byte {offset + i} differs");
            offset += n;
        }
        Assert.Equal(size, offset);
    }

    [Fact]
    public async Task A_source_that_fails_mid_put_leaves_the_old_blob_whole()
    {
        await Store.PutAsync("keep", new MemoryStream([5, 6, 7]), cancellationToken: Ct);
        await Assert.ThrowsAnyAsync<Exception>(() => Store.PutAsync("keep", new GeneratedStream(12L << 20, failAfter: 9L << 20), cancellationToken: Ct));
        await using var got = await Store.GetAsync("keep", Ct);
        Assert.Equal(new byte[] { 5, 6, 7 }, await ReadAllAsync(got!));

        await Assert.ThrowsAnyAsync<Exception>(() => Store.PutAsync("never", new GeneratedStream(1000, failAfter: 10), cancellationToken: Ct));
        Assert.False(await Store.ExistsAsync("never", Ct));
    }

    [Theory]
    [InlineData("")]
    [InlineData("../etc/passwd")]
    [InlineData("a/../../b")]
    [InlineData("/abs")]
    [InlineData("a//b")]
    [InlineData("trailing/")]
    [InlineData(".")]
    [InlineData("a/./b")]
    [InlineData("back\\slash")]
    [InlineData("sp ace")]
    [InlineData("tilde~")]
    [InlineData("ünï")]
    public async Task Unsafe_names_are_refused_before_any_io(string name)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync(name, new MemoryStream([1]), cancellationToken: Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.GetAsync(name, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.DeleteAsync(name, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.ExistsAsync(name, Ct));
    }

    [Fact]
    public async Task Bad_metadata_is_refused()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("m", new MemoryStream([1]), new BlobPutOptions { Metadata = Meta(("Upper", "x")) }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("m", new MemoryStream([1]), new BlobPutOptions { Metadata = Meta(("k", "line\nbreak")) }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("m", new MemoryStream([1]), new BlobPutOptions { Metadata = Meta((BlobNames.ContentHashKey, "x")) }, Ct));
        Assert.False(await Store.ExistsAsync("m", Ct));
    }
}

public sealed class LocalDiskBlobStoreTests : BlobStoreContractTests
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-blobs-" + Guid.NewGuid().ToString("N"));

    protected override IBlobStore CreateStore() => new LocalDiskBlobStore(_root);

    public override ValueTask DisposeAsync()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Files_stay_under_the_root_and_no_temp_files_remain()
    {
        await Store.PutAsync("a/b/c.bin", new MemoryStream([1]), cancellationToken: Ct);
        await Assert.ThrowsAnyAsync<Exception>(() => Store.PutAsync("a/b/c.bin", new GeneratedStream(1000, failAfter: 500), cancellationToken: Ct));
        Assert.True(File.Exists(Path.Combine(_root, "data", "a", "b", "c.bin~")));
        Assert.Empty(Directory.GetFiles(Path.Combine(_root, "tmp")));
        Assert.All(Directory.GetFiles(_root, "*", SearchOption.AllDirectories), f => Assert.StartsWith(_root + Path.DirectorySeparatorChar, f));
    }

    [Fact]
    public async Task A_damaged_file_is_a_typed_error_naming_the_blob()
    {
        await Store.PutAsync("hurt", new MemoryStream([1, 2]), cancellationToken: Ct);
        var path = Path.Combine(_root, "data", "hurt~");
        var bytes = await File.ReadAllBytesAsync(path, Ct);
        bytes[0] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes, Ct);
        var e = await Assert.ThrowsAsync<BlobStoreException>(() => Store.GetAsync("hurt", Ct));
        Assert.Contains("'hurt'", e.Message);
        Assert.Contains("magic", e.Message);
    }
}

public sealed class AzureBlobStoreTests : BlobStoreContractTests
{
    private AzureBlobStoreOptions? _options;

    protected override IBlobStore CreateStore()
    {
        _options = Azurite.FastOptions(Azurite.RequireConnectionString());
        return new AzureBlobStore(_options);
    }

    public override async ValueTask DisposeAsync()
    {
        if (_options is null) return;
        try { await new BlobContainerClient(_options.ConnectionString, _options.ContainerName).DeleteIfExistsAsync(); }
        catch (Exception) { /* the outage tests stop the service; nothing to clean there */ }
    }

    [Fact]
    public async Task A_closed_port_is_unavailable_fast_not_a_hang()
    {
        var store = new AzureBlobStore(Azurite.FastOptions(Azurite.ConnectionStringFor(Net.ClosedPort())));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.PutAsync("x", new MemoryStream([1]), cancellationToken: Ct));
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.GetAsync("x", Ct));
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.ExistsAsync("x", Ct));
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.DeleteAsync("x", Ct));
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(async () => { await foreach (var _ in store.ListAsync("", Ct)) { } });
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task Stopping_azurite_mid_download_is_a_typed_error()
    {
        await using var azurite = await AzuriteProcess.StartAsync();
        var store = new AzureBlobStore(Azurite.FastOptions(azurite.ConnectionString));
        await store.PutAsync("big", new GeneratedStream(48L << 20), cancellationToken: Ct);
        await using var download = await store.GetAsync("big", Ct);
        Assert.NotNull(download);
        var buffer = new byte[1 << 16];
        Assert.True(await download.Content.ReadAsync(buffer, Ct) > 0);
        await azurite.KillAsync();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(async () =>
        {
            while (await download.Content.ReadAsync(buffer, Ct) > 0) { }
            // Everything was already buffered: the next request must fail instead.
            await store.GetAsync("big", Ct);
        });
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.PutAsync("after", new MemoryStream([1]), cancellationToken: Ct));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }
}
