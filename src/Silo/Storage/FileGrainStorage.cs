using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace Actors.Silo.Storage;

/// <summary>
/// Grain storage on local disk, the embedded default. One file per grain:
/// <c>{RootDirectory}/{stateName}/{escaped grain id}.json</c> holding <c>{"eTag": "...", "state": {...}}</c>.
/// Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the old file, so a
/// crash leaves either the old or the new state, never a partial file. ETags are checked on write and clear
/// (optimistic concurrency, as every Orleans storage provider does): a mismatch throws InconsistentStateException.
/// </summary>
public sealed partial class FileGrainStorage : IGrainStorage
{
    private readonly string _name;
    private readonly FileGrainStorageOptions _options;
    private readonly ILogger<FileGrainStorage> _logger;
    // Serializes the check-etag-then-rename of one file inside this process (activations are unique, but a stale
    // activation during a silo failover may still write).
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _fileLocks = new(StringComparer.Ordinal);

    public FileGrainStorage(string name, FileGrainStorageOptions options, ILogger<FileGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.RootDirectory))
            throw new ArgumentException($"grain storage '{name}': FileGrainStorageOptions.RootDirectory is not set", nameof(options));
        _name = name;
        _options = options;
        _logger = logger;
        Directory.CreateDirectory(options.RootDirectory);
    }

    /// <summary>Path of the file that holds <paramref name="grainId"/>'s state <paramref name="stateName"/>.</summary>
    public static string GetFilePath(string rootDirectory, string stateName, GrainId grainId)
    {
        var name = Uri.EscapeDataString(grainId.ToString());
        if (name.Length > FileGrainStorageOptions.MaxFileNameLength)
            name = string.Concat(name.AsSpan(0, 64), "-", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(grainId.ToString()))));
        return Path.Combine(rootDirectory, Uri.EscapeDataString(stateName), name + ".json");
    }

    public string GetFilePath(string stateName, GrainId grainId) => GetFilePath(_options.RootDirectory, stateName, grainId);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = GetFilePath(stateName, grainId);
        var stored = await TryReadAsync<T>(path, readState: true).ConfigureAwait(false);
        if (stored is null)
        {
            grainState.State = CreateDefault<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }
        grainState.State = stored.Value.State!;
        grainState.ETag = stored.Value.ETag;
        grainState.RecordExists = true;
        LogRead(_name, grainId, path);
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = GetFilePath(stateName, grainId);
        var gate = _fileLocks.GetOrAdd(path, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            CheckETag(stateName, grainId, path, await ReadETagAsync<T>(path).ConfigureAwait(false), grainState.ETag);

            var eTag = Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temp = $"{path}.{Guid.NewGuid():N}.tmp";
            try
            {
                await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous))
                {
                    await using (var writer = new Utf8JsonWriter(stream))
                    {
                        writer.WriteStartObject();
                        writer.WriteString("eTag", eTag);
                        writer.WritePropertyName("state");
                        JsonSerializer.Serialize(writer, grainState.State, _options.JsonOptions);
                        writer.WriteEndObject();
                    }
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, path, overwrite: true); // rename(2): atomic on one file system
            }
            catch
            {
                TryDelete(temp);
                throw;
            }
            grainState.ETag = eTag;
            grainState.RecordExists = true;
            LogWritten(_name, grainId, path);
        }
        finally
        {
            gate.Release();
        }
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = GetFilePath(stateName, grainId);
        var gate = _fileLocks.GetOrAdd(path, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            var current = await TryReadAsync<T>(path, readState: false).ConfigureAwait(false);
            CheckETag(stateName, grainId, path, current?.ETag, grainState.ETag);
            if (current is not null) File.Delete(path);
            grainState.State = CreateDefault<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            LogCleared(_name, grainId, path);
        }
        finally
        {
            gate.Release();
        }
    }

    private void CheckETag(string stateName, GrainId grainId, string path, string? stored, string? expected)
    {
        if (string.Equals(stored, expected, StringComparison.Ordinal)) return;
        LogConflict(_name, grainId, stored, expected);
        throw new InconsistentStateException(
            $"grain storage '{_name}': state '{stateName}' of {grainId} in '{path}' has ETag {stored ?? "(none)"} but the writer expected {expected ?? "(none)"}; it was changed by another activation",
            stored ?? "", expected ?? "");
    }

    /// <summary>
    /// The stored ETag, or null when there is no file. The ETag is written first, so the first block of the file
    /// is enough (a session's state holds every token id and may be megabytes); anything else parses the whole file.
    /// </summary>
    private async Task<string?> ReadETagAsync<T>(string path)
    {
        var head = new byte[4096];
        int length;
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.Asynchronous);
            length = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        if (TryReadLeadingETag(head.AsSpan(0, length)) is { } eTag) return eTag;
        return (await TryReadAsync<T>(path, readState: false).ConfigureAwait(false))?.ETag;
    }

    private static string? TryReadLeadingETag(ReadOnlySpan<byte> head)
    {
        try
        {
            var reader = new Utf8JsonReader(head, isFinalBlock: false, state: default);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            if (!reader.Read() || reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("eTag"u8)) return null;
            if (!reader.Read() || reader.TokenType != JsonTokenType.String) return null;
            var value = reader.GetString();
            return string.IsNullOrEmpty(value) ? null : value;
        }
        catch (JsonException) { return null; }
    }

    private async Task<(string ETag, T? State)?> TryReadAsync<T>(string path, bool readState)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }

        try
        {
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Corrupt(path, $"top level is a JSON {root.ValueKind}, expected an object");
            if (!root.TryGetProperty("eTag", out var eTagElement) || eTagElement.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(eTagElement.GetString()))
                throw Corrupt(path, "field 'eTag' is missing or not a non-empty string");
            if (!root.TryGetProperty("state", out var stateElement))
                throw Corrupt(path, "field 'state' is missing");
            var state = readState ? DeserializeState<T>(path, stateElement) : default;
            return (eTagElement.GetString()!, state);
        }
        catch (JsonException e)
        {
            throw Corrupt(path, $"invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {e.Message}", e);
        }
    }

    private T DeserializeState<T>(string path, JsonElement element)
    {
        try
        {
            var state = element.Deserialize<T>(_options.JsonOptions);
            return state ?? throw Corrupt(path, $"field 'state' is null, expected a {typeof(T).Name}");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
        {
            var where = e is JsonException { Path: { } p } ? $" at 'state{p.TrimStart('$')}'" : "";
            throw Corrupt(path, $"field 'state' is not a valid {typeof(T).Name}{where}: {e.Message}", e);
        }
    }

    private InvalidDataException Corrupt(string path, string what, Exception? inner = null)
    {
        LogCorrupt(_name, path, what);
        return new InvalidDataException($"grain storage '{_name}': state file '{path}' is corrupt: {what}", inner);
    }

    private static T CreateDefault<T>()
    {
        var type = typeof(T);
        if (type.IsValueType || type.GetConstructor(Type.EmptyTypes) is not null)
            return Activator.CreateInstance<T>();
        return default!;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [LoggerMessage(1, LogLevel.Trace, "Storage {StorageName}: read {GrainId} from {Path}")]
    private partial void LogRead(string storageName, GrainId grainId, string path);

    [LoggerMessage(2, LogLevel.Trace, "Storage {StorageName}: wrote {GrainId} to {Path}")]
    private partial void LogWritten(string storageName, GrainId grainId, string path);

    [LoggerMessage(3, LogLevel.Debug, "Storage {StorageName}: cleared {GrainId} at {Path}")]
    private partial void LogCleared(string storageName, GrainId grainId, string path);

    [LoggerMessage(4, LogLevel.Warning, "Storage {StorageName}: ETag conflict on {GrainId}: stored {StoredETag}, expected {ExpectedETag}")]
    private partial void LogConflict(string storageName, GrainId grainId, string? storedETag, string? expectedETag);

    [LoggerMessage(5, LogLevel.Error, "Storage {StorageName}: corrupt state file {Path}: {Problem}")]
    private partial void LogCorrupt(string storageName, string path, string problem);
}
