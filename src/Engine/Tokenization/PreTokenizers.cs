namespace Actors.Engine.Tokenization;

/// <summary>A tokenizers pre-tokenizer: splits the text pieces further (pieces holding an added token pass through).</summary>
internal interface IPreTokenizer
{
    List<Piece> PreTokenize(List<Piece> pieces);
}

internal static class PreTokenizing
{
    /// <summary>PreTokenizedString::split: applies <paramref name="split"/> to every text piece, drops empty results.</summary>
    public static List<Piece> SplitEach(List<Piece> pieces, Func<Piece, IEnumerable<Piece>> split)
    {
        var result = new List<Piece>(pieces.Count);
        foreach (var piece in pieces)
        {
            if (piece.Id is not null) { result.Add(piece); continue; }
            foreach (var p in split(piece))
                if (p.Text.Length > 0) result.Add(p);
        }
        return result;
    }

    public static IEnumerable<Piece> ToPieces(Piece parent, List<(int Start, string Text)> parts)
    {
        foreach (var (start, text) in parts)
            yield return new Piece(text, null, parent.AtOriginalStart && start == 0);
    }
}

internal sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> preTokenizers) : IPreTokenizer
{
    public List<Piece> PreTokenize(List<Piece> pieces)
    {
        foreach (var p in preTokenizers) pieces = p.PreTokenize(pieces);
        return pieces;
    }
}

/// <summary>Split: a regex or literal pattern, a delimiter behaviour, optionally inverted.</summary>
internal sealed class SplitPreTokenizer(CodePointRegex pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public List<Piece> PreTokenize(List<Piece> pieces) =>
        PreTokenizing.SplitEach(pieces, piece => PreTokenizing.ToPieces(piece,
            Splitting.Split(piece.Text, Splitting.FindMatches(pattern, piece.Text, invert), behavior)));
}

/// <summary>
/// ByteLevel: optionally a leading space and the GPT-2 split, then every UTF-8 byte of the piece becomes its
/// printable stand-in character (<see cref="ByteLevelAlphabet"/>).
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    internal const string Gpt2Pattern =
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Lazy<CodePointRegex> Gpt2Regex = new(() => new CodePointRegex(Gpt2Pattern));

    public List<Piece> PreTokenize(List<Piece> pieces)
    {
        var split = PreTokenizing.SplitEach(pieces, piece =>
        {
            string text = piece.Text;
            if (addPrefixSpace && !text.StartsWith(' ')) text = " " + text;
            if (!useRegex) return [piece with { Text = text }];
            return PreTokenizing.ToPieces(piece with { Text = text },
                Splitting.Split(text, Splitting.FindMatches(Gpt2Regex.Value, text), SplitBehavior.Isolated));
        });
        for (int i = 0; i < split.Count; i++)
            if (split[i].Id is null) split[i] = split[i] with { Text = ByteLevelAlphabet.Encode(split[i].Text) };
        return split;
    }
}

internal enum PrependScheme { First, Never, Always }

/// <summary>Metaspace: spaces become the replacement character, which is prepended and (optionally) split on.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, PrependScheme scheme, bool split) : IPreTokenizer
{
    public List<Piece> PreTokenize(List<Piece> pieces) =>
        PreTokenizing.SplitEach(pieces, piece =>
        {
            string text = piece.Text.Replace(' ', replacement);
            bool prepend = scheme switch
            {
                PrependScheme.Always => !text.StartsWith(replacement),
                PrependScheme.First => !text.StartsWith(replacement) && piece.AtOriginalStart,
                _ => false,
            };
            if (prepend) text = replacement + text;
            var normalized = piece with { Text = text };
            if (!split) return [normalized];
            return PreTokenizing.ToPieces(normalized,
                Splitting.Split(text, Splitting.FindCharMatches(replacement, text), SplitBehavior.MergedWithNext));
        });
}

/// <summary>Digits: splits runs of digits from the rest, or each digit alone.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : IPreTokenizer
{
    private static readonly CodePointRegex Digit = new(@"\p{N}");

    public List<Piece> PreTokenize(List<Piece> pieces) =>
        PreTokenizing.SplitEach(pieces, piece =>
        {
            var runs = Splitting.FindMatches(Digit, piece.Text);
            return PreTokenizing.ToPieces(piece, Splitting.Split(piece.Text, runs,
                individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous));
        });
}
