using Actors.Engine.Paging;

namespace Actors.Engine.Tests.Paging;

/// <summary>
/// The block manager over a lower tier: a simulated device pool whose "KV" of a page is the token ids it holds, and an
/// unbounded (or bounded) lower tier that copies that content down and back. Whatever path a page takes, a cached
/// page must hold exactly the tokens of its position.
/// </summary>
public class BlockManagerTierTests
{
    private const int P = 4;

    private static int[] Tokens(int n, int seed) => Enumerable.Range(0, n).Select(i => (i * 31 + seed * 7) % 50).ToArray();

    /// <summary>Device content per page and a lower tier by hash, with LRU eviction at a capacity.</summary>
    private sealed class FakeTier(int pages, int capacity = int.MaxValue) : ILowerKvTier
    {
        public readonly string?[] Device = new string?[pages];
        public readonly Dictionary<UInt128, string> Held = [];
        public readonly List<UInt128> Order = []; // least recent first
        public readonly Dictionary<UInt128, int> Pins = [];
        public int Spilled, Loaded, Dropped;

        public bool Contains(UInt128 hash) => Held.ContainsKey(hash);
        public void Pin(UInt128 hash) => Pins[hash] = Pins.GetValueOrDefault(hash) + 1;
        public void Unpin(UInt128 hash) { if (--Pins[hash] == 0) Pins.Remove(hash); }

        public void Spill(ReadOnlySpan<int> pageIds, ReadOnlySpan<UInt128> hashes, Span<bool> stored)
        {
            for (int i = 0; i < pageIds.Length; i++)
            {
                Assert.NotNull(Device[pageIds[i]]); // only computed pages are cached, so only they spill
                if (Held.ContainsKey(hashes[i])) { Assert.Equal(Held[hashes[i]], Device[pageIds[i]]); stored[i] = true; continue; }
                if (Held.Count >= capacity)
                {
                    var victim = Order.FirstOrDefault(h => !Pins.ContainsKey(h));
                    if (victim == default) { stored[i] = false; Dropped++; continue; }
                    Held.Remove(victim);
                    Order.Remove(victim);
                }
                Held[hashes[i]] = Device[pageIds[i]]!;
                Order.Add(hashes[i]);
                stored[i] = true;
                Spilled++;
            }
        }

        public void Load(ReadOnlySpan<UInt128> hashes, ReadOnlySpan<int> pageIds)
        {
            for (int i = 0; i < hashes.Length; i++)
            {
                Assert.True(Pins.ContainsKey(hashes[i]), "a page is loaded only while its admission pins it");
                Device[pageIds[i]] = Held[hashes[i]];
                Loaded++;
            }
        }
    }

    private static string Content(IReadOnlyList<int> tokens, int page) => string.Join(",", tokens.Skip(page * P).Take(P));

    /// <summary>"Computes" the first <paramref name="computed"/> tokens: writes their pages' content, then registers them.</summary>
    private static void Compute(BlockManager bm, FakeTier tier, PageTable table, IReadOnlyList<int> tokens, int computed)
    {
        for (int i = table.CachedTokens / P; i < (computed + P - 1) / P; i++)
            tier.Device[table.Pages[i]] = Content(tokens, i);
        bm.MarkComputed(table, tokens, computed);
    }

    private static void AssertCachedContent(FakeTier tier, PageTable table, IReadOnlyList<int> tokens)
    {
        for (int i = 0; i < table.CachedTokens / P; i++)
            Assert.Equal(Content(tokens, i), tier.Device[table.Pages[i]]);
    }

    [Fact]
    public void A_cached_page_handed_out_again_spills_and_a_later_prefix_swaps_it_back_in()
    {
        var bm = new BlockManager(4, P, "m", "rope");
        var tier = new FakeTier(4);
        bm.LowerTier = tier;
        var a = Tokens(13, 1); // 3 full pages + 1
        var ta = new PageTable();
        bm.Allocate(ta, a);
        Compute(bm, tier, ta, a, a.Length);
        bm.Deallocate(ta);
        Assert.Equal(3, bm.CachedFreePages);

        var b = Tokens(9, 2); // takes 3 pages: the unhashed one first, then the two least recently freed cached pages
        var tb = new PageTable();
        bm.Allocate(tb, b);
        Assert.Equal(2, tier.Spilled);
        Assert.Equal(1, bm.CachedFreePages);
        Compute(bm, tier, tb, b, b.Length);
        bm.Deallocate(tb);

        var probe = bm.Probe(a, "");
        Assert.Equal((1, 2), probe); // page 0 still on the device, pages 1 and 2 below it

        var a2 = a.Concat(Tokens(3, 9)).ToArray();
        var t2 = new PageTable();
        bm.Allocate(t2, a2);
        Assert.Equal(12, t2.CachedTokens);
        Assert.Equal(8, t2.HostHitTokens);
        Assert.Equal(4, t2.DeviceHitTokens);
        Assert.Equal(2, tier.Loaded);
        AssertCachedContent(tier, t2, a2);
        Assert.Empty(tier.Pins);
        // Swapped-in pages are registered again: once released, a third table finds them on the device.
        var swappedPages = t2.Pages.Take(3).ToArray();
        bm.Deallocate(t2);
        var t3 = new PageTable();
        bm.Allocate(t3, a2);
        Assert.Equal(12, t3.DeviceHitTokens);
        Assert.Equal(swappedPages, t3.Pages.Take(3));
    }

