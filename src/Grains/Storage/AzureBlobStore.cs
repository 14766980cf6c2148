using System.Runtime.CompilerServices;
using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Actors.Grains.Storage;

/// <summary>How <see cref="AzureBlobStore"/> reaches its container.</summary>
public sealed class AzureBlobStoreOptions
{
    /// <summary>A storage connection string (for Azurite: the devstoreaccount1 development string).</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Container holding every blob of this cluster; created when missing. 3-63 chars of [a-z0-9-].</summary>
    public string ContainerName { get; set; } = "actors";

    /// <summary>Retries per request after the first try (Azure.Core exponential back-off).</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First back-off delay.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(0.8);

    /// <summary>Limit on one network operation (one request, or one read of a download), so an outage cannot hang a caller.</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(100);
}

/// <summary>
/// <see cref="IBlobStore"/> on Azure Blob Storage (block blobs). Uploads stage blocks and commit them in one
/// request, so readers see the old blob or the new one; the content hash rides in metadata
/// (<see cref="BlobNames.ContentHashKey"/>); conditions map to If-None-Match: * and If-Match: ETag.
/// Every network failure (refused, reset, timeout, 5xx, exhausted retries) becomes <see cref="BlobStoreUnavailableException"/>.
/// </summary>
public sealed class AzureBlobStore : IBlobStore
{
    private readonly BlobContainerClient _container;
    private readonly Lock _createLock = new();
    private Task? _created;

