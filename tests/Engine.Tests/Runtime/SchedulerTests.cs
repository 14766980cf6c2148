using Actors.Engine.Paging;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Runtime;

public class SchedulerTests
{
    [Theory]
    [InlineData(1, 4, 12, 64, 3, 5)]
    [InlineData(2, 4, 8, 16, 4, 3)]
    [InlineData(3, 8, 30, 40, 2, 16)]
    [InlineData(4, 2, 20, 7, 6, 1)]
    public void Random_workloads_respect_every_limit_and_all_finish(int seed, int pageSize, int pages, int maxBatch, int maxSeqs, int chunkCap)
    {
        var rng = new Random(seed);
        var options = new EngineOptions { PageSize = pageSize, KvPages = pages, MaxBatchTokens = maxBatch, MaxSequences = maxSeqs, PrefillChunkTokens = chunkCap };
        var blocks = new BlockManager(pages, pageSize, "m", "rope");
        var scheduler = new Scheduler(blocks, options, _ => "");
        var stems = Enumerable.Range(0, 3).Select(s => TestModels.Tokens(3 * pageSize, 70 + s)).ToArray();
        var live = new List<(Sequence Seq, int MaxLength)>();
        int maxTokens = pages * pageSize, submitted = 0, finished = 0;
        long id = 0;
        for (int step = 0; step < 4000 && (submitted < 60 || live.Count > 0); step++)
        {
            if (submitted < 60 && rng.Next(3) == 0)
            {
                var stem = stems[rng.Next(stems.Length)];
                var prompt = stem.Take(rng.Next(1, stem.Length + 1)).Concat(TestModels.Tokens(rng.Next(0, 5), rng.Next())).ToArray();
                if (blocks.PagesFor(prompt.Length) > pages) continue;
                var s = new Sequence(++id, prompt, SamplingParams.Greedy(), new HashSet<int>());
                scheduler.Add(s);
                live.Add((s, Math.Min(prompt.Length + rng.Next(1, 10), maxTokens)));
                submitted++;
            }
            var exhausted = new List<Sequence>();
            var batch = scheduler.Schedule(exhausted);
            Assert.True(batch.Sum(b => b.Tokens) <= maxBatch);
            Assert.True(scheduler.RunningCount <= maxSeqs);
            Assert.Equal(batch.Count, batch.Select(b => b.Sequence).Distinct().Count());
            if (scheduler.RunningCount > 0) Assert.NotEmpty(batch.Concat(exhausted.Select(e => (e, 0)))); // progress every step
            foreach (var (s, n) in batch)
            {
                Assert.InRange(n, 1, Math.Min(chunkCap, maxBatch));
                Assert.True(s.Computed + n <= s.Length);
                Assert.True(s.Pages.Count * pageSize >= s.Computed + n, "pages cover the chunk");
            }
            // Pages held by sequences equal what the manager counts as used (shared pages counted once).
            var held = scheduler.All.SelectMany(s => s.Pages.Pages).Distinct().Count();
            Assert.Equal(blocks.UsedPages, held);
            foreach (var s in exhausted) { scheduler.Remove(s); live.RemoveAll(l => l.Seq == s); finished++; }
            foreach (var (s, n) in batch)
            {
                s.Computed += n;
                blocks.MarkComputed(s.Pages, s.Tokens, s.Computed);
                if (s.Computed < s.Length) continue;
                var entry = live.Single(l => l.Seq == s);
                if (s.Length >= entry.MaxLength) { scheduler.Remove(s); live.Remove(entry); finished++; }
                else s.Tokens.Add(rng.Next(97));
            }
        }
        Assert.Equal(60, submitted);
        Assert.Equal(submitted, finished);
        Assert.True(scheduler.IsIdle);
        Assert.Equal(pages, blocks.FreePages);
    }

    /// <summary>A lower tier that keeps a hash set: what spilled can be found and "loaded" again.</summary>
    private sealed class SetTier : ILowerKvTier
    {
        public readonly HashSet<UInt128> Held = [];
        public int Spilled, Loaded;
        public bool Contains(UInt128 hash) => Held.Contains(hash);
        public void Pin(UInt128 hash) { }
        public void Unpin(UInt128 hash) { }
        public void Spill(ReadOnlySpan<int> pages, ReadOnlySpan<UInt128> hashes, Span<bool> stored)
        {
            for (int i = 0; i < hashes.Length; i++) { stored[i] = true; if (Held.Add(hashes[i])) Spilled++; }
        }
        public void Load(ReadOnlySpan<UInt128> hashes, ReadOnlySpan<int> pages) => Loaded += hashes.Length;
    }

    [Fact]
    public void A_preempted_sequence_registers_its_computed_pages_so_they_spill_and_come_back()
    {
        // The driver below never registers pages itself (no MarkComputed): only preemption does.
        var options = new EngineOptions { PageSize = 4, KvPages = 8, MaxBatchTokens = 64 };
        var blocks = new BlockManager(8, 4, "m", "rope");
        var tier = new SetTier();
        blocks.LowerTier = tier;
        var scheduler = new Scheduler(blocks, options, _ => "");
        var seqs = Enumerable.Range(0, 3).Select(i => new Sequence(i, TestModels.Tokens(8, 40 + i), SamplingParams.Greedy(), new HashSet<int>())).ToArray();
        foreach (var s in seqs) scheduler.Add(s);
        for (int step = 0; step < 400 && !scheduler.IsIdle; step++)
        {
            var exhausted = new List<Sequence>();
            var batch = scheduler.Schedule(exhausted);
            Assert.Empty(exhausted);
            foreach (var (s, n) in batch)
            {
                s.Computed += n;
                if (s.Computed < s.Length) continue;
                if (s.Length >= 20) scheduler.Remove(s);
                else s.Tokens.Add(7);
            }
        }
        Assert.True(scheduler.IsIdle);
        Assert.True(scheduler.Preemptions > 0, "3 sequences of 20 tokens need 15 pages of the 8");
        Assert.True(tier.Spilled > 0, "registered pages of preempted sequences were handed out again: spilled");
        Assert.True(scheduler.PrefixHitTokens + scheduler.HostHitTokens > 0, "re-admitted sequences found their pages");
        Assert.Equal(tier.Loaded * 4, scheduler.HostHitTokens);
    }
}
