using Actors.Engine;

namespace Actors.Grains.Jobs.Planning;

/// <summary>
/// Cuts a document into chunks of at most <see cref="MaxTokens"/> tokens for map-reduce. Cuts fall between
/// paragraphs (blank lines) where that keeps a chunk at least half full, else between sentences (after . ! ? …
/// and CJK stops, and at line breaks); a sentence longer than a chunk's room is cut between words, and a word
/// longer than that into short character runs (token boundaries in practice: a BPE pre-tokenizer never merges
/// across them). Each chunk after the first starts with whole sentences from the end of the previous chunk,
/// about <see cref="OverlapTokens"/> tokens of them and never more. Chunks are in document order and together
/// cover every non-whitespace character.
/// Cost: every sentence is counted once and every chunk once more to check its exact count (a cut can join or
/// split a token), so the work is linear in the document; a chunk over budget after the check loses its last
/// sentences (rare: joins change counts by a token or two).
/// </summary>
public sealed class DocumentChunker
{
    /// <summary>Smallest chunk size: a run of <see cref="CharRun"/> UTF-16 units is at most 32 byte-level tokens.</summary>
    public const int MinMaxTokens = 32;

    /// <summary>Characters per piece when a single word is longer than a chunk's room.</summary>
    private const int CharRun = 8;

    private readonly Func<string, int> _countTokens;