    [Fact]
    public void The_last_token_is_computed_even_when_every_page_is_in_the_lower_tier()
    {
        var bm = new BlockManager(4, P, "m", "rope");
        var tier = new FakeTier(4);
        bm.LowerTier = tier;
        var a = Tokens(8, 3);
        var ta = new PageTable();
        bm.Allocate(ta, a);
        Compute(bm, tier, ta, a, 8);
        bm.Deallocate(ta);
        Assert.Equal(2, bm.Offload(a, ""));
        Assert.Equal((0, 2), bm.Probe(a, ""));
        var t = new PageTable();
        bm.Allocate(t, a);
        Assert.Equal(4, t.CachedTokens); // page 1 holds the last token
        Assert.Equal(4, t.HostHitTokens);
    }

    [Fact]
    public void Offload_moves_only_pages_no_table_holds_and_frees_them_first()
    {
        var bm = new BlockManager(8, P, "m", "rope");
        var tier = new FakeTier(8);
        bm.LowerTier = tier;
        var a = Tokens(12, 4);
        var ta = new PageTable();
        bm.Allocate(ta, a);
        Compute(bm, tier, ta, a, 12);
        var shared = a.Take(5).ToArray();
        var ts = new PageTable();
        bm.Allocate(ts, shared); // holds page 0
        bm.Deallocate(ta);
        Assert.Equal(2, bm.Offload(a, ""));
        Assert.Equal(2, tier.Spilled);
        Assert.Equal((1, 2), bm.Probe(a, ""));
        Assert.Equal(0, bm.CachedFreePages);
        // The offloaded pages are at the head of the free list, unhashed.
        var next = new PageTable();
        bm.Allocate(next, Tokens(5, 7));
        Assert.Equal(2, tier.Spilled); // nothing cached had to spill
        Assert.Equal(0, bm.Offload(Tokens(5, 7), "")); // nothing computed: nothing to move
    }

    [Fact]
    public void Without_room_below_an_offload_keeps_the_page_on_the_device()
    {
        var bm = new BlockManager(8, P, "m", "rope");
        var tier = new FakeTier(8, capacity: 1);
        bm.LowerTier = tier;
        var a = Tokens(9, 5);
        var ta = new PageTable();
        bm.Allocate(ta, a);
        Compute(bm, tier, ta, a, 9);
        bm.Deallocate(ta);
        tier.Pin(new UInt128(1, 1)); // not held; irrelevant pin
        Assert.Equal(2, bm.Offload(a, "")); // capacity 1: the second page evicts the first (nothing pinned)
        Assert.Single(tier.Held);
        Assert.Equal((0, 0), bm.Probe(a, "")); // page 0 evicted below, page 1 below but unreachable through the chain
    }

    [Theory]
    [InlineData(1, int.MaxValue)]
    [InlineData(2, 6)]
    [InlineData(3, 2)]
    [InlineData(4, 0)]
    public void Random_operations_with_a_lower_tier_keep_content_and_invariants(int seed, int capacity)
    {
        var rng = new Random(seed);
        int total = 16;
        var bm = new BlockManager(total, P, "m", "rope");
        var tier = new FakeTier(total, capacity);
        bm.LowerTier = tier;
        var stems = Enumerable.Range(0, 3).Select(s => Tokens(17, 100 + s)).ToArray();
        var live = new List<(PageTable Table, List<int> Tokens, int Computed)>();
        long lowerHits = 0;
        for (int step = 0; step < 3000; step++)
        {
            int op = rng.Next(5);
            if (op == 0)
            {
                var stem = stems[rng.Next(stems.Length)];
                var tokens = stem.Take(rng.Next(1, stem.Length + 1)).Concat(Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(50))).ToList();
                var table = new PageTable();
                if (!bm.CanAllocate(table, tokens)) continue;
                bm.Allocate(table, tokens);
                Assert.True(table.CachedTokens < tokens.Count);
                Assert.Equal(bm.PagesFor(tokens.Count), table.Count);
                AssertCachedContent(tier, table, tokens);
                lowerHits += table.HostHitTokens;
                live.Add((table, tokens, table.CachedTokens));
            }
            else if (op == 1 && live.Count > 0)
            {
                int i = rng.Next(live.Count);
                bm.Deallocate(live[i].Table);
                live.RemoveAt(i);
            }
            else if (op == 2 && live.Count > 0)
            {
                int i = rng.Next(live.Count);
                var (table, tokens, computed) = live[i];
                int next = Math.Min(tokens.Count, computed + rng.Next(1, 8));
                // Writes land only at positions ≥ computed: never on a page another table holds (copy-on-write).
                for (int pos = computed; pos < next; pos++)
                    Assert.Equal(1, bm.RefCount(table.Pages[pos / P]));
                for (int pg = computed / P; pg < (next + P - 1) / P; pg++) tier.Device[table.Pages[pg]] = Content(tokens, pg);
                bm.MarkComputed(table, tokens, next);
                live[i] = (table, tokens, next);
            }
            else if (op == 3 && live.Count > 0)
            {
                int i = rng.Next(live.Count);
                var (table, tokens, computed) = live[i];
                if (computed < tokens.Count) continue;
                if (!bm.CanAppend(table, tokens.Count + 1)) continue;
                tokens.Add(rng.Next(50));
                bm.MayAppend(table, tokens.Count);
            }
            else if (op == 4)
            {
                var stem = stems[rng.Next(stems.Length)];
                bm.Offload(stem, "");
            }
            Assert.Empty(tier.Pins);
            Assert.True(tier.Held.Count <= capacity);
            Assert.Equal(bm.TotalPages, bm.FreePages + bm.UsedPages);
            Assert.True(bm.CachedFreePages <= bm.FreePages);
        }
        if (capacity > 2) Assert.True(lowerHits > 0, "the workload swapped pages in from the lower tier");
    }
}
