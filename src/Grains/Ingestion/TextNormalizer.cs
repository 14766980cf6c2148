using System.Text;

namespace Actors.Grains.Ingestion;

/// <summary>Shared final touches and paragraph assembly for every extractor.</summary>
internal static class TextNormalizer
{
    /// <summary>'\r\n' and '\r' become '\n'; a leading U+FEFF, leading blank lines and trailing whitespace go.</summary>
    public static string Finish(string text)
    {
        if (text.Contains('\r')) text = text.Replace("\r\n", "\n").Replace('\r', '\n');
        var start = 0;
        if (text.Length > 0 && text[0] == '\uFEFF') start = 1;
        // Drop whole blank lines at the start, keeping the first line's indentation.
        var i = start;
        while (i < text.Length && text[i] is ' ' or '\t' or '\n')
        {
            if (text[i] == '\n') start = i + 1;
            i++;
        }
        var end = text.Length;
        while (end > start && char.IsWhiteSpace(text[end - 1])) end--;
        return start == 0 && end == text.Length ? text : text[start..end];
    }

    /// <summary>Collapses runs of spaces/tabs (and line breaks inside a paragraph) to one space and trims.</summary>
    public static string CollapseWhitespace(string s)
    {
        var sb = new StringBuilder(s.Length);
        var pendingSpace = false;
        foreach (var c in s)
        {
            if (char.IsWhiteSpace(c) && c != '\u00A0')
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            if (pendingSpace) sb.Append(' ');
            pendingSpace = false;
            sb.Append(c);
        }
        return sb.ToString();
    }
}

/// <summary>Builds text out of paragraphs: one blank line between paragraphs, single '\n' between the lines of a table or list.</summary>
internal sealed class ParagraphWriter(int maxChars, string fileName, DocumentKind kind)
{
    private readonly StringBuilder _sb = new();
    private bool _tight;

    public int Length => _sb.Length;

    /// <summary>Adds a paragraph; <paramref name="tight"/> lines (table rows, list items) follow each other with no blank line.</summary>
    public void Paragraph(string text, bool tight = false)
    {
        if (string.IsNullOrWhiteSpace(text)) return;
        if (_sb.Length > 0) _sb.Append(tight && _tight ? "\n" : "\n\n");
        _sb.Append(text);
        _tight = tight;
        // Stop early instead of building an unbounded string; the ingestor reports the same reason with the final length.
        if (_sb.Length > maxChars)
            throw DocumentIngestor.Rejected(fileName, kind, DocumentRejectionReason.TextTooLong, $"over {maxChars} chars of text extracted before the end of the document");
    }

    /// <summary>Ends a run of tight lines so the next paragraph starts after a blank line.</summary>
    public void Break() => _tight = false;

    public override string ToString() => _sb.ToString();
}