    /// <param name="countTokens">Tokens of a text as the model encodes it (no special tokens).</param>
    /// <param name="maxTokens">Most tokens of one chunk's text, overlap included (at least <see cref="MinMaxTokens"/>).</param>
    /// <param name="overlapTokens">Tokens of whole sentences each chunk repeats from the previous one; below half of <paramref name="maxTokens"/>.</param>
    public DocumentChunker(Func<string, int> countTokens, int maxTokens, int overlapTokens)
    {
        ArgumentNullException.ThrowIfNull(countTokens);
        if (maxTokens < MinMaxTokens)
            throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, $"chunk size must be at least {MinMaxTokens} tokens");
        if (overlapTokens < 0 || 2 * (long)overlapTokens >= maxTokens)
            throw new ArgumentOutOfRangeException(nameof(overlapTokens), overlapTokens, $"overlap must be >= 0 and below half of the chunk size {maxTokens}");
        _countTokens = countTokens;
        MaxTokens = maxTokens;
        OverlapTokens = overlapTokens;
    }

    /// <summary>A chunker that counts tokens with <paramref name="model"/>'s tokenizer.</summary>
    public static DocumentChunker ForModel(ITextGenerator model, int maxTokens, int overlapTokens)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new DocumentChunker(text => model.Encode(text).Count, maxTokens, overlapTokens);
    }

    public int MaxTokens { get; }
    public int OverlapTokens { get; }

    /// <summary>
    /// Most tokens of new content one piece may have, so that a chunk holding it and its overlap fits: any single
    /// piece within this size makes a valid chunk, which is what guarantees progress.
    /// </summary>
    private int PieceLimit => MaxTokens - OverlapTokens;

    /// <summary>The chunks of <paramref name="document"/>; empty when it holds only whitespace.</summary>
    public IReadOnlyList<DocumentChunk> Chunk(string document)
    {
        ArgumentNullException.ThrowIfNull(document);
        var pieces = Pieces(document);
        var chunks = new List<DocumentChunk>();
        int first = 0, previousFirst = -1;
        while (first < pieces.Count)
        {
            // Overlap: whole pieces from the end of the previous chunk while they fit the overlap, always leaving
            // the previous chunk's first new piece out so a chunk never just repeats its predecessor.
            int overlapFrom = first, overlapEstimate = 0;
            if (OverlapTokens > 0 && previousFirst >= 0)
                while (overlapFrom - 1 > previousFirst && overlapEstimate + pieces[overlapFrom - 1].Estimate <= OverlapTokens)
                    overlapEstimate += pieces[--overlapFrom].Estimate;

            int room = MaxTokens - overlapEstimate;
            int last = first, estimate = pieces[first].Estimate;
            while (last + 1 < pieces.Count && estimate + pieces[last + 1].Estimate <= room)
                estimate += pieces[++last].Estimate;

            // Stopped by the budget: end at the last paragraph end instead, if the chunk stays at least half full.
            if (last + 1 < pieces.Count && !pieces[last].ParagraphEnd)
            {
                int kept = estimate;
                for (int p = last; p > first; p--)
                {
                    kept -= pieces[p].Estimate;
                    if (kept * 2 < room) break;
                    if (pieces[p - 1].ParagraphEnd) { last = p - 1; break; }
                }
            }

            // Exact count of the chunk's text; drop trailing pieces (then the overlap) while it is over.
            int tokens;
            while (true)
            {
                tokens = _countTokens(document[pieces[overlapFrom].Start..pieces[last].End]);
                if (tokens <= MaxTokens) break;
                int over = tokens - MaxTokens, dropped = 0;
                if (last > first)
                {
                    while (last > first && dropped < over) dropped += pieces[last--].Estimate;
                }
                else if (overlapFrom < first)
                {
                    overlapFrom = first;
                }
                else
                {
                    // A piece alone was counted within PieceLimit, so this means the counter is not a function of the text.
                    throw new InvalidOperationException($"the text at characters {pieces[first].Start}..{pieces[first].End} counted {pieces[first].Tokens} tokens alone and {tokens} now; the token counter must be deterministic");
                }
            }

            int start = pieces[overlapFrom].Start;
            chunks.Add(new DocumentChunk(chunks.Count, start, pieces[last].End - start, pieces[first].Start, tokens));
            previousFirst = first;
            first = last + 1;
        }
        return chunks;
    }

    /// <summary>
    /// A sentence (or a cut of one) without its trailing whitespace: [Start, End) in characters, Tokens counted
    /// alone, ParagraphEnd when a blank line or the document's end follows it.
    /// </summary>
    private readonly record struct Piece(int Start, int End, int Tokens, bool ParagraphEnd)
    {
        // One token for the separator a paragraph break adds when pieces are joined.
        public int Estimate => Tokens + (ParagraphEnd ? 1 : 0);
    }

    private List<Piece> Pieces(string doc)
    {
        var pieces = new List<Piece>();
        int pos = SkipWhitespace(doc, 0, doc.Length);
        while (pos < doc.Length)
        {
            int breakAt = ParagraphBreak(doc, pos);
            int contentEnd = TrimEnd(doc, pos, breakAt);
            int before = pieces.Count;
            Sentences(doc, pos, contentEnd, pieces);
            if (pieces.Count > before)
                pieces[^1] = pieces[^1] with { ParagraphEnd = true };
            pos = SkipWhitespace(doc, breakAt, doc.Length);
        }
        return pieces;
    }

    // Index of the first '\n' of the next blank line (a line break, optional spaces, another line break) after pos,
    // or the document's length.
    private static int ParagraphBreak(string doc, int pos)
    {
        for (int i = doc.IndexOf('\n', pos); i >= 0; i = doc.IndexOf('\n', i + 1))
        {
            int j = i + 1;
            while (j < doc.Length && doc[j] is ' ' or '\t' or '\r' or '\f' or '\v') j++;
            if (j < doc.Length && doc[j] == '\n') return i;
            if (j >= doc.Length) return i;
        }
        return doc.Length;
    }

    private void Sentences(string doc, int start, int end, List<Piece> into)
    {
        int s = start;
        int i = start;
        while (i < end)
        {
            char c = doc[i];
            int cut = -1, next = -1;
            if (c == '\n')
            {
                cut = TrimEnd(doc, s, i);
                next = SkipWhitespace(doc, i, end);
            }
            else if (IsTerminator(c))
            {
                int j = i + 1;
                while (j < end && (IsTerminator(doc[j]) || IsCloser(doc[j]))) j++;
                if (j >= end || char.IsWhiteSpace(doc[j]) || IsCjkStop(c))
                {
                    cut = j;
                    next = SkipWhitespace(doc, j, end);
                }
                else
                {
                    i = j;
                    continue;
                }
            }
            if (cut >= 0)
            {
                if (cut > s) AddSentence(doc, s, cut, into);
                s = next;
                i = next;
                continue;
            }
            i++;
        }
        if (s < end) AddSentence(doc, s, end, into);
    }

    private void AddSentence(string doc, int start, int end, List<Piece> into)
    {
        int tokens = _countTokens(doc[start..end]);
        if (tokens <= PieceLimit)
        {
            into.Add(new Piece(start, end, tokens, false));
            return;
        }
        // Too long for one chunk: pack its words (each counted once) into pieces within the limit.
        int pieceStart = -1, pieceEnd = -1, pieceTokens = 0;
        foreach (var (ws, we) in Words(doc, start, end))
        {
            int wt = _countTokens(doc[ws..we]);
            if (wt > PieceLimit)
            {
                if (pieceStart >= 0) into.Add(new Piece(pieceStart, pieceEnd, pieceTokens, false));
                pieceStart = -1;
                pieceTokens = 0;
                AddCharRuns(doc, ws, we, into);
                continue;
            }
            if (pieceStart >= 0 && pieceTokens + wt + 1 <= PieceLimit)
            {
                // +1: the space before a word may become its own token when words are joined.
                pieceEnd = we;
                pieceTokens += wt + 1;
                continue;
            }
            if (pieceStart >= 0) into.Add(new Piece(pieceStart, pieceEnd, pieceTokens, false));
            (pieceStart, pieceEnd, pieceTokens) = (ws, we, wt);
        }
        if (pieceStart >= 0) into.Add(new Piece(pieceStart, pieceEnd, pieceTokens, false));
    }

    // A word longer than a chunk's room (a URL, base64, text without spaces) in runs of CharRun characters,
    // never splitting a surrogate pair, packed up to the limit like words.
    private void AddCharRuns(string doc, int start, int end, List<Piece> into)
    {
        int pieceStart = -1, pieceEnd = -1, pieceTokens = 0;
        for (int i = start; i < end;)
        {
            int j = Math.Min(end, i + CharRun);
            if (j < end && char.IsHighSurrogate(doc[j - 1])) j++;
            int t = _countTokens(doc[i..j]);
            if (pieceStart >= 0 && pieceTokens + t + 1 <= PieceLimit)
            {
                pieceEnd = j;
                pieceTokens += t + 1; // +1: a token may straddle the join
            }
            else
            {
                if (pieceStart >= 0) into.Add(new Piece(pieceStart, pieceEnd, pieceTokens, false));
                (pieceStart, pieceEnd, pieceTokens) = (i, j, t);
            }
            i = j;
        }
        if (pieceStart >= 0) into.Add(new Piece(pieceStart, pieceEnd, pieceTokens, false));
    }

    private static IEnumerable<(int Start, int End)> Words(string doc, int start, int end)
    {
        int i = start;
        while (i < end)
        {
            int ws = i;
            while (i < end && !char.IsWhiteSpace(doc[i])) i++;
            int we = i;
            while (i < end && char.IsWhiteSpace(doc[i])) i++;
            yield return (ws, we);
        }
    }

    private static bool IsTerminator(char c) => c is '.' or '!' or '?' or '…' || IsCjkStop(c);

    private static bool IsCjkStop(char c) => c is '。' or '！' or '？';

    private static bool IsCloser(char c) => c is '"' or '\'' or ')' or ']' or '}' or '”' or '’' or '»' or '」' or '』' or '）';

    private static int SkipWhitespace(string doc, int i, int end)
    {
        while (i < end && char.IsWhiteSpace(doc[i])) i++;
        return i;
    }

    private static int TrimEnd(string doc, int start, int end)
    {
        while (end > start && char.IsWhiteSpace(doc[end - 1])) end--;
        return end;
    }
}
