using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Actors.Engine.Model;

/// <summary>
/// One .safetensors file, memory-mapped read-only. Layout: u64 little-endian header length N, N bytes of JSON
/// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data region;
/// offsets are relative to the data region. The header is untrusted: its length, every dtype, shape and offset are
/// checked before anything is read, and every error names the file and the tensor or field.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the reference implementation's limit is 100 MB as well).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;      // start of the file in memory
    readonly long _dataStart;  // 8 + header length
    readonly Dictionary<string, SafeTensorInfo> _tensors;
    int _disposed;

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors => _tensors;
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafeTensorsFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr,
        long dataStart, Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        FileLength = length;
        _map = map;
        _view = view;
        _base = basePtr;
        _dataStart = dataStart;
        _tensors = tensors;
        Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this machine is not");
        if (!File.Exists(path)) throw new ModelFormatException(path, "(file)", "file not found");
        long length;
        try
        {
            length = new FileInfo(path).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, "(file)", $"cannot read: {e.Message}");
        }
        if (length < 8)
            throw new ModelFormatException(path, "header length", $"file is {length} bytes, shorter than the 8-byte header length");

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* ptr = null;
        bool acquired = false, ok = false;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref ptr);
            acquired = true;
            byte* basePtr = ptr + view.PointerOffset;

            ulong headerLength = *(ulong*)basePtr; // little-endian (checked above)
            if (headerLength > (ulong)(length - 8))
                throw new ModelFormatException(path, "header length",
                    $"header length {headerLength} at offset 0 runs past the end of the file ({length} bytes)");
            if (headerLength > MaxHeaderBytes)
                throw new ModelFormatException(path, "header length", $"header length {headerLength} exceeds the limit of {MaxHeaderBytes} bytes");
            long dataStart = 8 + (long)headerLength;
            long dataLength = length - dataStart;
            var headerBytes = new ReadOnlySpan<byte>(basePtr + 8, (int)headerLength);
            var (tensors, metadata) = ParseHeader(path, headerBytes, dataLength);
            var file = new SafeTensorsFile(path, length, map, view, basePtr, dataStart, tensors, metadata);
            ok = true; // the mapping is now owned by the file
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, "(file)", $"cannot map: {e.Message}");
        }
        finally
        {
            if (!ok)
            {
                if (acquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
                view?.Dispose();
                map?.Dispose();
            }
        }
    }

    static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(header, new JsonReaderOptions { MaxDepth = 16 });
            doc = JsonDocument.ParseValue(ref reader);
            // Writers pad the header with spaces; anything else after the JSON value is corruption.
            foreach (byte b in header[(int)reader.BytesConsumed..])
                if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
                {
                    doc.Dispose();
                    throw new ModelFormatException(path, "header", $"unexpected bytes after the JSON header at offset {8 + reader.BytesConsumed}");
                }
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, "header", $"header is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(path, "header", $"header must be a JSON object, got {root.ValueKind}");
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new ModelFormatException(path, "__metadata__", $"expected an object of strings, got {prop.Value.ValueKind}");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new ModelFormatException(path, $"__metadata__.{m.Name}", $"expected a string, got {m.Value.ValueKind}");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                if (tensors.ContainsKey(prop.Name))
                    throw new ModelFormatException(path, $"tensor '{prop.Name}'", "listed twice in the header");
                tensors[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }

            // Tensors must not share bytes (the format forbids it; overlapping views would alias weights).
            var byOffset = tensors.Values.Where(t => t.End > t.Begin).OrderBy(t => t.Begin).ToList();
            for (int i = 1; i < byOffset.Count; i++)
                if (byOffset[i].Begin < byOffset[i - 1].End)
                    throw new ModelFormatException(path, $"tensor '{byOffset[i].Name}'.data_offsets",
                        $"bytes [{byOffset[i].Begin}, {byOffset[i].End}) overlap tensor '{byOffset[i - 1].Name}' [{byOffset[i - 1].Begin}, {byOffset[i - 1].End})");
            return (tensors, metadata);
        }
    }

    static SafeTensorInfo ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        string where = $"tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(path, where, $"expected an object with dtype, shape and data_offsets, got {e.ValueKind}");

        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new ModelFormatException(path, where + ".dtype", "missing or not a string");
        string dtypeName = dt.GetString()!;
        SafeTensorsDType dtype = dtypeName switch
        {
            "F32" => SafeTensorsDType.F32,
            "F16" => SafeTensorsDType.F16,
            "BF16" => SafeTensorsDType.BF16,
            _ => throw new ModelFormatException(path, where + ".dtype",
                $"unsupported dtype '{dtypeName}' (supported: F32, F16, BF16)"),
        };

        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException(path, where + ".shape", "missing or not an array");
        var shape = new List<long>();
        long elements = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new ModelFormatException(path, where + ".shape", $"dimension {shape.Count} is not a non-negative integer: {d.GetRawText()}");
            shape.Add(v);
            try { elements = checked(elements * v); }
            catch (OverflowException) { throw new ModelFormatException(path, where + ".shape", $"element count of [{string.Join(", ", shape)}...] overflows"); }
        }

        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelFormatException(path, where + ".data_offsets", "missing or not an array of two integers");
        if (!off[0].TryGetInt64Safe(out long begin) || !off[1].TryGetInt64Safe(out long end))
            throw new ModelFormatException(path, where + ".data_offsets", $"not two integers: {off.GetRawText()}");
        if (begin < 0 || end < begin || end > dataLength)
            throw new ModelFormatException(path, where + ".data_offsets",
                $"[{begin}, {end}] is not within the data region of {dataLength} bytes");
        long bytes;
        try { bytes = checked(elements * dtype.Size()); }
        catch (OverflowException) { throw new ModelFormatException(path, where + ".shape", "byte size overflows"); }
        if (bytes != end - begin)
            throw new ModelFormatException(path, where,
                $"shape [{string.Join(", ", shape)}] of {dtypeName} needs {bytes} bytes but data_offsets [{begin}, {end}] hold {end - begin}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new ModelFormatException(Path, $"tensor '{name}'", "not in this file");

    /// <summary>
    /// The tensor's stored bytes (little-endian, in its dtype), a view of the mapping: valid until Dispose.
    /// For device uploads that keep bf16/f16 as stored.
    /// </summary>
    public ReadOnlySpan<byte> RawBytes(string name)
    {
        var t = Info(name);
        ThrowIfDisposed();
        if (t.ByteLength > int.MaxValue)
            throw new ModelFormatException(Path, $"tensor '{name}'", $"{t.ByteLength} bytes is too large for one span");
        return new ReadOnlySpan<byte>(_base + _dataStart + t.Begin, (int)t.ByteLength);
    }

    /// <summary>
    /// Reads a tensor converted to f32 (row-major). An empty <paramref name="expectedShape"/> accepts any shape;
    /// otherwise the stored shape must equal it.
    /// </summary>
    public float[] ReadFloat32(string name, params long[] expectedShape)
    {
        var t = Info(name);
        CheckShape(t, expectedShape);
        long n = t.ElementCount;
        if (n > Array.MaxLength)
            throw new ModelFormatException(Path, $"tensor '{name}'", $"{n} elements do not fit one array");
        var result = new float[n];
        ReadFloat32(name, result);
        return result;
    }

    /// <summary>Reads a tensor converted to f32 into <paramref name="destination"/> (exactly its element count).</summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        var t = Info(name);
        ThrowIfDisposed();
        long n = t.ElementCount;
        if (destination.Length != n)
            throw new ArgumentException($"{Path}: tensor '{name}' has {n} elements, destination has {destination.Length}", nameof(destination));
        byte* src = _base + _dataStart + t.Begin;
        fixed (float* dst = destination)
            DTypeConversion.ToFloat32(t.DType, src, dst, n);
    }

    void CheckShape(SafeTensorInfo t, long[] expectedShape)
    {
        if (expectedShape is null || expectedShape.Length == 0) return;
        if (!t.Shape.SequenceEqual(expectedShape))
            throw new ModelFormatException(Path, $"tensor '{t.Name}'",
                $"shape [{string.Join(", ", t.Shape)}] differs from the expected [{string.Join(", ", expectedShape)}]");
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    public override string ToString() => $"{Path} ({_tensors.Count} tensors)";
}

internal static class JsonElementExtensions
{
    /// <summary>TryGetInt64 that returns false (instead of throwing) for non-numbers.</summary>
    public static bool TryGetInt64Safe(this JsonElement e, out long value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out value);
    }
}
