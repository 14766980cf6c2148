namespace Actors.Engine.Tokenization;

/// <summary>
/// One piece of the text on its way through the pipeline: either still text (<see cref="Id"/> null) or an added
/// token already matched. <see cref="AtOriginalStart"/> says whether the piece begins at offset 0 of the input,
/// which Metaspace's prepend_scheme "first" asks about.
/// </summary>
internal readonly record struct Piece(string Text, int? Id, bool AtOriginalStart);

/// <summary>How a split keeps its delimiters (tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal static class Splitting
{
    /// <summary>
    /// The matches of a pattern as tokenizers' Pattern::find_matches gives them: the whole text covered by
    /// (start, end, isMatch) runs; an empty text gives one empty non-match.
    /// </summary>
    public static List<(int Start, int End, bool IsMatch)> FindMatches(CodePointRegex regex, string text, bool invert = false)
    {
        var runs = new List<(int, int, bool)>();
        if (text.Length == 0)
        {
            runs.Add((0, 0, invert));
            return runs;
        }
        int prev = 0;
        foreach (var (start, end) in regex.Matches(text))
        {
            if (prev != start) runs.Add((prev, start, invert));
            runs.Add((start, end, !invert));
            prev = end;
        }
        if (prev != text.Length) runs.Add((prev, text.Length, invert));
        return runs;
    }

    /// <summary>Runs of a single-character delimiter, each occurrence its own match (tokenizers' Pattern for char).</summary>
    public static List<(int Start, int End, bool IsMatch)> FindCharMatches(char delimiter, string text)
    {
        var runs = new List<(int, int, bool)>();
        if (text.Length == 0)
        {
            runs.Add((0, 0, false));
            return runs;
        }
        int last = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != delimiter) continue;
            if (last < i) runs.Add((last, i, false));
            runs.Add((i, i + 1, true));
            last = i + 1;
        }
        if (last < text.Length) runs.Add((last, text.Length, false));
        return runs;
    }

    /// <summary>NormalizedString::split: groups the runs by behaviour and returns the non-empty kept pieces with their start offsets.</summary>
    public static List<(int Start, string Text)> Split(string text, List<(int Start, int End, bool IsMatch)> matches, SplitBehavior behavior)
    {
        // (start, end, remove)
        var splits = new List<(int Start, int End, bool Remove)>();
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var m in matches) splits.Add((m.Start, m.End, false));
                break;
            case SplitBehavior.Removed:
                foreach (var m in matches) splits.Add((m.Start, m.End, m.IsMatch));
                break;
            case SplitBehavior.Contiguous:
            {
                bool previous = false;
                foreach (var m in matches)
                {
                    if (m.IsMatch == previous && splits.Count > 0)
                        splits[^1] = (splits[^1].Start, m.End, false);
                    else
                        splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithPrevious:
            {
                bool previous = false;
                foreach (var m in matches)
                {
                    if (m.IsMatch && !previous && splits.Count > 0)
                        splits[^1] = (splits[^1].Start, m.End, false);
                    else
                        splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                // Walks right to left: a delimiter joins the piece after it (tokenizers folds over .rev()).
                bool previous = false;
                for (int k = matches.Count - 1; k >= 0; k--)
                {
                    var m = matches[k];
                    if (m.IsMatch && !previous && splits.Count > 0)
                        splits[^1] = (m.Start, splits[^1].End, false);
                    else
                        splits.Add((m.Start, m.End, false));
                    previous = m.IsMatch;
                }
                splits.Reverse();
                break;
            }
        }

        var pieces = new List<(int, string)>(splits.Count);
        foreach (var (start, end, remove) in splits)
            if (!remove && end > start) pieces.Add((start, text[start..end]));
        return pieces;
    }
}
