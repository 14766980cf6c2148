using Actors.Grains.Storage;
using Actors.Silo;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;

namespace Actors.Grains.Tests.Storage;

/// <summary>The snapshot store's answers on each backend: loaded, missing, corrupt (deleted), foreign (deleted).</summary>
public abstract class KvSnapshotStoreTests : IAsyncDisposable
{
    private KvSnapshotStore? _store;
    protected KvSnapshotStore Store => _store ??= new KvSnapshotStore(CreateBlobStore());
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;
    protected static readonly KvSnapshotExpectation Expect = new("llama-tiny@abc123", "llama3:theta=500000,factor=8");

    protected abstract IBlobStore CreateBlobStore();
    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private Task SaveAsync(string session, KvSnapshotHeader h) =>
        Store.SaveAsync(session, h, async (w, ct) => { for (var p = 0; p < h.PageCount; p++) await w.WritePageAsync(KvSnapshotTests.Page(h, p), ct); }, Ct);

    [Theory]
    [InlineData(KvDType.F32)]
    [InlineData(KvDType.BF16)]
    public async Task Saved_snapshot_loads_back_page_for_page(KvDType dtype)
    {
        // 40 pages of 64 KiB (f32): several MB through the pipe, more than one upload block on Azure.
        var h = KvSnapshotTests.Header(dtype, 16 * 40 - 3, pageSize: 16, layers: 4, kvHeads: 2, headDim: 64);
        await SaveAsync("session-1", h);
        var (result, pages) = await Store.TryLoadAllAsync("session-1", Expect, Ct);
        Assert.True(result.Loaded, result.Reason);
        Assert.Equal(h.TokenIds, result.Header!.TokenIds);
        Assert.Equal(40, pages.Count);
        for (var p = 0; p < 40; p++) Assert.Equal(KvSnapshotTests.Page(h, p), pages[p]);
    }

    [Fact]
    public async Task Saving_a_stream_and_odd_session_ids_work()
    {
        var h = KvSnapshotTests.Header(KvDType.BF16, 7);
        await Store.SaveAsync("user@example.com/chat #1", new MemoryStream(await KvSnapshotTests.EncodeAsync(h)), Ct);
        Assert.StartsWith("kv/h-", KvSnapshotStore.BlobName("user@example.com/chat #1"));
        Assert.Equal("kv/s-abc-1.kvs", KvSnapshotStore.BlobName("abc-1"));
        var (result, pages) = await Store.TryLoadAllAsync("user@example.com/chat #1", Expect, Ct);
        Assert.True(result.Loaded, result.Reason);
        Assert.Equal(2, pages.Count);
    }

    [Fact]
    public async Task Missing_snapshot_is_missing()
    {
        var (result, pages) = await Store.TryLoadAllAsync("nobody", Expect, Ct);
        Assert.Equal(KvSnapshotLoadStatus.Missing, result.Status);
        Assert.Null(result.Header);
        Assert.Empty(pages);
    }

    [Theory]
    [InlineData("flip-header")]
    [InlineData("flip-payload")]
    [InlineData("flip-checksum")]
    [InlineData("truncate")]
    [InlineData("garbage")]
    public async Task Corrupt_snapshot_is_reported_and_deleted(string damage)
    {
        var bytes = await KvSnapshotTests.EncodeAsync(KvSnapshotTests.Header(KvDType.F32, 10));
        switch (damage)
        {
            case "flip-header": bytes[20] ^= 1; break;
            case "flip-payload": bytes[^100] ^= 1; break;
            case "flip-checksum": bytes[^1] ^= 1; break;
            case "truncate": bytes = bytes[..^40]; break;
            case "garbage": bytes = "not a snapshot at all, just text long enough for a header"u8.ToArray(); break;
        }
        await Store.Blobs.PutAsync(KvSnapshotStore.BlobName("s"), new MemoryStream(bytes), cancellationToken: Ct);
        var delivered = 0;
        var result = await Store.TryLoadAsync("s", Expect, (_, _, _, _) => { delivered++; return ValueTask.CompletedTask; }, Ct);
        Assert.Equal(KvSnapshotLoadStatus.Corrupt, result.Status);
        Assert.Contains(KvSnapshotStore.BlobName("s"), result.Reason);
        Assert.True(delivered < 3, "the last page must never be delivered from a snapshot that fails its checksum");
        Assert.False(await Store.ExistsAsync("s", Ct));
    }

    [Fact]
    public async Task Foreign_snapshot_is_reported_and_deleted()
    {
        await SaveAsync("f", KvSnapshotTests.Header(KvDType.F32, 5, model: "mistral-7b@v0.3"));
        var (result, _) = await Store.TryLoadAllAsync("f", Expect, Ct);
        Assert.Equal(KvSnapshotLoadStatus.Foreign, result.Status);
        Assert.Contains("mistral-7b@v0.3", result.Reason);
        Assert.False(await Store.ExistsAsync("f", Ct));

        await SaveAsync("g", KvSnapshotTests.Header(KvDType.F32, 5, rope: "default:theta=10000"));
        Assert.Equal(KvSnapshotLoadStatus.Foreign, (await Store.TryLoadAllAsync("g", Expect, Ct)).Result.Status);
    }

