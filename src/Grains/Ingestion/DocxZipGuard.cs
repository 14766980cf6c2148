using System.Buffers;
using System.IO.Compression;

namespace Actors.Grains.Ingestion;

/// <summary>
/// Inspects a DOCX's zip before the Open XML SDK expands any part: entry count, every entry's declared and actual
/// uncompressed size, the total, and the compression ratio. Sizes in the zip directory are the sender's claims,
/// so each entry is also inflated into a counting sink that stops at the first byte past a limit; nothing
/// decompressed is kept (peak memory: one 64 KiB buffer).
/// </summary>
internal static class DocxZipGuard
{
    public static void Check(ReadOnlyMemory<byte> content, string fileName, IngestionOptions options, CancellationToken ct)
    {
        ZipArchive zip;
        try { zip = new ZipArchive(DocumentIngestorStreams.AsStream(content), ZipArchiveMode.Read); }
        catch (InvalidDataException e)
        {
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Corrupt, $"not a readable zip archive: {e.Message}", e);
        }
        using (zip)
        {
            if (zip.Entries.Count > options.MaxDocxEntries)
                throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.ZipBomb,
                    $"{zip.Entries.Count} zip entries, over the limit of {options.MaxDocxEntries}");
            long declaredTotal = 0;
            foreach (var e in zip.Entries)
            {
                declaredTotal += e.Length;
                if (declaredTotal > options.MaxDocxUncompressedBytes)
                    throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.ZipBomb,
                        $"the entries up to '{e.FullName}' declare {declaredTotal} uncompressed bytes, over the limit of {options.MaxDocxUncompressedBytes}");
                CheckRatio(e.FullName, e.Length, e.CompressedLength, fileName, options, "declares");
            }

            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                long total = 0;
                foreach (var e in zip.Entries)
                {
                    ct.ThrowIfCancellationRequested();
                    long actual = 0;
                    try
                    {
                        using var s = e.Open();
                        int n;
                        while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
                        {
                            actual += n;
                            total += n;
                            if (actual > e.Length)
                                throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.ZipBomb,
                                    $"entry '{e.FullName}' inflates past the {e.Length} bytes its zip header declares");
                            if (total > options.MaxDocxUncompressedBytes)
                                throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.ZipBomb,
                                    $"the entries up to '{e.FullName}' inflate to more than {options.MaxDocxUncompressedBytes} bytes (the limit)");
                        }
                    }
                    catch (Exception ex) when (ex is InvalidDataException or IOException or NotSupportedException)
                    {
                        throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Corrupt,
                            $"zip entry '{e.FullName}' cannot be decompressed after {actual} bytes: {ex.Message}", ex);
                    }
                    CheckRatio(e.FullName, actual, e.CompressedLength, fileName, options, "inflates to");
                }
            }
            finally { ArrayPool<byte>.Shared.Return(buffer); }
        }
    }

    private static void CheckRatio(string entry, long uncompressed, long compressed, string fileName, IngestionOptions options, string verb)
    {
        if (uncompressed < options.DocxRatioCheckMinBytes) return;
        var ratio = uncompressed / (double)Math.Max(1, compressed);
        if (ratio > options.MaxDocxCompressionRatio)
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.ZipBomb,
                $"entry '{entry}' {verb} {uncompressed} bytes from {compressed} compressed (ratio {ratio:F0}, limit {options.MaxDocxCompressionRatio:F0})");
    }
}

internal static class DocumentIngestorStreams
{
    /// <summary>A read-only stream over the bytes, without copying when they live in an array.</summary>
    public static MemoryStream AsStream(ReadOnlyMemory<byte> bytes) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);
}
