using Actors.Engine.Paging;

namespace Actors.Engine.Tests.Paging;

public class BlockManagerTests
{
    private const int P = 4;

    private static int[] Seq(params int[] t) => t;

    private static int[] Tokens(int n, int seed) => Enumerable.Range(0, n).Select(i => (i * 31 + seed * 7) % 50).ToArray();

    /// <summary>Every invariant between the manager and the tables that hold pages.</summary>
    private static void CheckInvariants(BlockManager bm, IEnumerable<PageTable> tables)
    {
        var holders = new int[bm.TotalPages];
        foreach (var t in tables)
        {
            Assert.Equal(t.Count, t.Pages.Distinct().Count()); // a table never holds a page twice
            foreach (int p in t.Pages) holders[p]++;
        }
        var free = bm.FreeList().ToList();
        Assert.Equal(free.Count, free.Distinct().Count()); // no page is in the free list twice
        Assert.Equal(bm.FreePages, free.Count);
        Assert.Equal(bm.TotalPages, bm.FreePages + bm.UsedPages);
        for (int p = 0; p < bm.TotalPages; p++)
        {
            Assert.Equal(holders[p], bm.RefCount(p));
            Assert.Equal(holders[p] == 0, bm.IsFree(p));
            Assert.Equal(holders[p] == 0, free.Contains(p));
        }
    }

    [Fact]
    public void Allocate_takes_pages_for_every_token_and_Deallocate_gives_them_back()
    {
        var bm = new BlockManager(10, P, "m", "rope");
        var t = new PageTable();
        Assert.True(bm.CanAllocate(t, Tokens(9, 1)));
        bm.Allocate(t, Tokens(9, 1));
        Assert.Equal(3, t.Count);
        Assert.Equal(7, bm.FreePages);
        Assert.Equal(0, t.CachedTokens);
        bm.Deallocate(t);
        Assert.Equal(0, t.Count);
        Assert.Equal(10, bm.FreePages);
        bm.Deallocate(t); // an emptied table releases nothing twice
        Assert.Equal(10, bm.FreePages);
    }

    [Fact]
    public void Allocate_refuses_when_pages_run_out_and_changes_nothing()
    {
        var bm = new BlockManager(2, P, "m", "rope");
        var t = new PageTable();
        Assert.False(bm.CanAllocate(t, Tokens(9, 1)));
        Assert.Throws<InvalidOperationException>(() => bm.Allocate(t, Tokens(9, 1)));
        Assert.Equal(2, bm.FreePages);
        Assert.Equal(0, t.Count);
    }

    [Fact]
    public void Computed_full_pages_are_shared_by_a_later_sequence_with_the_same_prefix()
    {
        var bm = new BlockManager(16, P, "m", "rope");
        var prompt = Tokens(11, 2); // pages: 4 + 4 + 3
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, prompt.Length);