    [Fact]
    public async Task A_failing_page_producer_keeps_the_previous_snapshot()
    {
        var h = KvSnapshotTests.Header(KvDType.F32, 12);
        await SaveAsync("p", h);
        var bigger = KvSnapshotTests.Header(KvDType.F32, 40);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => Store.SaveAsync("p", bigger, async (w, ct) =>
        {
            await w.WritePageAsync(KvSnapshotTests.Page(bigger, 0), ct);
            throw new InvalidOperationException("device lost");
        }, Ct));
        Assert.Equal("device lost", e.Message);
        var (result, pages) = await Store.TryLoadAllAsync("p", Expect, Ct);
        Assert.True(result.Loaded, result.Reason);
        Assert.Equal(12, result.Header!.TokenCount);
        Assert.Equal(3, pages.Count);
    }
}

public sealed class LocalDiskKvSnapshotStoreTests : KvSnapshotStoreTests
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-kv-" + Guid.NewGuid().ToString("N"));
    protected override IBlobStore CreateBlobStore() => new LocalDiskBlobStore(_root);

    public override ValueTask DisposeAsync()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
        return ValueTask.CompletedTask;
    }
}

public sealed class AzureKvSnapshotStoreTests : KvSnapshotStoreTests
{
    private AzureBlobStoreOptions? _options;

    protected override IBlobStore CreateBlobStore()
    {
        _options = Azurite.FastOptions(Azurite.RequireConnectionString());
        return new AzureBlobStore(_options);
    }

    public override async ValueTask DisposeAsync()
    {
        if (_options is not null) await new BlobContainerClient(_options.ConnectionString, _options.ContainerName).DeleteIfExistsAsync();
    }

    [Fact]
    public async Task Storage_outage_is_unavailable_and_keeps_the_blob()
    {
        await using var azurite = await AzuriteProcess.StartAsync();
        var store = new KvSnapshotStore(new AzureBlobStore(Azurite.FastOptions(azurite.ConnectionString, "outage")));
        var h = KvSnapshotTests.Header(KvDType.F32, 10);
        await store.SaveAsync("o", new MemoryStream(await KvSnapshotTests.EncodeAsync(h)), Ct);
        Assert.True((await store.TryLoadAllAsync("o", Expect, Ct)).Result.Loaded);

        await azurite.KillAsync();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (result, pages) = await store.TryLoadAllAsync("o", Expect, Ct);
        Assert.Equal(KvSnapshotLoadStatus.Unavailable, result.Status);
        Assert.Empty(pages);
        var encoded = await KvSnapshotTests.EncodeAsync(h);
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => store.SaveAsync("o", new MemoryStream(encoded), Ct));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }
}

public sealed class BlobStoreRegistrationTests
{
    [Fact]
    public void Silo_options_read_the_connection_string_from_env_and_args()
    {
        var env = new Dictionary<string, string> { ["ACTORS_BLOB_CONNECTION_STRING"] = "from-env", ["ACTORS_HOME"] = "/data" };
        Assert.Equal("from-env", ActorsSiloOptions.FromArgs([], k => env.GetValueOrDefault(k)).BlobConnectionString);
        Assert.Equal("from-args", ActorsSiloOptions.FromArgs(["--blob-connection-string", "from-args"], k => env.GetValueOrDefault(k)).BlobConnectionString);
        var local = ActorsSiloOptions.FromArgs([], k => k == "ACTORS_HOME" ? "/data" : null);
        Assert.Null(local.BlobConnectionString);
        Assert.Equal(Path.Combine("/data", "blobs"), local.BlobStorageDirectory);
    }

    [Fact]
    public void Registration_picks_the_backend_by_connection_string()
    {
        var dir = Path.Combine(Path.GetTempPath(), "actors-reg-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var local = new ServiceCollection().AddActorsBlobStore(null, dir).BuildServiceProvider();
            var disk = Assert.IsType<LocalDiskBlobStore>(local.GetRequiredService<IBlobStore>());
            Assert.Equal(dir, disk.RootDirectory);
            Assert.Same(disk, local.GetRequiredService<KvSnapshotStore>().Blobs);

            using var azure = new ServiceCollection().AddActorsBlobStore(Azurite.ConnectionStringFor(10000), dir).BuildServiceProvider();
            Assert.IsType<AzureBlobStore>(azure.GetRequiredService<IBlobStore>());

            using var bad = new ServiceCollection().AddActorsBlobStore("not a connection string", dir).BuildServiceProvider();
            Assert.Throws<ArgumentException>(() => bad.GetRequiredService<IBlobStore>());
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
