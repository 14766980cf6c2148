using System.Text;

namespace Actors.Grains.Ingestion;

/// <summary>
/// Decides a document's format. Magic bytes win (a PDF named .txt is a PDF); then the declared media type; then
/// the file name's extension; then sniffing the text ("&lt;!doctype html" / "&lt;html" is HTML, the rest plain text).
/// A declared binary format whose magic bytes are missing is still that format, so its extractor reports it corrupt.
/// Binary data that is none of our formats is rejected here as <see cref="DocumentRejectionReason.Binary"/>.
/// </summary>
internal static class FormatDetector
{
    private static ReadOnlySpan<byte> PdfMagic => "%PDF-"u8;
    private static ReadOnlySpan<byte> ZipMagic => "PK\u0003\u0004"u8;

    /// <summary>PDF readers accept "%PDF-" anywhere in the first 1024 bytes (junk before it is common).</summary>
    private const int PdfMagicWindow = 1024;

    public static DocumentKind Detect(ReadOnlySpan<byte> content, string fileName, string? mediaType)
    {
        var pdfAt = content[..Math.Min(content.Length, PdfMagicWindow)].IndexOf(PdfMagic);
        if (pdfAt >= 0) return DocumentKind.Pdf;
        var declared = DocumentMediaTypes.FromMediaType(mediaType) ?? DocumentMediaTypes.FromFileName(fileName);
        if (content.StartsWith(ZipMagic))
        {
            // A zip is a DOCX only by its parts; DocxTextExtractor checks for word/document.xml and says so.
            return DocumentKind.Docx;
        }
        if (declared is DocumentKind.Pdf or DocumentKind.Docx) return declared.Value;
        if (KnownBinary(content) is { } what)
            throw DocumentIngestor.Rejected(fileName, declared ?? DocumentKind.Unknown, DocumentRejectionReason.Binary,
                $"the content is {what} (magic bytes at offset 0), not a text, HTML, PDF or DOCX document");
        if (declared is { } d) return d;
        return LooksLikeHtml(content) ? DocumentKind.Html : DocumentKind.PlainText;
    }

    /// <summary>Names common binary formats by their leading bytes, so the error says what was sent.</summary>
    private static string? KnownBinary(ReadOnlySpan<byte> c)
    {
        if (c.Length >= 4 && c[0] == 0x89 && c[1] == (byte)'P' && c[2] == (byte)'N' && c[3] == (byte)'G') return "a PNG image";
        if (c.Length >= 3 && c[0] == 0xFF && c[1] == 0xD8 && c[2] == 0xFF) return "a JPEG image";
        if (c.StartsWith("GIF87a"u8) || c.StartsWith("GIF89a"u8)) return "a GIF image";
        if (c.Length >= 2 && c[0] == 0x1F && c[1] == 0x8B) return "gzip-compressed data";
        if (c.StartsWith("\u007FELF"u8)) return "an ELF executable";
        if (c.StartsWith("MZ"u8) && c.Length >= 64) return "a Windows executable";
        if (c.Length >= 8 && c[0] == 0xD0 && c[1] == 0xCF && c[2] == 0x11 && c[3] == 0xE0) return "an OLE2 compound file (legacy .doc/.xls; save it as .docx)";
        if (c.StartsWith("7z"u8) && c.Length >= 6 && c[2] == 0xBC && c[3] == 0xAF) return "a 7-Zip archive";
        return null;
    }

    /// <summary>True when the text, past any BOM and whitespace, opens with an HTML doctype or html element.</summary>
    private static bool LooksLikeHtml(ReadOnlySpan<byte> c)
    {
        // Only ASCII-compatible encodings are sniffed; UTF-16 HTML needs a .html name or text/html.
        if (c.StartsWith(Encoding.UTF8.Preamble)) c = c[3..];
        var head = c[..Math.Min(c.Length, 512)];
        var i = 0;
        while (i < head.Length && head[i] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') i++;
        head = head[i..];
        return StartsWithIgnoreCase(head, "<!doctype html"u8) || StartsWithIgnoreCase(head, "<html"u8);
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> s, ReadOnlySpan<byte> prefix)
    {
        if (s.Length < prefix.Length) return false;
        for (var i = 0; i < prefix.Length; i++)
            if (char.ToLowerInvariant((char)s[i]) != (char)prefix[i]) return false;
        return true;
    }
}
