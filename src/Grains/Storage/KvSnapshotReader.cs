using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace Actors.Grains.Storage;

/// <summary>
/// Reads a snapshot (layout: <see cref="KvSnapshotFormat"/>) from a stream without holding it whole.
/// <see cref="OpenAsync"/> reads and checks the header (magic, version, bounds, header checksum, sizes, then the
/// caller's expectation); <see cref="ReadPageAsync"/> fills the caller's buffer with the next page, and the call
/// that returns the last page also verifies the whole-stream checksum and that nothing follows it. So pages must
/// not be used until every page was read without an exception. Every length is bounded before anything is
/// allocated from it. Errors: <see cref="KvSnapshotFormatException"/> (with field and offset) or
/// <see cref="SnapshotMismatchException"/>.
/// </summary>
public sealed class KvSnapshotReader
{
    private readonly Stream _input;
    private readonly string _source;
    private readonly XxHash128 _hash = new();
    private long _offset;
    private int _pagesRead;

    private KvSnapshotReader(Stream input, string source, KvSnapshotHeader header, long offset, XxHash128 hash)
    {
        _input = input;
        _source = source;
        Header = header;
        _offset = offset;
        _hash = hash;
    }

    public KvSnapshotHeader Header { get; }
    public int PagesRead => _pagesRead;
    public bool IsComplete => _pagesRead == Header.PageCount;

