using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

[assembly: InternalsVisibleTo("Actors.Engine.Tests")]

namespace Actors.Engine.Paging;

/// <summary>
/// Fixed-size KV pages: a free list, reference counts and prefix reuse (after nano-vllm's block manager).
/// A full page is identified by a hash chain over token ids, h_i = H(h_{i-1}, tokens of page i), whose root is
/// seeded with the model id, the RoPE profile and the sequence's variant, so KV computed for one model or RoPE
/// scaling is never reused under another. A page is registered under its hash only once its KV is computed
/// (<see cref="MarkComputed"/>), so a page being prefilled in chunks is never handed to another sequence half
/// written. Pages whose count drops to zero go back to the free list but stay findable by hash until the list hands
/// them out again; the list gives out unhashed pages first, then the least recently freed.
/// <para>
/// Tiers (ARCHITECTURE.md §3): with a <see cref="LowerTier"/> (the host page pool) a cached page about to be handed
/// out again is first copied down (spilled) instead of being forgotten, and the prefix lookup goes on past the device
/// hits into that tier: pages found there get fresh device pages filled from it (swap-in) before the caller computes
/// anything, and count as computed.
/// </para>
/// <para>
/// Copy-on-write without copies: only full pages whose KV is computed are ever shared (found by hash), and a full
/// page is never written again (a sequence writes only at positions ≥ its computed length, which lie past its shared
/// prefix because the last prompt token is never served from the cache); the page a sequence grows into, including its
/// last partial page, is always a fresh page of its own. So no write ever lands on a page another table holds, and two
/// sequences diverging in the middle of a page each have their own copy of that page from the start.
/// </para>
/// Not thread-safe: the engine loop owns it.
/// </summary>
public sealed class BlockManager
{
    private readonly int[] _refCount;
    private readonly UInt128[] _pageHash;
    private readonly bool[] _hashed;
    // Free list as an intrusive doubly linked list over page ids so a cached free page can leave it in O(1).
    private readonly int[] _prev, _next;
    private readonly bool[] _isFree;
    private int _head = -1, _tail = -1;
    private readonly Dictionary<UInt128, int> _byHash = [];
    private readonly UInt128 _root;
    private readonly byte[] _hashInput;
    // Cached pages handed out by TakeFresh during the current operation: their KV is still in the pool until the
    // caller's next forward, so they are spilled to the lower tier at the end of the operation in one batch.
    private readonly List<int> _spillPages = [];
    private readonly List<UInt128> _spillHashes = [];

