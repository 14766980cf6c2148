using System.Buffers.Binary;
using System.IO.Hashing;

namespace Actors.Grains.Storage;

/// <summary>
/// Writes one snapshot (layout: <see cref="KvSnapshotFormat"/>) to a stream, page by page, hashing as it goes, so a
/// multi-GB session is never held in memory. Usage: CreateAsync (writes the header), WritePageAsync PageCount
/// times in page order, CompleteAsync (writes the checksum). The output stream is left open.
/// </summary>
public sealed class KvSnapshotWriter
{
    private readonly Stream _output;
    private readonly XxHash128 _hash = new();
    private int _pagesWritten;
    private bool _completed;

    private KvSnapshotWriter(Stream output, KvSnapshotHeader header)
    {
        _output = output;
        Header = header;
    }

    public KvSnapshotHeader Header { get; }
    public int PagesWritten => _pagesWritten;

    /// <summary>Validates the header and writes it (with its own checksum). Throws ArgumentException naming a bad field.</summary>
    public static async Task<KvSnapshotWriter> CreateAsync(Stream output, KvSnapshotHeader header, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(header);
        header.Validate();
        var writer = new KvSnapshotWriter(output, header);
        var bytes = EncodeHeader(header);
        writer._hash.Append(bytes);
        await output.WriteAsync(bytes, cancellationToken);
        return writer;
    }

    /// <summary>Header bytes [0, H) followed by their XxHash3-64.</summary>
    internal static byte[] EncodeHeader(KvSnapshotHeader h)
    {
        var model = KvSnapshotFormat.StrictUtf8.GetBytes(h.ModelId);
        var rope = KvSnapshotFormat.StrictUtf8.GetBytes(h.RopeProfile);
        var headerLength = checked((int)KvSnapshotFormat.HeaderLength(h));
        var buf = new byte[headerLength + KvSnapshotFormat.HeaderChecksumSize];
        var s = buf.AsSpan();
        KvSnapshotFormat.Magic.CopyTo(s);
        BinaryPrimitives.WriteUInt16LittleEndian(s[8..], KvSnapshotFormat.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(s[10..], (ushort)h.DType);
        BinaryPrimitives.WriteInt32LittleEndian(s[12..], headerLength);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], h.PageSize);
        BinaryPrimitives.WriteInt32LittleEndian(s[20..], h.LayerCount);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], h.KvHeads);
        BinaryPrimitives.WriteInt32LittleEndian(s[28..], h.HeadDim);
        BinaryPrimitives.WriteInt32LittleEndian(s[32..], h.TokenCount);
        BinaryPrimitives.WriteInt32LittleEndian(s[36..], h.PageCount);
        BinaryPrimitives.WriteInt64LittleEndian(s[40..], h.PageBytes);
        var o = KvSnapshotFormat.FixedHeaderSize;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)model.Length); o += 2;
        model.CopyTo(s[o..]); o += model.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)rope.Length); o += 2;
        rope.CopyTo(s[o..]); o += rope.Length;
        for (var i = 0; i < h.TokenCount; i++, o += 4) BinaryPrimitives.WriteInt32LittleEndian(s[o..], h.TokenIds[i]);
        BinaryPrimitives.WriteUInt64LittleEndian(s[o..], XxHash3.HashToUInt64(s[..headerLength]));
        return buf;
    }

    /// <summary>Writes the next page block; its length must be <see cref="KvSnapshotHeader.PageBytes"/>.</summary>
    public async ValueTask WritePageAsync(ReadOnlyMemory<byte> page, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (page.Length != Header.PageBytes)
            throw new ArgumentException($"page {_pagesWritten} is {page.Length} bytes; the header says a page is {Header.PageBytes}", nameof(page));
        if (_pagesWritten >= Header.PageCount)
            throw new InvalidOperationException($"all {Header.PageCount} pages are already written");
        _hash.Append(page.Span);
        await _output.WriteAsync(page, cancellationToken);
        _pagesWritten++;
    }

    /// <summary>Writes the trailing checksum and flushes. Throws when fewer than PageCount pages were written.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_pagesWritten != Header.PageCount)
            throw new InvalidOperationException($"{_pagesWritten} of {Header.PageCount} pages written; a snapshot must hold them all");
        var trailer = new byte[KvSnapshotFormat.TrailerSize];
        _hash.GetCurrentHash(trailer);
        await _output.WriteAsync(trailer, cancellationToken);
        await _output.FlushAsync(cancellationToken);
        _completed = true;
    }
}
