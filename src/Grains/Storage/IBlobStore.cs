namespace Actors.Grains.Storage;

/// <summary>
/// A flat namespace of named, immutable-once-written byte blobs (KV snapshots, content-addressed documents).
/// Two backends pass the same contract tests: <see cref="LocalDiskBlobStore"/> (the default) and
/// <see cref="AzureBlobStore"/> (Azure Blob Storage / Azurite).
/// Names are validated by <see cref="BlobNames.Validate"/>: '/'-separated segments of [A-Za-z0-9._-], no "." or "..".
/// Storage failures (network, service down, timeouts) surface as <see cref="BlobStoreUnavailableException"/>.
/// </summary>
public interface IBlobStore
{
    /// <summary>
    /// Writes <paramref name="content"/> (read to its end, never buffered whole) under <paramref name="name"/>,
    /// replacing any existing blob unless <see cref="BlobPutOptions.IfNotExists"/> or <see cref="BlobPutOptions.IfMatch"/>
    /// say otherwise. Readers see either the old blob or the whole new one, never a part.
    /// Throws <see cref="BlobConditionFailedException"/> when IfMatch does not hold (IfNotExists: see <see cref="PutIfNotExistsAsync"/>).
    /// </summary>
    Task<BlobProperties> PutAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes the blob only if no blob has that name (content-addressed documents: a second writer of the same
    /// content loses harmlessly). Returns false, leaving the existing blob untouched, when one exists.
    /// </summary>
    Task<bool> PutIfNotExistsAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Opens the blob for reading, or returns null when it does not exist. Dispose the result.</summary>
    Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Properties of the blob, or null when it does not exist.</summary>
    Task<BlobProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default);

    Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Deletes the blob; returns false when there was none.</summary>
    Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Blobs whose name starts with <paramref name="prefix"/> ("" for all), in ordinal name order.</summary>
    IAsyncEnumerable<BlobProperties> ListAsync(string prefix, CancellationToken cancellationToken = default);
}

/// <summary>Options of one put.</summary>
public sealed class BlobPutOptions
{
    /// <summary>User metadata. Keys: lower-case identifiers [a-z_][a-z0-9_]* (Azure requires identifiers and is case-insensitive); values: printable ASCII.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>A hash of the content chosen by the caller (e.g. "xxh128:…"), stored with the blob and returned in <see cref="BlobProperties.ContentHash"/>.</summary>
    public string? ContentHash { get; init; }

    /// <summary>Only replace the blob when its current ETag is this one (optimistic concurrency).</summary>
    public string? IfMatch { get; init; }
}

/// <summary>What a store knows about one blob.</summary>
public sealed record BlobProperties(
    string Name,
    long Length,
    string ETag,
    DateTimeOffset LastModified,
    string? ContentHash,
    IReadOnlyDictionary<string, string> Metadata);

/// <summary>An open blob: its content stream and its properties. Dispose to release the handle / connection.</summary>
public sealed class BlobDownload(Stream content, BlobProperties properties) : IAsyncDisposable, IDisposable
{
    public Stream Content { get; } = content;
    public BlobProperties Properties { get; } = properties;
    public ValueTask DisposeAsync() => Content.DisposeAsync();
    public void Dispose() => Content.Dispose();
}

/// <summary>Base of the errors a blob store raises on purpose.</summary>
public class BlobStoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The storage service could not be reached or did not answer in time; the operation may be retried later.</summary>
public sealed class BlobStoreUnavailableException(string message, Exception? inner = null) : BlobStoreException(message, inner);

/// <summary>A conditional write lost: the blob exists (if-not-exists) or its ETag changed (if-match).</summary>
public sealed class BlobConditionFailedException(string name, string message, Exception? inner = null) : BlobStoreException(message, inner)
{
    public string BlobName { get; } = name;
}

/// <summary>Blob name and metadata rules shared by every backend, so both behave alike.</summary>
public static class BlobNames
{
    public const int MaxNameLength = 512;
    public const string ContentHashKey = "actors_content_hash";

    /// <summary>Throws ArgumentException naming the offending character / segment unless the name is safe on every backend.</summary>
    public static string Validate(string name, string paramName = "name")
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        if (name.Length == 0) throw new ArgumentException("blob name is empty", paramName);
        if (name.Length > MaxNameLength) throw new ArgumentException($"blob name is {name.Length} chars, over the limit of {MaxNameLength}", paramName);
        var segmentStart = 0;
        for (var i = 0; i <= name.Length; i++)
        {
            if (i == name.Length || name[i] == '/')
            {
                var segment = name.AsSpan(segmentStart, i - segmentStart);
                if (segment.Length == 0) throw new ArgumentException($"blob name '{name}' has an empty segment at offset {segmentStart} (leading, trailing or double '/')", paramName);
                if (segment is "." or "..") throw new ArgumentException($"blob name '{name}' has a '{segment}' segment at offset {segmentStart}", paramName);
                segmentStart = i + 1;
                continue;
            }
            var c = name[i];
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                throw new ArgumentException($"blob name '{name}' has a disallowed character U+{(int)c:X4} at offset {i} (allowed: A-Z a-z 0-9 . _ - and '/' between segments)", paramName);
        }
        return name;
    }

    /// <summary>Validates a listing prefix: like a name, but may be empty or end with '/'.</summary>
    public static string ValidatePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length == 0) return prefix;
        var trimmed = prefix.EndsWith('/') ? prefix[..^1] : prefix;
        // A partial last segment such as "kv/ses" or "kv/." is a legal prefix; check characters and the earlier segments.
        var lastSlash = trimmed.LastIndexOf('/');
        if (lastSlash >= 0) Validate(trimmed[..lastSlash], nameof(prefix));
        foreach (var c in trimmed.AsSpan(lastSlash + 1))
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                throw new ArgumentException($"blob prefix '{prefix}' has a disallowed character U+{(int)c:X4}", nameof(prefix));
        return prefix;
    }

    public static void ValidateMetadata(IReadOnlyDictionary<string, string>? metadata)
    {
        if (metadata is null) return;
        foreach (var (key, value) in metadata)
        {
            if (key.Length == 0 || !(char.IsAsciiLetterLower(key[0]) || key[0] == '_') || !key.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
                throw new ArgumentException($"metadata key '{key}' must match [a-z_][a-z0-9_]*", nameof(metadata));
            if (key == ContentHashKey) throw new ArgumentException($"metadata key '{key}' is reserved (use BlobPutOptions.ContentHash)", nameof(metadata));
            ValidateValue(key, value);
        }
    }

    public static void ValidateValue(string key, string? value)
    {
        ArgumentNullException.ThrowIfNull(value, key);
        for (var i = 0; i < value.Length; i++)
            if (value[i] is < ' ' or > '~')
                throw new ArgumentException($"metadata '{key}' has a non-printable-ASCII character U+{(int)value[i]:X4} at offset {i}", nameof(value));
    }
}
