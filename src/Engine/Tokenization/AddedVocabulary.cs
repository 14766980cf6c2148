using System.Globalization;
using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>
/// tokenizers' AddedVocabulary: added tokens are cut out of the text before normalization (those with
/// normalized=false, matched on the raw text) and then out of each normalized piece (those with normalized=true,
/// matched against their normalized form). Matching is leftmost-longest; single_word, lstrip and rstrip are applied
/// to each match as tokenizers' find_matches does.
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<string, int> _byContent = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _byId = new();
    private readonly HashSet<string> _special = new(StringComparer.Ordinal);
    private readonly Matcher? _raw;
    private readonly Matcher? _normalized;

    public AddedVocabulary(IEnumerable<(string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized)> tokens,
        BpeModel model, INormalizer? normalizer)
    {
        // Ids as tokenizers' add_tokens assigns them: an existing id (added before, or in the model's vocabulary),
        // else the next free one after the model's vocabulary.
        int nextId = model.VocabCount;
        var normalizedForms = new Dictionary<int, string>();
        foreach (var t in tokens)
        {
            if (t.Content.Length == 0) continue;
            int id;
            if (_byContent.TryGetValue(t.Content, out int existing)) id = existing;
            else if (model.TokenToId(t.Content) is int modelId) id = modelId;
            else id = nextId++;

            if (t.Normalized && normalizer is not null)
            {
                string normed = normalizer.Normalize(t.Content);
                if (normed != t.Content) normalizedForms[id] = normed;
                else normalizedForms.Remove(id);
            }
            _byContent[t.Content] = id;
            if (t.Special) _special.Add(t.Content);
            _byId[id] = new AddedToken(id, t.Content, t.Special, t.SingleWord, t.LStrip, t.RStrip, t.Normalized);
        }

        var raw = new List<(string, int)>();
        var norm = new List<(string, int)>();
        foreach (var (id, token) in _byId)
        {
            if (token.Normalized) norm.Add((normalizedForms.GetValueOrDefault(id, token.Content), id));
            else raw.Add((token.Content, id));
        }
        _raw = raw.Count > 0 ? new Matcher(raw) : null;
        _normalized = norm.Count > 0 ? new Matcher(norm) : null;
    }

    public IEnumerable<AddedToken> Tokens => _byId.Values;

    public int Count => _byId.Count;

    public int? TokenToId(string content) => _byContent.TryGetValue(content, out int id) ? id : null;

    public string? IdToToken(int id) => _byId.TryGetValue(id, out var t) ? t.Content : null;

    public bool IsSpecialContent(string content) => _special.Contains(content);

    /// <summary>Splits the text, normalizes what is not an added token, and splits again (extract_and_normalize).</summary>
    public List<Piece> ExtractAndNormalize(string text, INormalizer? normalizer)
    {
        var pieces = new List<Piece>();
        foreach (var p in SplitWithIndices(new Piece(text, null, true), _raw)) pieces.Add(p);

        var result = new List<Piece>(pieces.Count);
        foreach (var p in pieces)
        {
            if (p.Id is not null) { result.Add(p); continue; }
            var normalized = normalizer is null ? p : p with { Text = normalizer.Normalize(p.Text) };
            result.AddRange(SplitWithIndices(normalized, _normalized));
        }
        return result;
    }

    private IEnumerable<Piece> SplitWithIndices(Piece piece, Matcher? matcher)
    {
        foreach (var (id, start, end) in FindMatches(piece.Text, matcher))
            if (end > start)
                yield return new Piece(piece.Text[start..end], id, piece.AtOriginalStart && start == 0);
    }

    private List<(int? Id, int Start, int End)> FindMatches(string sentence, Matcher? matcher)
    {
        var splits = new List<(int?, int, int)>();
        if (sentence.Length == 0) return splits;
        if (matcher is null)
        {
            splits.Add((null, 0, sentence.Length));
            return splits;
        }
        int startOffset = 0;
        foreach (var (id, matchStart, matchEnd) in matcher.LeftmostLongest(sentence))
        {
            int start = matchStart, stop = matchEnd;
            var token = _byId[id];
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWord(sentence, start);
                bool stopSpace = stop == sentence.Length || !StartsWithWord(sentence, stop);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && IsWhiteSpaceBefore(sentence, newStart, out int width)) newStart -= width;
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < sentence.Length && IsWhiteSpaceAt(sentence, stop, out int width)) stop += width;
            }
            if (startOffset < start) splits.Add((null, startOffset, start));
            splits.Add((id, start, stop));
            startOffset = stop;
        }
        if (startOffset != sentence.Length) splits.Add((null, startOffset, sentence.Length));
        return splits;
    }

    // Rust regex \w (Unicode): Alphabetic, marks, decimal digits, connector punctuation, join controls.
    private static bool IsWordRune(Rune r)
    {
        if (r.Value is 0x200C or 0x200D) return true;
        return Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }

    private static bool EndsWithWord(string s, int end) =>
        end > 0 && Rune.DecodeLastFromUtf16(s.AsSpan(0, end), out var r, out _) == System.Buffers.OperationStatus.Done && IsWordRune(r);

    private static bool StartsWithWord(string s, int start) =>
        start < s.Length && Rune.DecodeFromUtf16(s.AsSpan(start), out var r, out _) == System.Buffers.OperationStatus.Done && IsWordRune(r);

    private static bool IsWhiteSpaceBefore(string s, int end, out int width)
    {
        width = 0;
        if (Rune.DecodeLastFromUtf16(s.AsSpan(0, end), out var r, out width) != System.Buffers.OperationStatus.Done) return false;
        return Rune.IsWhiteSpace(r) && !IsNonUnicodeWhiteSpace(r);
    }

    private static bool IsWhiteSpaceAt(string s, int start, out int width)
    {
        width = 0;
        if (Rune.DecodeFromUtf16(s.AsSpan(start), out var r, out width) != System.Buffers.OperationStatus.Done) return false;
        return Rune.IsWhiteSpace(r) && !IsNonUnicodeWhiteSpace(r);
    }

    // .NET counts U+001C..U+001F as white space; Unicode's White_Space (Rust's \s) does not.
    private static bool IsNonUnicodeWhiteSpace(Rune r) => r.Value is >= 0x1C and <= 0x1F;

    /// <summary>Leftmost-longest matching of a fixed set of strings (a trie walked from each start position).</summary>
    private sealed class Matcher
    {
        private sealed class Node
        {
            public Dictionary<char, Node>? Children;
            public int Id = -1;
        }

        private readonly Node _root = new();

        public Matcher(IEnumerable<(string Pattern, int Id)> patterns)
        {
            foreach (var (pattern, id) in patterns)
            {
                if (pattern.Length == 0) continue;
                var node = _root;
                foreach (char c in pattern)
                {
                    node.Children ??= new Dictionary<char, Node>();
                    if (!node.Children.TryGetValue(c, out var child)) node.Children[c] = child = new Node();
                    node = child;
                }
                node.Id = id;
            }
        }

        /// <summary>Non-overlapping matches: at the leftmost position where any pattern matches, the longest one.</summary>
        public IEnumerable<(int Id, int Start, int End)> LeftmostLongest(string text)
        {
            int i = 0;
            while (i < text.Length)
            {
                var node = _root;
                int bestEnd = -1, bestId = -1;
                for (int j = i; j < text.Length; j++)
                {
                    if (node.Children is null || !node.Children.TryGetValue(text[j], out node)) break;
                    if (node.Id >= 0) { bestEnd = j + 1; bestId = node.Id; }
                }
                if (bestEnd < 0) { i++; continue; }
                yield return (bestId, i, bestEnd);
                i = bestEnd;
            }
        }
    }
}
