using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>A tokenizers normalizer: rewrites one piece of text (only the text; alignments are not kept).</summary>
internal interface INormalizer
{
    string Normalize(string text);
}

internal sealed class SequenceNormalizer(IReadOnlyList<INormalizer> normalizers) : INormalizer
{
    public string Normalize(string text)
    {
        foreach (var n in normalizers) text = n.Normalize(text);
        return text;
    }
}

internal sealed class UnicodeFormNormalizer(NormalizationForm form) : INormalizer
{
    public string Normalize(string text) => UnicodeNormalizer.Normalize(text, form);
}

/// <summary>Prepend: adds its string in front of a non-empty piece (Llama 2's "▁").</summary>
internal sealed class PrependNormalizer(string prepend) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : prepend + text;
}

/// <summary>Replace: every match of a literal or regex becomes <c>content</c> (taken literally, no $ groups).</summary>
internal sealed class ReplaceNormalizer(CodePointRegex pattern, string content) : INormalizer
{
    public string Normalize(string text) => Replace(pattern, content, text);

    internal static string Replace(CodePointRegex pattern, string content, string text)
    {
        // A literal pattern: the same non-overlapping left-to-right replacement, without the regex.
        if (pattern.Literal is { Length: > 0 } literal) return text.Replace(literal, content, StringComparison.Ordinal);
        var matches = pattern.Matches(text);
        if (matches.Count == 0) return text;
        var sb = new StringBuilder(text.Length + matches.Count * content.Length);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            sb.Append(text, prev, start - prev).Append(content);
            prev = end;
        }
        sb.Append(text, prev, text.Length - prev);
        return sb.ToString();
    }
}

internal sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => text.ToLowerInvariant();
}

/// <summary>Strip: removes leading and/or trailing whitespace (Unicode White_Space, as Rust's char::is_whitespace).</summary>
internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text)
    {
        int start = 0, end = text.Length;
        if (left) while (start < end && char.IsWhiteSpace(text[start])) start++;
        if (right) while (end > start && char.IsWhiteSpace(text[end - 1])) end--;
        return text[start..end];
    }
}