    /// <summary>
    /// Reads and validates the header. <paramref name="source"/> names the stream in error messages (file or blob name).
    /// The stream is left open.
    /// </summary>
    public static async Task<KvSnapshotReader> OpenAsync(Stream input, KvSnapshotExpectation? expected, string source = "stream", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var hash = new XxHash128();
        var fixedPart = new byte[KvSnapshotFormat.FixedHeaderSize];
        await ReadExactAsync(input, fixedPart, source, "header", 0, cancellationToken);
        KvSnapshotFormatException Bad(string field, long offset, string problem) => new(source, field, offset, problem);

        if (!fixedPart.AsSpan(0, 8).SequenceEqual(KvSnapshotFormat.Magic))
            throw Bad("magic", 0, $"bytes {Convert.ToHexString(fixedPart, 0, 8)} are not \"ACTKVSNP\" (not a KV snapshot)");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart.AsSpan(8));
        if (version != KvSnapshotFormat.Version) throw Bad("format version", 8, $"{version} is not supported (this build reads version {KvSnapshotFormat.Version})");
        var dtype = (KvDType)BinaryPrimitives.ReadUInt16LittleEndian(fixedPart.AsSpan(10));
        if (!Enum.IsDefined(dtype)) throw Bad("dtype", 10, $"{(ushort)dtype} is not f32 (1) or bf16 (2)");
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(12));
        var pageSize = Field(fixedPart, 16, "page size", KvSnapshotFormat.MaxPageSize);
        var layers = Field(fixedPart, 20, "layer count", KvSnapshotFormat.MaxLayers);
        var kvHeads = Field(fixedPart, 24, "kv heads", KvSnapshotFormat.MaxKvHeads);
        var headDim = Field(fixedPart, 28, "head dim", KvSnapshotFormat.MaxHeadDim);
        var tokenCount = Field(fixedPart, 32, "token count", KvSnapshotFormat.MaxTokens);
        var pageCount = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(36));
        var pageBytes = BinaryPrimitives.ReadInt64LittleEndian(fixedPart.AsSpan(40));
        var expectedPages = (tokenCount + pageSize - 1) / pageSize;
        if (pageCount != expectedPages) throw Bad("page count", 36, $"{pageCount} disagrees with {tokenCount} tokens in pages of {pageSize} (expected {expectedPages})");
        var expectedPageBytes = (long)layers * 2 * pageSize * kvHeads * headDim * (dtype == KvDType.F32 ? 4 : 2);
        if (pageBytes != expectedPageBytes) throw Bad("page bytes", 40, $"{pageBytes} disagrees with the geometry (expected {expectedPageBytes})");
        if (pageBytes > KvSnapshotFormat.MaxPageBytes) throw Bad("page bytes", 40, $"{pageBytes} is over the limit of {KvSnapshotFormat.MaxPageBytes}");
        var maxHeader = KvSnapshotFormat.FixedHeaderSize + 4 + 2L * KvSnapshotFormat.MaxStringBytes + 4L * tokenCount;
        var minHeader = KvSnapshotFormat.FixedHeaderSize + 4 + 2 + 4L * tokenCount;
        if (headerLength < minHeader || headerLength > maxHeader) throw Bad("header length", 12, $"{headerLength} is outside {minHeader}..{maxHeader} for {tokenCount} tokens");
        if (input.CanSeek)
        {
            // A seekable source tells its size now: disagreeing sizes are reported before any page is read.
            long total;
            try { total = input.Length - input.Position + KvSnapshotFormat.FixedHeaderSize; }
            catch (NotSupportedException) { total = -1; }
            var expectedTotal = headerLength + KvSnapshotFormat.HeaderChecksumSize + pageCount * pageBytes + KvSnapshotFormat.TrailerSize;
            if (total >= 0 && total != expectedTotal)
                throw Bad("stream length", total, $"the stream holds {total} bytes but the header describes {expectedTotal} ({(total < expectedTotal ? "truncated" : "trailing bytes")})");
        }

        // headerLength is bounded above (≤ 2 KiB + 16 MiB), so this allocation is checked.
        var header = new byte[headerLength + KvSnapshotFormat.HeaderChecksumSize];
        fixedPart.CopyTo(header, 0);
        await ReadExactAsync(input, header.AsMemory(KvSnapshotFormat.FixedHeaderSize), source, "header", KvSnapshotFormat.FixedHeaderSize, cancellationToken);
        var storedHeaderHash = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(headerLength));
        var actualHeaderHash = XxHash3.HashToUInt64(header.AsSpan(0, headerLength));
        if (storedHeaderHash != actualHeaderHash) throw Bad("header checksum", headerLength, $"stored {storedHeaderHash:x16}, computed {actualHeaderHash:x16} (header corrupt)");

        var o = KvSnapshotFormat.FixedHeaderSize;
        var modelId = ReadString(header, ref o, headerLength, "model id", source);
        var rope = ReadString(header, ref o, headerLength, "RoPE profile", source);
        if (o + 4L * tokenCount != headerLength) throw Bad("header length", 12, $"{headerLength} disagrees with the strings and {tokenCount} token ids (expected {o + 4L * tokenCount})");
        var tokens = new int[tokenCount];
        for (var i = 0; i < tokenCount; i++, o += 4) tokens[i] = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(o));
        hash.Append(header);

        var h = new KvSnapshotHeader(modelId, rope, dtype, pageSize, layers, kvHeads, headDim, tokens);
        if (expected is not null) CheckExpectation(h, expected, source);
        return new KvSnapshotReader(input, source, h, header.Length, hash);

        int Field(byte[] b, int offset, string name, int max)
        {
            var v = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(offset));
            if (v < 1 || v > max) throw Bad(name, offset, $"{v} is outside 1..{max}");
            return v;
        }
    }

    private static string ReadString(byte[] header, ref int o, int headerLength, string field, string source)
    {
        var n = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(o));
        if (n < 1 || n > KvSnapshotFormat.MaxStringBytes || o + 2 + n > headerLength)
            throw new KvSnapshotFormatException(source, field + " length", o, $"{n} is outside 1..{KvSnapshotFormat.MaxStringBytes} or runs past the header ({headerLength} bytes)");
        try
        {
            var s = KvSnapshotFormat.StrictUtf8.GetString(header, o + 2, n);
            o += 2 + n;
            return s;
        }
        catch (DecoderFallbackException) { throw new KvSnapshotFormatException(source, field, o + 2, "is not valid UTF-8"); }
    }

    private static void CheckExpectation(KvSnapshotHeader h, KvSnapshotExpectation e, string source)
    {
        Check("model id", e.ModelId, h.ModelId);
        Check("RoPE profile", e.RopeProfile, h.RopeProfile);
        if (e.DType is { } d) Check("dtype", d.ToString(), h.DType.ToString());
        if (e.PageSize is { } p) Check("page size", p.ToString(), h.PageSize.ToString());
        if (e.LayerCount is { } l) Check("layer count", l.ToString(), h.LayerCount.ToString());
        if (e.KvHeads is { } k) Check("kv heads", k.ToString(), h.KvHeads.ToString());
        if (e.HeadDim is { } hd) Check("head dim", hd.ToString(), h.HeadDim.ToString());

        void Check(string field, string expected, string actual)
        {
            if (!string.Equals(expected, actual, StringComparison.Ordinal)) throw new SnapshotMismatchException(source, field, expected, actual);
        }
    }

    /// <summary>
    /// Reads the next page into <paramref name="destination"/> (exactly <see cref="KvSnapshotHeader.PageBytes"/> long)
    /// and returns its index. Reading the last page also verifies the checksum over the whole stream and that the
    /// stream ends there.
    /// </summary>
    public async ValueTask<int> ReadPageAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (destination.Length != Header.PageBytes)
            throw new ArgumentException($"destination is {destination.Length} bytes; a page is {Header.PageBytes}", nameof(destination));
        if (IsComplete) throw new InvalidOperationException($"all {Header.PageCount} pages were read");
        var index = _pagesRead;
        await ReadExactAsync(_input, destination, _source, $"page {index}", _offset, cancellationToken);
        _hash.Append(destination.Span);
        _offset += destination.Length;
        _pagesRead++;
        if (IsComplete) await VerifyTrailerAsync(cancellationToken);
        return index;
    }

    /// <summary>Reads every remaining page, handing each to <paramref name="onPage"/> (index, bytes valid only during the call), then verifies.</summary>
    public async Task ReadAllPagesAsync(Func<int, ReadOnlyMemory<byte>, CancellationToken, ValueTask> onPage, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onPage);
        var buffer = new byte[Header.PageBytes]; // checked against MaxPageBytes in OpenAsync
        while (!IsComplete)
        {
            // The last page is handed over only after the checksum held; earlier pages are provisional (see class remarks).
            var index = await ReadPageAsync(buffer, cancellationToken);
            await onPage(index, buffer, cancellationToken);
        }
    }

    private async Task VerifyTrailerAsync(CancellationToken ct)
    {
        var stored = new byte[KvSnapshotFormat.TrailerSize];
        await ReadExactAsync(_input, stored, _source, "checksum", _offset, ct);
        var actual = _hash.GetCurrentHash();
        if (!actual.AsSpan().SequenceEqual(stored))
            throw new KvSnapshotFormatException(_source, "checksum", _offset, $"stored {Convert.ToHexString(stored)}, computed {Convert.ToHexString(actual)} (pages or header corrupt)");
        _offset += stored.Length;
        var extra = new byte[1];
        if (await _input.ReadAsync(extra, ct) != 0)
            throw new KvSnapshotFormatException(_source, "end of snapshot", _offset, "trailing bytes after the checksum");
    }

    private static async ValueTask ReadExactAsync(Stream input, Memory<byte> buffer, string source, string field, long offset, CancellationToken ct)
    {
        var read = await input.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct);
        if (read < buffer.Length)
            throw new KvSnapshotFormatException(source, field, offset + read, $"truncated: the stream ended after {read} of {buffer.Length} bytes");
    }

    /// <summary>Reads a whole snapshot, discarding pages, and returns its header: the check a store runs before trusting a blob.</summary>
    public static async Task<KvSnapshotHeader> VerifyAsync(Stream input, KvSnapshotExpectation? expected, string source = "stream", CancellationToken cancellationToken = default)
    {
        var reader = await OpenAsync(input, expected, source, cancellationToken);
        await reader.ReadAllPagesAsync((_, _, _) => ValueTask.CompletedTask, cancellationToken);
        return reader.Header;
    }
}