    public BlockManager(int totalPages, int pageSize, string modelId, string ropeProfile)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalPages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        ArgumentNullException.ThrowIfNull(modelId);
        ArgumentNullException.ThrowIfNull(ropeProfile);
        TotalPages = totalPages;
        PageSize = pageSize;
        _refCount = new int[totalPages];
        _pageHash = new UInt128[totalPages];
        _hashed = new bool[totalPages];
        _prev = new int[totalPages];
        _next = new int[totalPages];
        _isFree = new bool[totalPages];
        for (int p = 0; p < totalPages; p++) PushTail(p);
        _root = HashBytes(Encoding.UTF8.GetBytes($"actors-kv/1\0{modelId}\0{ropeProfile}"));
        _hashInput = new byte[16 + 4 * pageSize];
    }

    public int TotalPages { get; }
    public int PageSize { get; }
    public int FreePages { get; private set; }
    public int UsedPages => TotalPages - FreePages;

    /// <summary>Free pages still findable by hash (their KV is reusable until handed out again).</summary>
    public int CachedFreePages { get; private set; }

    /// <summary>The tier below the device pool (the host page pool); null when there is none.</summary>
    internal ILowerKvTier? LowerTier { get; set; }

    /// <summary>Number of page tables holding <paramref name="page"/>.</summary>
    public int RefCount(int page) => _refCount[page];

    public bool IsFree(int page) => _isFree[page];

    /// <summary>Pages needed to hold <paramref name="tokens"/> tokens.</summary>
    public int PagesFor(int tokens) => (int)(((long)tokens + PageSize - 1) / PageSize);

    /// <summary>Whether <see cref="Allocate"/> of <paramref name="tokens"/> would find enough free pages.</summary>
    public bool CanAllocate(PageTable table, IReadOnlyList<int> tokens, bool reusePrefix = true) =>
        FreePagesNeeded(table, tokens, reusePrefix, out _) <= FreePages;

    /// <summary>
    /// Gives an empty table pages for all of <paramref name="tokens"/>: leading full pages found by hash are shared
    /// (their KV is already computed), pages found after them in the lower tier get fresh pages filled from it, the
    /// rest are fresh. <see cref="PageTable.CachedTokens"/> says how many leading tokens need no compute,
    /// <see cref="PageTable.HostHitTokens"/> how many of them came from the lower tier.
    /// The last token is never taken from a cache, so the caller always computes at least one position (its logits).
    /// </summary>
    public void Allocate(PageTable table, IReadOnlyList<int> tokens, bool reusePrefix = true)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(tokens);
        if (table.Count != 0) throw new InvalidOperationException("Allocate needs an empty page table; Deallocate it first.");
        int needed = FreePagesNeeded(table, tokens, reusePrefix, out var hits);
        if (needed > FreePages)
            throw new InvalidOperationException($"{tokens.Count} tokens need {needed} free KV pages; {FreePages} of {TotalPages} are free.");
        var lower = LowerTier;
        int lowerHits = 0;
        // Claim the device hits before any fresh page is taken, so a free cached hit is never handed out as fresh.
        foreach (var (page, _) in hits)
        {
            if (page < 0) { lowerHits++; continue; }
            if (_isFree[page]) { Unlink(page); _refCount[page] = 1; }
            else _refCount[page]++;
        }
        Span<UInt128> lowerHashes = lowerHits == 0 ? [] : new UInt128[lowerHits];
        Span<int> lowerPages = lowerHits == 0 ? [] : new int[lowerHits];
        for (int i = 0, j = 0; i < hits.Count; i++)
            if (hits[i].Page < 0) { lowerHashes[j++] = hits[i].Hash; lower!.Pin(hits[i].Hash); }
        try
        {
            for (int i = 0, j = 0; i < hits.Count; i++)
            {
                int page = hits[i].Page;
                if (page < 0) lowerPages[j++] = page = TakeFresh();
                table.PageList.Add(page);
                table.ChainHashes.Add(hits[i].Hash);
            }
            for (int i = hits.Count, n = PagesFor(tokens.Count); i < n; i++) table.PageList.Add(TakeFresh());
            FlushSpills(); // before the swap-in below overwrites any page that was handed out cached
            if (lowerHits > 0)
            {
                lower!.Load(lowerHashes, lowerPages);
                for (int j = 0; j < lowerHits; j++) Register(lowerPages[j], lowerHashes[j]);
            }
        }
        finally
        {
            foreach (var h in lowerHashes) lower!.Unpin(h);
        }
        table.CachedTokens = hits.Count * PageSize;
        table.HostHitTokens = lowerHits * PageSize;
    }

    /// <summary>Releases every page of the table (each once); pages nobody holds return to the free list.</summary>
    public void Deallocate(PageTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        // Last page first, so a sequence's prefix pages are the last of its pages to be handed out again.
        for (int i = table.PageList.Count - 1; i >= 0; i--)
        {
            int page = table.PageList[i];
            if (_refCount[page] <= 0) throw new InvalidOperationException($"page {page} released while free (reference count {_refCount[page]})");
            if (--_refCount[page] == 0)
            {
                if (_hashed[page]) PushTail(page); else PushHead(page);
            }
        }
        table.PageList.Clear();
        table.ChainHashes.Clear();
        table.CachedTokens = 0;
        table.HostHitTokens = 0;
    }

    /// <summary>Whether the table can grow to hold <paramref name="length"/> tokens.</summary>
    public bool CanAppend(PageTable table, int length) => PagesFor(length) - table.Count <= FreePages;

    /// <summary>Grows the table with fresh pages so it holds <paramref name="length"/> tokens (no-op if it does).</summary>
    public void MayAppend(PageTable table, int length)
    {
        if (!CanAppend(table, length))
            throw new InvalidOperationException($"growing to {length} tokens needs {PagesFor(length) - table.Count} free KV pages; {FreePages} are free.");
        while (table.Count < PagesFor(length)) table.PageList.Add(TakeFresh());
        FlushSpills();
    }

    /// <summary>
    /// Records that the KV of the first <paramref name="computedTokens"/> of <paramref name="tokens"/> is written:
    /// every page now full and computed becomes findable by its chain hash.
    /// </summary>
    public void MarkComputed(PageTable table, IReadOnlyList<int> tokens, int computedTokens)
    {
        int full = Math.Min(Math.Min(computedTokens, tokens.Count) / PageSize, table.Count);
        for (int i = table.ChainHashes.Count; i < full; i++)
        {
            var h = Chain(i == 0 ? Root(table) : table.ChainHashes[i - 1], tokens, i);
            table.ChainHashes.Add(h);
            int page = table.PageList[i];
            if (_hashed[page]) continue; // a shared page is already registered (under this same hash)
            // First writer wins: an identical page computed concurrently by another sequence stays unregistered.
            Register(page, h);
        }
    }

    /// <summary>Chain hashes of the first <paramref name="pages"/> full pages of <paramref name="tokens"/> under <paramref name="variant"/>.</summary>
    internal UInt128[] ChainHashes(IReadOnlyList<int> tokens, string variant, int pages)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (pages < 0 || (long)pages * PageSize > tokens.Count)
            throw new ArgumentOutOfRangeException(nameof(pages), pages, $"{tokens.Count} tokens hold {tokens.Count / PageSize} full pages");
        var result = new UInt128[pages];
        var h = Root(variant);
        for (int i = 0; i < pages; i++) result[i] = h = Chain(h, tokens, i);
        return result;
    }

    /// <summary>The device page registered under <paramref name="hash"/>, or −1.</summary>
    internal int Find(UInt128 hash) => _byHash.TryGetValue(hash, out int page) ? page : -1;

    /// <summary>
    /// Leading full pages of <paramref name="tokens"/> on the device (registered), then, after those, in the lower tier.
    /// </summary>
    public (int DevicePages, int LowerPages) Probe(IReadOnlyList<int> tokens, string variant)
    {
        var hashes = ChainHashes(tokens, variant, tokens.Count / PageSize);
        int device = 0, lower = 0;
        while (device < hashes.Length && _byHash.ContainsKey(hashes[device])) device++;
        if (LowerTier is { } tier)
            while (device + lower < hashes.Length && tier.Contains(hashes[device + lower])) lower++;
        return (device, lower);
    }

    /// <summary>
    /// Copies the free (no table holds them) cached device pages of the prefix of <paramref name="tokens"/> to the lower
    /// tier and forgets them on the device, so the free list hands them out first. The walk goes on while each page is
    /// on the device or already in the lower tier. Returns the pages moved.
    /// </summary>
    public int Offload(IReadOnlyList<int> tokens, string variant)
    {
        if (LowerTier is not { } lower) return 0;
        var hashes = ChainHashes(tokens, variant, tokens.Count / PageSize);
        var pages = new List<int>();
        var moved = new List<UInt128>();
        foreach (var h in hashes)
        {
            if (_byHash.TryGetValue(h, out int page))
            {
                if (_refCount[page] == 0) { pages.Add(page); moved.Add(h); }
            }
            else if (!lower.Contains(h)) break;
        }
        if (pages.Count == 0) return 0;
        var stored = new bool[pages.Count];
        lower.Spill(CollectionsMarshal.AsSpan(pages), CollectionsMarshal.AsSpan(moved), stored);
        int count = 0;
        for (int i = 0; i < pages.Count; i++)
        {
            if (!stored[i]) continue; // the lower tier had no room: the page stays cached on the device
            int page = pages[i];
            Unlink(page);
            Unregister(page);
            PushHead(page);
            count++;
        }
        return count;
    }

    /// <summary>
    /// Forgets the free cached device pages of the prefix of <paramref name="tokens"/> (no table holds them) without
    /// copying them anywhere: they go to the head of the free list as fresh pages. Pages a table holds stay. Returns the
    /// pages forgotten. (A session deleted, or a measurement that needs the prefix gone from the device.)
    /// </summary>
    public int Drop(IReadOnlyList<int> tokens, string variant) => Drop(ChainHashes(tokens, variant, tokens.Count / PageSize));

    /// <summary>As <see cref="Drop(IReadOnlyList{int}, string)"/> for pages given by their chain hashes.</summary>
    internal int Drop(UInt128[] hashes)
    {
        int count = 0;
        foreach (var h in hashes)
        {
            if (!_byHash.TryGetValue(h, out int page) || _refCount[page] != 0) continue;
            Unlink(page);
            Unregister(page);
            PushHead(page);
            count++;
        }
        return count;
    }

    /// <summary>Pages in the free list, head first (for invariant checks).</summary>
    internal IEnumerable<int> FreeList()
    {
        for (int p = _head; p != -1; p = _next[p]) yield return p;
    }

    /// <summary>Whether a free page is still findable by hash.</summary>
    internal bool IsCached(int page) => _hashed[page];

    private int FreePagesNeeded(PageTable table, IReadOnlyList<int> tokens, bool reusePrefix, out List<(int Page, UInt128 Hash)> hits)
    {
        hits = [];
        int pages = PagesFor(tokens.Count);
        if (reusePrefix && (_byHash.Count > 0 || LowerTier is not null))
        {
            int matchable = (tokens.Count - 1) / PageSize;
            var h = Root(table);
            var lower = LowerTier;
            for (int i = 0; i < matchable; i++)
            {
                h = Chain(h, tokens, i);
                // Device first; a page the device has lost may still be in the lower tier (page −1: swap in).
                if (_byHash.TryGetValue(h, out int page)) hits.Add((page, h));
                else if (lower is not null && lower.Contains(h)) hits.Add((-1, h));
                else break;
            }
        }
        int needed = pages;
        foreach (var (page, _) in hits) if (page >= 0 && !_isFree[page]) needed--; // held pages are shared, not taken
        return needed;
    }

    private UInt128 Root(PageTable table) => Root(table.Variant);

    private UInt128 Root(string variant) =>
        variant.Length == 0 ? _root : Chain(_root, Encoding.UTF8.GetBytes(variant));

    private UInt128 Chain(UInt128 previous, IReadOnlyList<int> tokens, int pageIndex)
    {
        var span = _hashInput.AsSpan();
        BinaryPrimitives.WriteUInt128LittleEndian(span, previous);
        for (int j = 0; j < PageSize; j++)
            BinaryPrimitives.WriteInt32LittleEndian(span[(16 + 4 * j)..], tokens[pageIndex * PageSize + j]);
        return HashBytes(span);
    }

    private static UInt128 Chain(UInt128 previous, ReadOnlySpan<byte> data)
    {
        var buffer = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt128LittleEndian(buffer, previous);
        data.CopyTo(buffer.AsSpan(16));
        return HashBytes(buffer);
    }

    // 128 bits of SHA-256: collisions are out of reach, so a hash match is taken as equal content.
    private static UInt128 HashBytes(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(data, digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }

    private int TakeFresh()
    {
        int page = _head;
        if (page < 0) throw new InvalidOperationException("no free KV page");
        Unlink(page);
        if (_hashed[page])
        {
            if (LowerTier is not null) { _spillPages.Add(page); _spillHashes.Add(_pageHash[page]); }
            Unregister(page);
        }
        _refCount[page] = 1;
        return page;
    }

    private void Register(int page, UInt128 hash)
    {
        if (_byHash.TryAdd(hash, page)) { _pageHash[page] = hash; _hashed[page] = true; }
    }

    private void Unregister(int page)
    {
        if (_byHash.TryGetValue(_pageHash[page], out int owner) && owner == page) _byHash.Remove(_pageHash[page]);
        _hashed[page] = false;
    }

    /// <summary>Copies the cached pages handed out by this operation down to the lower tier (their KV is still intact).</summary>
    private void FlushSpills()
    {
        if (_spillPages.Count == 0) return;
        try
        {
            LowerTier!.Spill(CollectionsMarshal.AsSpan(_spillPages), CollectionsMarshal.AsSpan(_spillHashes), new bool[_spillPages.Count]);
        }
        finally
        {
            _spillPages.Clear();
            _spillHashes.Clear();
        }
    }

    private void PushTail(int page)
    {
        if (_hashed[page]) CachedFreePages++;
        _prev[page] = _tail; _next[page] = -1;
        if (_tail >= 0) _next[_tail] = page; else _head = page;
        _tail = page;
        _isFree[page] = true; FreePages++;
    }

    private void PushHead(int page)
    {
        if (_hashed[page]) CachedFreePages++;
        _next[page] = _head; _prev[page] = -1;
        if (_head >= 0) _prev[_head] = page; else _tail = page;
        _head = page;
        _isFree[page] = true; FreePages++;
    }

    private void Unlink(int page)
    {
        if (!_isFree[page]) throw new InvalidOperationException($"page {page} is not free");
        if (_hashed[page]) CachedFreePages--;
        if (_prev[page] >= 0) _next[_prev[page]] = _next[page]; else _head = _next[page];
        if (_next[page] >= 0) _prev[_next[page]] = _prev[page]; else _tail = _prev[page];
        _isFree[page] = false; FreePages--;
    }
}
