namespace Actors.Grains.Ingestion;

/// <summary>Plain text and Markdown: the text as it is, decoded by <see cref="CharsetDetector"/>.</summary>
internal static class PlainTextExtractor
{
    public static ExtractedDocument Extract(ReadOnlySpan<byte> content, string fileName, DocumentKind kind, string? mediaType)
    {
        var (text, charset) = CharsetDetector.Decode(content, fileName, kind, CharsetDetector.CharsetOfMediaType(mediaType));
        return new ExtractedDocument(kind, text, kind == DocumentKind.Markdown ? MarkdownTitle(text) : null, charset);
    }

    /// <summary>The first level-1 ATX heading ("# Title") in the first 100 lines, or null.</summary>
    private static string? MarkdownTitle(string text)
    {
        var lines = 0;
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            if (++lines > 100) break;
            var t = line.TrimStart();
            if (t.StartsWith("# ")) return t[2..].Trim().TrimEnd('#').Trim().ToString();
        }
        return null;
    }
}