    public AzureBlobStore(AzureBlobStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ConnectionString)) throw new ArgumentException("AzureBlobStoreOptions.ConnectionString is empty", nameof(options));
        if (options.ContainerName is not { Length: >= 3 and <= 63 } c || !c.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch == '-'))
            throw new ArgumentException($"AzureBlobStoreOptions.ContainerName '{options.ContainerName}' must be 3-63 chars of [a-z0-9-]", nameof(options));
        var clientOptions = new BlobClientOptions();
        clientOptions.Retry.MaxRetries = options.MaxRetries;
        clientOptions.Retry.Delay = options.RetryDelay;
        clientOptions.Retry.MaxDelay = options.RetryDelay * 8;
        clientOptions.Retry.Mode = RetryMode.Exponential;
        clientOptions.Retry.NetworkTimeout = options.NetworkTimeout;
        try { _container = new BlobContainerClient(options.ConnectionString, options.ContainerName, clientOptions); }
        catch (FormatException e) { throw new ArgumentException($"AzureBlobStoreOptions.ConnectionString is not a storage connection string: {e.Message}", nameof(options), e); }
        ContainerName = options.ContainerName;
    }

    public string ContainerName { get; }

    /// <summary>Creates the container once (again after a failure).</summary>
    private Task EnsureContainerAsync(CancellationToken ct)
    {
        lock (_createLock)
        {
            if (_created is { IsFaulted: false, IsCanceled: false }) return _created;
            return _created = _container.CreateIfNotExistsAsync(cancellationToken: CancellationToken.None);
        }
    }

    public Task<BlobProperties> PutAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default) =>
        PutCoreAsync(name, content, options, ifNotExists: false, cancellationToken)!;

    public async Task<bool> PutIfNotExistsAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default) =>
        await PutCoreAsync(name, content, options, ifNotExists: true, cancellationToken) is not null;

    private async Task<BlobProperties?> PutCoreAsync(string name, Stream content, BlobPutOptions? options, bool ifNotExists, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(content);
        BlobNames.Validate(name);
        BlobNames.ValidateMetadata(options?.Metadata);
        var metadata = new Dictionary<string, string>(options?.Metadata ?? new Dictionary<string, string>());
        if (options?.ContentHash is { } hash) { BlobNames.ValidateValue("ContentHash", hash); metadata[BlobNames.ContentHashKey] = hash; }
        var conditions = ifNotExists ? new BlobRequestConditions { IfNoneMatch = ETag.All }
            : options?.IfMatch is { } m ? new BlobRequestConditions { IfMatch = new ETag(m) } : null;
        var counting = new CountingStream(content);
        try
        {
            await EnsureContainerAsync(ct).WaitAsync(ct);
            var response = await _container.GetBlobClient(name).UploadAsync(counting, new BlobUploadOptions
            {
                Metadata = metadata,
                Conditions = conditions,
                TransferOptions = new Azure.Storage.StorageTransferOptions { InitialTransferSize = 8 << 20, MaximumTransferSize = 8 << 20, MaximumConcurrency = 4 },
            }, ct);
            return new BlobProperties(name, counting.Count, response.Value.ETag.ToString(), response.Value.LastModified, options?.ContentHash, Strip(metadata));
        }
        catch (RequestFailedException e) when (ifNotExists && (e.Status == 409 || e.Status == 412))
        {
            return null;
        }
        catch (RequestFailedException e) when (e.Status == 412)
        {
            throw new BlobConditionFailedException(name, $"blob '{name}': if-match ETag {options?.IfMatch} does not hold ({e.ErrorCode})", e);
        }
        catch (Exception e) when (Unavailable(e, ct))
        {
            throw new BlobStoreUnavailableException($"blob '{name}': upload to container '{ContainerName}' failed: {e.Message}", e);
        }
    }

    public async Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        BlobNames.Validate(name);
        try
        {
            var response = await _container.GetBlobClient(name).DownloadStreamingAsync(cancellationToken: cancellationToken);
            var d = response.Value.Details;
            d.Metadata.TryGetValue(BlobNames.ContentHashKey, out var hash);
            var props = new BlobProperties(name, d.ContentLength, d.ETag.ToString(), d.LastModified, hash, Strip(d.Metadata));
            return new BlobDownload(new TranslatingStream(response.Value.Content, name, ContainerName), props);
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; }
        catch (Exception e) when (Unavailable(e, cancellationToken))
        {
            throw new BlobStoreUnavailableException($"blob '{name}': download from container '{ContainerName}' failed: {e.Message}", e);
        }
    }

    public async Task<BlobProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default)
    {
        BlobNames.Validate(name);
        try
        {
            var p = (await _container.GetBlobClient(name).GetPropertiesAsync(cancellationToken: cancellationToken)).Value;
            p.Metadata.TryGetValue(BlobNames.ContentHashKey, out var hash);
            return new BlobProperties(name, p.ContentLength, p.ETag.ToString(), p.LastModified, hash, Strip(p.Metadata));
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; }
        catch (Exception e) when (Unavailable(e, cancellationToken))
        {
            throw new BlobStoreUnavailableException($"blob '{name}': properties from container '{ContainerName}' failed: {e.Message}", e);
        }
    }

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) =>
        await GetPropertiesAsync(name, cancellationToken) is not null;

    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        BlobNames.Validate(name);
        try { return (await _container.GetBlobClient(name).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken)).Value; }
        catch (RequestFailedException e) when (e.Status == 404) { return false; } // container itself missing
        catch (Exception e) when (Unavailable(e, cancellationToken))
        {
            throw new BlobStoreUnavailableException($"blob '{name}': delete in container '{ContainerName}' failed: {e.Message}", e);
        }
    }

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        BlobNames.ValidatePrefix(prefix);
        var pages = _container.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, prefix.Length == 0 ? null : prefix, cancellationToken).AsPages().GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                Page<BlobItem> page;
                try
                {
                    if (!await pages.MoveNextAsync()) yield break;
                    page = pages.Current;
                }
                catch (RequestFailedException e) when (e.Status == 404) { yield break; } // no container yet: nothing stored
                catch (Exception e) when (Unavailable(e, cancellationToken))
                {
                    throw new BlobStoreUnavailableException($"listing '{prefix}' in container '{ContainerName}' failed: {e.Message}", e);
                }
                foreach (var item in page.Values)
                {
                    var metadata = item.Metadata ?? new Dictionary<string, string>();
                    metadata.TryGetValue(BlobNames.ContentHashKey, out var hash);
                    yield return new BlobProperties(item.Name, item.Properties.ContentLength ?? 0, item.Properties.ETag?.ToString() ?? "",
                        item.Properties.LastModified ?? default, hash, Strip(metadata));
                }
            }
        }
        finally { await pages.DisposeAsync(); }
    }

    private static Dictionary<string, string> Strip(IDictionary<string, string> metadata)
    {
        var d = new Dictionary<string, string>(metadata.Count, StringComparer.Ordinal);
        foreach (var (k, v) in metadata)
            if (!string.Equals(k, BlobNames.ContentHashKey, StringComparison.OrdinalIgnoreCase)) d[k] = v;
        return d;
    }

    /// <summary>Whether an exception means the service could not be reached or answered with a server-side failure.</summary>
    internal static bool Unavailable(Exception e, CancellationToken ct) => e switch
    {
        OperationCanceledException => !ct.IsCancellationRequested, // Azure.Core's network timeout, not the caller's cancellation
        RequestFailedException r => r.Status is 0 or 408 or >= 500,
        AggregateException => true, // Azure.Core's "retry failed after N tries"
        HttpRequestException or IOException or System.Net.Sockets.SocketException => true,
        _ => false,
    };

    /// <summary>Counts the bytes Azure reads from the caller's stream, for <see cref="BlobProperties.Length"/>.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) { var n = inner.Read(buffer, offset, count); Count += n; return n; }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) { var n = await inner.ReadAsync(buffer, cancellationToken); Count += n; return n; }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A download stream whose network failures mid-read become <see cref="BlobStoreUnavailableException"/>.</summary>
    private sealed class TranslatingStream(Stream inner, string name, string container) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count)
        {
            try { return inner.Read(buffer, offset, count); }
            catch (Exception e) when (Unavailable(e, default)) { throw Wrap(e); }
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try { return await inner.ReadAsync(buffer, cancellationToken); }
            catch (Exception e) when (Unavailable(e, cancellationToken)) { throw Wrap(e); }
        }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        private BlobStoreUnavailableException Wrap(Exception e) => new($"blob '{name}': reading from container '{container}' failed: {e.Message}", e);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
    }
}
