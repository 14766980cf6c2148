using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Actors.Engine.Tokenization;

/// <summary>
/// A regex that matches the way Oniguruma (what Hugging Face tokenizers uses for Split, ByteLevel and Replace)
/// does: over code points, not UTF-16 units.
/// </summary>
/// <remarks>
/// .NET's engine sees an astral character (emoji, CJK extension B, math digits) as two surrogate units whose
/// category is Cs, so <c>\p{L}</c> misses 𠀀 and <c>[^\r\n\p{L}\p{N}]?</c> takes half an emoji. Before matching, every
/// astral code point is replaced by one BMP stand-in of the same Unicode general category; each class the patterns
/// use (<c>\p{..}</c>, <c>\s</c>, <c>\w</c>, <c>.</c>, negations) then decides as it would for the real code point,
/// and match offsets are mapped back. Possessive quantifiers (<c>x?+</c>, <c>x++</c>), which .NET lacks, are rewritten
/// as atomic groups, which mean the same.
/// </remarks>
internal sealed class CodePointRegex
{
    private readonly Regex _regex;

    public CodePointRegex(string pattern, string? literal = null)
    {
        Pattern = pattern;
        Literal = literal;
        _regex = new Regex(RewritePossessive(pattern), RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    public string Pattern { get; }

    /// <summary>The string this regex matches exactly, when it was made by <see cref="ForLiteral"/>.</summary>
    public string? Literal { get; }

    /// <summary>A regex that matches <paramref name="literal"/> exactly.</summary>
    public static CodePointRegex ForLiteral(string literal) => new(Regex.Escape(literal), literal);

    /// <summary>Non-overlapping matches, left to right, as (start, end) UTF-16 offsets into <paramref name="text"/>.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var result = new List<(int, int)>();
        if (!HasSurrogate(text))
        {
            foreach (ValueMatch m in _regex.EnumerateMatches(text))
                result.Add((m.Index, m.Index + m.Length));
            return result;
        }

        // map[i] = offset in text of unit i of the substituted string; map[len] = text.Length.
        var sb = new StringBuilder(text.Length);
        var map = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var cat = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                sb.Append(StandIn[(int)cat]);
                map.Add(i);
                i += 2;
            }
            else
            {
                sb.Append(text[i]);
                map.Add(i);
                i++;
            }
        }
        map.Add(text.Length);
        string substituted = sb.ToString();
        foreach (ValueMatch m in _regex.EnumerateMatches(substituted))
            result.Add((map[m.Index], map[m.Index + m.Length]));
        return result;
    }

    internal static bool HasSurrogate(string text)
    {
        foreach (char c in text)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    // One non-ASCII BMP character per general category (index = (int)UnicodeCategory). Non-ASCII so that
    // pattern literals, which are ASCII in every known tokenizer, never match a stand-in.
    private static readonly char[] StandIn = BuildStandIns();

    private static char[] BuildStandIns()
    {
        var table = new char[32];
        var found = new bool[32];
        for (int c = 0x80; c <= 0xFFFF; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            int cat = (int)CharUnicodeInfo.GetUnicodeCategory((char)c);
            if (found[cat]) continue;
            // Skip characters that fold to ASCII under (?i) (U+017F long s, U+212A Kelvin, U+212B Angstrom).
            if (c is 0x017F or 0x212A or 0x212B or 0x0130 or 0x0131) continue;
            table[cat] = (char)c;
            found[cat] = true;
        }
        return table;
    }

    /// <summary>Rewrites Oniguruma's possessive quantifiers (<c>?+ *+ ++ {n,m}+</c>) as atomic groups.</summary>
    internal static string RewritePossessive(string pattern)
    {
        if (!pattern.Contains("+", StringComparison.Ordinal)) return pattern;
        var output = new StringBuilder(pattern.Length + 16);
        int i = 0;
        RewriteSequence(pattern, ref i, output, topLevel: true);
        return output.ToString();
    }

    // Copies atoms up to the end of the current group (or of the pattern), wrapping possessively quantified atoms.
    private static void RewriteSequence(string p, ref int i, StringBuilder output, bool topLevel)
    {
        while (i < p.Length)
        {
            char c = p[i];
            if (c == ')')
            {
                if (topLevel) { output.Append(c); i++; continue; }
                return;
            }
            if (c == '|') { output.Append(c); i++; continue; }

            var atom = new StringBuilder();
            if (c == '\\')
            {
                int start = i;
                i += 2;
                if (i <= p.Length && start + 1 < p.Length && (p[start + 1] is 'p' or 'P' or 'x' or 'k') && i < p.Length && p[i] == '{')
                {
                    int close = p.IndexOf('}', i);
                    i = close < 0 ? p.Length : close + 1;
                }
                i = Math.Min(i, p.Length);
                atom.Append(p, start, i - start);
            }
            else if (c == '[')
            {
                int start = i;
                i = SkipClass(p, i);
                atom.Append(p, start, i - start);
            }
            else if (c == '(')
            {
                atom.Append('(');
                i++;
                RewriteSequence(p, ref i, atom, topLevel: false);
                if (i < p.Length) { atom.Append(')'); i++; }
            }
            else
            {
                atom.Append(c);
                i++;
            }

            // Quantifier, if any.
            int qStart = i;
            if (i < p.Length && p[i] is '?' or '*' or '+') i++;
            else if (i < p.Length && p[i] == '{')
            {
                int close = p.IndexOf('}', i);
                if (close > 0 && IsCounted(p.AsSpan(i + 1, close - i - 1))) i = close + 1;
            }
            string quantifier = p[qStart..i];
            if (quantifier.Length > 0 && i < p.Length && p[i] == '+')
            {
                i++;
                output.Append("(?>").Append(atom).Append(quantifier).Append(')');
            }
            else
            {
                if (quantifier.Length > 0 && i < p.Length && p[i] == '?') { quantifier += "?"; i++; }
                output.Append(atom).Append(quantifier);
            }
        }
    }

    private static bool IsCounted(ReadOnlySpan<char> inner)
    {
        if (inner.Length == 0) return false;
        foreach (char ch in inner)
            if (!char.IsAsciiDigit(ch) && ch != ',') return false;
        return true;
    }

    // Index just after the character class starting at p[start] == '['; handles escapes, a leading ']' and nesting.
    private static int SkipClass(string p, int start)
    {
        int i = start + 1;
        if (i < p.Length && p[i] == '^') i++;
        if (i < p.Length && p[i] == ']') i++;
        int depth = 1;
        while (i < p.Length && depth > 0)
        {
            if (p[i] == '\\') { i += 2; continue; }
            if (p[i] == '[') depth++;
            else if (p[i] == ']') depth--;
            i++;
        }
        return Math.Min(i, p.Length);
    }
}
