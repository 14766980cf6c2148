using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Actors.Grains.Storage;

/// <summary>
/// Blobs as files under a root directory: {root}/data/{name}~ (the '~', never legal in a name, keeps blob "a" and
/// the folder of blob "a/b" apart). Each file is [8-byte magic "ACTBLOB1"][u32 LE meta length][meta JSON][content],
/// so content and metadata change together in one rename. Writes go to {root}/tmp first, then rename into place:
/// a reader sees the old blob or the whole new one. If-not-exists and if-match are serialised inside this process (one
/// silo per data dir); across processes if-not-exists relies on File.Move without overwrite.
/// </summary>
public sealed class LocalDiskBlobStore : IBlobStore
{
    private static ReadOnlySpan<byte> Magic => "ACTBLOB1"u8;
    private const int MaxMetaLength = 1 << 20;
    private const string FileSuffix = "~";

    private readonly string _dataRoot;
    private readonly string _tmpRoot;
    private readonly SemaphoreSlim _conditionalLock = new(1, 1);

    public LocalDiskBlobStore(string rootDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootDirectory);
        RootDirectory = Path.GetFullPath(rootDirectory);
        _dataRoot = Path.Combine(RootDirectory, "data");
        _tmpRoot = Path.Combine(RootDirectory, "tmp");
        Directory.CreateDirectory(_dataRoot);
        Directory.CreateDirectory(_tmpRoot);
    }

    public string RootDirectory { get; }

    private sealed record Meta(string ETag, string? ContentHash, Dictionary<string, string> Metadata);

    /// <summary>The file of a (validated) name, checked to lie under the data root.</summary>
    private string PathOf(string name)
    {
        BlobNames.Validate(name);
        var full = Path.GetFullPath(Path.Combine(_dataRoot, name.Replace('/', Path.DirectorySeparatorChar) + FileSuffix));
        if (!full.StartsWith(_dataRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ArgumentException($"blob name '{name}' resolves outside the store root {_dataRoot}", nameof(name));
        return full;
    }

    public Task<BlobProperties> PutAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default) =>
        PutCoreAsync(name, content, options, ifNotExists: false, cancellationToken)!;

    public async Task<bool> PutIfNotExistsAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default) =>
        await PutCoreAsync(name, content, options, ifNotExists: true, cancellationToken) is not null;

    private async Task<BlobProperties?> PutCoreAsync(string name, Stream content, BlobPutOptions? options, bool ifNotExists, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(content);
        var path = PathOf(name);
        BlobNames.ValidateMetadata(options?.Metadata);
        if (options?.ContentHash is { } h) BlobNames.ValidateValue("ContentHash", h);
        var meta = new Meta(Guid.NewGuid().ToString("N"), options?.ContentHash, new Dictionary<string, string>(options?.Metadata ?? new Dictionary<string, string>()));
        var tmp = Path.Combine(_tmpRoot, Guid.NewGuid().ToString("N"));
        try
        {
            await using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var metaBytes = JsonSerializer.SerializeToUtf8Bytes(meta);
                var prefix = new byte[Magic.Length + 4];
                Magic.CopyTo(prefix);
                BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(Magic.Length), metaBytes.Length);
                await file.WriteAsync(prefix, ct);
                await file.WriteAsync(metaBytes, ct);
                await content.CopyToAsync(file, 1 << 20, ct);
                await file.FlushAsync(ct);
                // The rename must not publish a file whose bytes are still only in cache. fsync of a KV snapshot (~1 GB
                // per 8K-token session) takes seconds: off the caller's thread, which is an Orleans scheduler thread when a
                // grain saves (a deactivation wave of 32 sessions held scheduler threads 1-3 s each on an H200 machine).
                await Task.Run(() => file.Flush(flushToDisk: true), ct);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (ifNotExists)
            {
                // File.Move without overwrite is atomic only where .NET can use link(2); where the filesystem refuses
                // hard links it checks and renames, and two writers could both win (seen on CI). Within this process
                // (one silo per data directory) the lock makes check-and-move one step.
                await _conditionalLock.WaitAsync(ct);
                try
                {
                    if (File.Exists(path)) return null;
                    try { File.Move(tmp, path, overwrite: false); }
                    catch (IOException) when (File.Exists(path)) { return null; }
                }
                finally { _conditionalLock.Release(); }
            }
            else if (options?.IfMatch is { } ifMatch)
            {
                await _conditionalLock.WaitAsync(ct);
                try
                {
                    var current = File.Exists(path) ? ReadProperties(name, path) : null;
                    if (current?.ETag != ifMatch)
                        throw new BlobConditionFailedException(name, $"blob '{name}': if-match ETag {ifMatch} does not hold (current: {current?.ETag ?? "none"})");
                    File.Move(tmp, path, overwrite: true);
                }
                finally { _conditionalLock.Release(); }
            }
            else
            {
                File.Move(tmp, path, overwrite: true);
            }
            return ReadProperties(name, path);
        }
        catch (IOException e)
        {
            throw new BlobStoreException($"blob '{name}': writing {path} failed: {e.Message}", e);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan); }
        catch (FileNotFoundException) { return Task.FromResult<BlobDownload?>(null); }
        catch (DirectoryNotFoundException) { return Task.FromResult<BlobDownload?>(null); }
        try
        {
            var (meta, contentStart) = ReadMeta(name, path, file);
            var props = ToProperties(name, path, meta, file.Length - contentStart);
            return Task.FromResult<BlobDownload?>(new BlobDownload(new SliceStream(file, contentStart), props));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public Task<BlobProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        try { return Task.FromResult<BlobProperties?>(ReadProperties(name, path)); }
        catch (FileNotFoundException) { return Task.FromResult<BlobProperties?>(null); }
        catch (DirectoryNotFoundException) { return Task.FromResult<BlobProperties?>(null); }
    }

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(File.Exists(PathOf(name)));

    public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        if (!File.Exists(path)) return Task.FromResult(false);
        File.Delete(path);
        return Task.FromResult(true);
    }

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        BlobNames.ValidatePrefix(prefix);
        // Start at the deepest complete folder of the prefix instead of walking the whole store.
        var lastSlash = prefix.LastIndexOf('/');
        var startDir = lastSlash < 0 ? _dataRoot : Path.Combine(_dataRoot, prefix[..lastSlash].Replace('/', Path.DirectorySeparatorChar));
        if (!Directory.Exists(startDir)) yield break;
        var names = new List<(string Name, string Path)>();
        foreach (var file in Directory.EnumerateFiles(startDir, "*" + FileSuffix, SearchOption.AllDirectories))
        {
            var name = Path.GetRelativePath(_dataRoot, file)[..^FileSuffix.Length].Replace(Path.DirectorySeparatorChar, '/');
            if (name.StartsWith(prefix, StringComparison.Ordinal)) names.Add((name, file));
        }
        names.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        foreach (var (name, file) in names)
        {
            cancellationToken.ThrowIfCancellationRequested();
            BlobProperties? props;
            try { props = ReadProperties(name, file); }
            catch (FileNotFoundException) { props = null; } // deleted while listing
            if (props is not null) yield return props;
        }
        await Task.CompletedTask;
    }

    private BlobProperties ReadProperties(string name, string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        var (meta, contentStart) = ReadMeta(name, path, file);
        return ToProperties(name, path, meta, file.Length - contentStart);
    }

    private static BlobProperties ToProperties(string name, string path, Meta meta, long length) =>
        new(name, length, meta.ETag, File.GetLastWriteTimeUtc(path), meta.ContentHash, meta.Metadata);

    private static (Meta Meta, long ContentStart) ReadMeta(string name, string path, FileStream file)
    {
        Span<byte> prefix = stackalloc byte[12];
        if (file.Length < prefix.Length || file.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false) < prefix.Length)
            throw new BlobStoreException($"blob '{name}' ({path}): file is {file.Length} bytes, shorter than its 12-byte header");
        if (!prefix[..8].SequenceEqual(Magic))
            throw new BlobStoreException($"blob '{name}' ({path}): bad magic at offset 0 (not an Actors blob file)");
        var metaLength = BinaryPrimitives.ReadInt32LittleEndian(prefix[8..]);
        if (metaLength is < 2 or > MaxMetaLength || 12L + metaLength > file.Length)
            throw new BlobStoreException($"blob '{name}' ({path}): meta length {metaLength} at offset 8 is out of range for a {file.Length}-byte file");
        var metaBytes = new byte[metaLength];
        file.ReadExactly(metaBytes);
        Meta? meta;
        try { meta = JsonSerializer.Deserialize<Meta>(metaBytes); }
        catch (JsonException e) { throw new BlobStoreException($"blob '{name}' ({path}): meta JSON at offset 12 is invalid: {e.Message}", e); }
        if (meta is null || meta.ETag is null) throw new BlobStoreException($"blob '{name}' ({path}): meta JSON at offset 12 lacks an ETag");
        return (meta with { Metadata = meta.Metadata ?? [] }, 12 + metaLength);
    }

    /// <summary>A read-only view of a file from an offset to its end, so callers see only the content.</summary>
    private sealed class SliceStream(FileStream inner, long start) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length - start;
        public override long Position { get => inner.Position - start; set => inner.Position = start + value; }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => origin switch
        {
            SeekOrigin.Begin => inner.Seek(start + offset, SeekOrigin.Begin) - start,
            SeekOrigin.Current => inner.Seek(offset, SeekOrigin.Current) - start,
            _ => inner.Seek(offset, SeekOrigin.End) - start,
        };
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
