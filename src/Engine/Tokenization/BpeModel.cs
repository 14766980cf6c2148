using System.Collections.Concurrent;
using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>
/// tokenizers' BPE model: a word is split into code points (with optional subword prefix / word suffix, byte
/// fallback and unknown-token fusing), then merged by rank: the lowest-ranked mergeable adjacent pair first, the
/// leftmost among equal ranks, until no pair merges. The priority queue and its stale-entry check follow
/// tokenizers' Word::merge_all so that even odd merge tables give the same result.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 10_000;
    private const int MaxCachedWordLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabReverse;
    // (left id << 32 | right id) -> (rank, merged id)
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public BpeModel(Dictionary<string, int> vocab, Dictionary<long, (int Rank, int NewId)> merges, string? unkToken,
        string? continuingSubwordPrefix, string? endOfWordSuffix, bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocab = vocab;
        _merges = merges;
        UnkToken = unkToken;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        EndOfWordSuffix = endOfWordSuffix;
        FuseUnk = fuseUnk;
        ByteFallback = byteFallback;
        IgnoreMerges = ignoreMerges;
        _vocabReverse = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab) _vocabReverse[id] = token;
    }

    public string? UnkToken { get; }
    public string? ContinuingSubwordPrefix { get; }
    public string? EndOfWordSuffix { get; }
    public bool FuseUnk { get; }
    public bool ByteFallback { get; }
    public bool IgnoreMerges { get; }

    /// <summary>Entries in the model's vocabulary (what tokenizers calls the model's vocab size).</summary>
    public int VocabCount => _vocab.Count;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabReverse.TryGetValue(id, out var token) ? token : null;

    public static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Ids for one pre-tokenized word.</summary>
    public void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (IgnoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (_cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int[] ids = MergeWord(word);
        if (word.Length < MaxCachedWordLength && _cache.Count < CacheCapacity) _cache.TryAdd(word, ids);
        output.AddRange(ids);
    }

    private struct Symbol
    {
        public int Id;
        public int Prev;
        public int Next;
        public bool Removed;
    }

    private int[] MergeWord(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        void Add(int id)
        {
            int index = symbols.Count;
            symbols.Add(new Symbol { Id = id, Prev = index - 1, Next = -1 });
            if (index > 0)
            {
                var prev = symbols[index - 1];
                prev.Next = index;
                symbols[index - 1] = prev;
            }
        }

        int? pendingUnk = null;
        int i = 0;
        while (i < word.Length)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            bool isFirst = i == 0;
            bool isLast = i + len >= word.Length;
            string s = word.Substring(i, len);
            i += len;
            if (!isFirst && ContinuingSubwordPrefix is not null) s = ContinuingSubwordPrefix + s;
            if (isLast && EndOfWordSuffix is not null) s += EndOfWordSuffix;

            if (_vocab.TryGetValue(s, out int id))
            {
                if (pendingUnk is int unk) { Add(unk); pendingUnk = null; }
                Add(id);
                continue;
            }
            if (ByteFallback && TryByteTokens(s, out var byteIds))
            {
                // As tokenizers does, a pending unknown is not flushed before byte tokens.
                foreach (int b in byteIds) Add(b);
                continue;
            }
            if (UnkToken is not null)
            {
                int unkId = _vocab[UnkToken]; // checked at load
                if (pendingUnk is int previous)
                {
                    if (FuseUnk) continue;
                    Add(previous);
                }
                pendingUnk = unkId;
            }
        }
        if (pendingUnk is int last) Add(last);

        // Lowest rank first, then lowest position (tokenizers' Merge ordering).
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (int p = 0; p + 1 < symbols.Count; p++)
            if (_merges.TryGetValue(PairKey(symbols[p].Id, symbols[p + 1].Id), out var m))
                queue.Enqueue((p, m.NewId), (m.Rank, p));

        while (queue.TryDequeue(out var top, out _))
        {
            var current = symbols[top.Pos];
            if (current.Removed || current.Next == -1) continue;
            int nextPos = current.Next;
            var right = symbols[nextPos];
            // Skip stale entries: the pair at this position changed since it was queued.
            if (!_merges.TryGetValue(PairKey(current.Id, right.Id), out var now) || now.NewId != top.NewId) continue;

            current.Id = top.NewId;
            current.Next = right.Next;
            symbols[top.Pos] = current;
            right.Removed = true;
            symbols[nextPos] = right;
            if (right.Next >= 0)
            {
                var after = symbols[right.Next];
                after.Prev = top.Pos;
                symbols[right.Next] = after;
            }

            if (current.Prev >= 0 && _merges.TryGetValue(PairKey(symbols[current.Prev].Id, current.Id), out var left))
                queue.Enqueue((current.Prev, left.NewId), (left.Rank, current.Prev));
            if (current.Next >= 0 && _merges.TryGetValue(PairKey(current.Id, symbols[current.Next].Id), out var next))
                queue.Enqueue((top.Pos, next.NewId), (next.Rank, top.Pos));
        }

        var result = new List<int>(symbols.Count);
        foreach (var s in symbols)
            if (!s.Removed) result.Add(s.Id);
        return result.ToArray();
    }

    private bool TryByteTokens(string s, out List<int> ids)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        ids = new List<int>(bytes.Length);
        foreach (byte b in bytes)
        {
            if (!_vocab.TryGetValue(ByteTokenName(b), out int id)) return false;
            ids.Add(id);
        }
        return true;
    }

    /// <summary>"&lt;0x0A&gt;": the SentencePiece name of a byte token (upper-case hex digits).</summary>
    public static string ByteTokenName(byte b) => $"<0x{b:X2}>";
}