        var other = prompt.Take(8).Concat(Seq(49, 48, 47, 46, 45)).ToArray();
        var b = new PageTable();
        bm.Allocate(b, other);
        Assert.Equal(8, b.CachedTokens);
        Assert.Equal(a.Pages.Take(2), b.Pages.Take(2));
        Assert.NotEqual(a.Pages[2], b.Pages[2]);
        Assert.Equal(2, bm.RefCount(a.Pages[0]));
        Assert.Equal(2, bm.RefCount(a.Pages[1]));
        CheckInvariants(bm, [a, b]);
    }

    [Fact]
    public void Pages_are_found_only_after_their_KV_is_marked_computed()
    {
        var bm = new BlockManager(16, P, "m", "rope");
        var prompt = Tokens(12, 3);
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, 5); // only page 0 is full and computed
        var b = new PageTable();
        bm.Allocate(b, prompt);
        Assert.Equal(4, b.CachedTokens);
        Assert.Equal(a.Pages[0], b.Pages[0]);
    }

    [Fact]
    public void The_last_token_is_never_served_from_the_cache()
    {
        var bm = new BlockManager(16, P, "m", "rope");
        var prompt = Tokens(8, 4); // exactly two full pages
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, 8);
        var b = new PageTable();
        bm.Allocate(b, prompt);
        Assert.Equal(4, b.CachedTokens); // page 1 holds the last token: recomputed for its logits
        Assert.Equal(2, b.Count);
    }

    [Fact]
    public void Page_identity_depends_on_model_rope_profile_variant_and_every_earlier_token()
    {
        var prompt = Tokens(12, 5);
        UInt128[] Chain(string model, string rope, string variant, int[] tokens)
        {
            var bm = new BlockManager(8, P, model, rope);
            var t = new PageTable(variant);
            bm.Allocate(t, tokens);
            bm.MarkComputed(t, tokens, tokens.Length);
            return [.. t.ChainHashes];
        }
        var baseline = Chain("m", "rope", "", prompt);
        Assert.Equal(3, baseline.Length);
        Assert.Equal(baseline, Chain("m", "rope", "", prompt));
        foreach (var other in new[] { Chain("m2", "rope", "", prompt), Chain("m", "rope-linear", "", prompt), Chain("m", "rope", "v", prompt) })
            for (int i = 0; i < 3; i++) Assert.NotEqual(baseline[i], other[i]);
        // A change in page 0 changes the identity of every later page (a chain, not per-page hashes).
        var changed = (int[])prompt.Clone();
        changed[1] ^= 1;
        var chained = Chain("m", "rope", "", changed);
        for (int i = 0; i < 3; i++) Assert.NotEqual(baseline[i], chained[i]);
        // A change in page 2 leaves pages 0 and 1 alone.
        changed = (int[])prompt.Clone();
        changed[9] ^= 1;
        chained = Chain("m", "rope", "", changed);
        Assert.Equal(baseline[..2], chained[..2]);
        Assert.NotEqual(baseline[2], chained[2]);
    }

    [Fact]
    public void A_table_variant_never_hits_pages_of_another_variant()
    {
        var prompt = Tokens(12, 6);
        var bm = new BlockManager(8, P, "m", "rope");
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, 12);
        bm.Deallocate(a);
        var miss = new PageTable("rope:other-frequencies");
        bm.Allocate(miss, prompt);
        Assert.Equal(0, miss.CachedTokens);
        bm.Deallocate(miss);
        var hit = new PageTable();
        bm.Allocate(hit, prompt);
        Assert.Equal(8, hit.CachedTokens);
    }

    [Fact]
    public void Released_pages_stay_findable_until_handed_out_again()
    {
        var bm = new BlockManager(4, P, "m", "rope");
        var prompt = Tokens(9, 7); // 3 pages, 2 full
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, 9);
        var cached = a.Pages.Take(2).ToArray();
        bm.Deallocate(a);
        Assert.Equal(4, bm.FreePages);
        Assert.True(bm.IsCached(cached[0]) && bm.IsCached(cached[1]));

        var b = new PageTable();
        bm.Allocate(b, prompt);
        Assert.Equal(8, b.CachedTokens);
        Assert.Equal(cached, b.Pages.Take(2));
        bm.Deallocate(b);

        // A sequence that needs every page evicts the cached ones.
        var c = new PageTable();
        bm.Allocate(c, Tokens(16, 8));
        Assert.False(bm.IsCached(cached[0]) || bm.IsCached(cached[1]));
        bm.Deallocate(c);
        var d = new PageTable();
        bm.Allocate(d, prompt);
        Assert.Equal(0, d.CachedTokens);
    }

    [Fact]
    public void Unhashed_pages_are_handed_out_before_cached_ones()
    {
        var bm = new BlockManager(6, P, "m", "rope");
        var prompt = Tokens(9, 9);
        var a = new PageTable();
        bm.Allocate(a, prompt);
        bm.MarkComputed(a, prompt, 9); // pages 0,1 hashed; page 2 partial
        var hashed = a.Pages.Take(2).ToArray();
        bm.Deallocate(a);
        var b = new PageTable();
        bm.Allocate(b, Tokens(12, 10)); // 3 of the 4 unhashed pages (3 never used + a's partial one)
        Assert.Equal(3, bm.FreePages);
        Assert.DoesNotContain(b.Pages, hashed.Contains);
        var c = new PageTable();
        bm.Allocate(c, prompt);
        Assert.Equal(8, c.CachedTokens);
        Assert.Equal(hashed, c.Pages.Take(2));
    }

    [Fact]
    public void CanAppend_and_MayAppend_grow_a_table_page_by_page()
    {
        var bm = new BlockManager(3, P, "m", "rope");
        var t = new PageTable();
        bm.Allocate(t, Tokens(4, 1));
        Assert.Equal(1, t.Count);
        Assert.True(bm.CanAppend(t, 4));
        bm.MayAppend(t, 4);
        Assert.Equal(1, t.Count);
        bm.MayAppend(t, 5);
        Assert.Equal(2, t.Count);
        bm.MayAppend(t, 12);
        Assert.Equal(3, t.Count);
        Assert.False(bm.CanAppend(t, 13));
        Assert.Throws<InvalidOperationException>(() => bm.MayAppend(t, 13));
        CheckInvariants(bm, [t]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_operation_sequences_keep_every_invariant(int seed)
    {
        var rng = new Random(seed);
        int total = 24;
        var bm = new BlockManager(total, P, "m", "rope");
        // A few shared stems so that prefixes really repeat.
        var stems = Enumerable.Range(0, 3).Select(s => Tokens(13, 100 + s)).ToArray();
        var live = new List<(PageTable Table, List<int> Tokens, int Computed)>();
        long sharedSeen = 0;
        for (int step = 0; step < 3000; step++)
        {
            int op = rng.Next(4);
            if (op == 0)
            {
                var stem = stems[rng.Next(stems.Length)];
                var tokens = stem.Take(rng.Next(1, stem.Length + 1)).Concat(Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(50))).ToList();
                var table = new PageTable(rng.Next(10) == 0 ? "v" : "");
                bool can = bm.CanAllocate(table, tokens);
                int freeBefore = bm.FreePages;
                if (can)
                {
                    bm.Allocate(table, tokens);
                    Assert.Equal(bm.PagesFor(tokens.Count), table.Count);
                    Assert.Equal(0, table.CachedTokens % P);
                    Assert.True(table.CachedTokens < tokens.Count);
                    // Shared pages hold exactly the tokens of another live table at the same positions.
                    for (int i = 0; i < table.CachedTokens / P; i++)
                    {
                        int page = table.Pages[i];
                        foreach (var other in live.Where(o => o.Table.Count > i && o.Table.Pages[i] == page))
                        {
                            Assert.Equal(other.Tokens.Skip(i * P).Take(P), tokens.Skip(i * P).Take(P));
                            sharedSeen++;
                        }
                    }
                    live.Add((table, tokens, table.CachedTokens));
                }
                else
                {
                    Assert.Throws<InvalidOperationException>(() => bm.Allocate(table, tokens));
                    Assert.Equal(freeBefore, bm.FreePages);
                }
            }
            else if (op == 1 && live.Count > 0)
            {
                int i = rng.Next(live.Count);
                bm.Deallocate(live[i].Table);
                live.RemoveAt(i);
            }
            else if (op == 2 && live.Count > 0)
            {
                // Compute a chunk and register what became full.
                int i = rng.Next(live.Count);
                var (table, tokens, computed) = live[i];
                computed = Math.Min(tokens.Count, computed + rng.Next(1, 8));
                bm.MarkComputed(table, tokens, computed);
                live[i] = (table, tokens, computed);
            }
            else if (op == 3 && live.Count > 0)
            {
                // Decode: the sequence is fully computed and appends a token.
                int i = rng.Next(live.Count);
                var (table, tokens, _) = live[i];
                bm.MarkComputed(table, tokens, tokens.Count);
                if (bm.CanAppend(table, tokens.Count + 1))
                {
                    tokens.Add(rng.Next(50));
                    bm.MayAppend(table, tokens.Count);
                    Assert.Equal(bm.PagesFor(tokens.Count), table.Count);
                }
                live[i] = (table, tokens, tokens.Count - 1);
            }
            CheckInvariants(bm, live.Select(l => l.Table));
        }
        Assert.True(sharedSeen > 0, "the random run never shared a page");
        foreach (var l in live) bm.Deallocate(l.Table);
        CheckInvariants(bm, []);
        Assert.Equal(total, bm.FreePages);
    }
}
