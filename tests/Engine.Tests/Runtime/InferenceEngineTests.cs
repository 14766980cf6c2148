using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using static Actors.Engine.Tests.Runtime.EngineParityTests;

namespace Actors.Engine.Tests.Runtime;

public class InferenceEngineTests
{
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        for (int i = 0; i < 500 && !condition(); i++) await Task.Delay(10, Ct);
        Assert.True(condition(), what);
    }

    [Fact]
    public void Page_size_defaults_per_backend_and_an_explicit_one_is_kept()
    {
        var config = TestModels.Llama;
        var unset = new EngineOptions { Backend = Backend.Cpu, MaxSequences = 2, ContextLength = 128 };
        Assert.False(unset.PageSizeSet);
        Assert.Equal(EngineOptions.DefaultPageSize, unset.PageSize);
        using (var engine = new InferenceEngine(config, TestModels.Weights(config), "t", unset))
            Assert.Equal(EngineOptions.DefaultPageSize, engine.PageSize);
        var set = unset with { PageSize = 8 };
        Assert.True(set.PageSizeSet);
        Assert.True((set with { MaxSequences = 3 }).PageSizeSet); // `with` keeps it
        using (var engine = new InferenceEngine(config, TestModels.Weights(config), "t", set))
        {
            Assert.Equal(8, engine.PageSize);
            Assert.Equal(2 * 128 / 8, engine.TotalPages);
        }
    }

    [Fact]
    public async Task Concurrent_sequences_batched_give_the_same_tokens_as_alone()
    {
        var config = TestModels.Llama;
        var a = TestModels.Tokens(9, 21);
        var b = TestModels.Tokens(14, 22);
        var sa = new SamplingParams(Temperature: 0.9f, TopK: 20, TopP: 0.9f, Seed: 3, MaxNewTokens: 10);
        var sb = SamplingParams.Greedy(10);
        List<int> aloneA, aloneB;
        using (var engine = NewEngine(config))
        {
            aloneA = await Collect(engine.GenerateAsync(a, sa, NoStop, Ct));
            aloneB = await Collect(engine.GenerateAsync(b, sb, NoStop, Ct));
        }
        using (var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 64, PrefillChunkTokens = 5 }))
        {
            var ta = Collect(engine.GenerateAsync(a, sa, NoStop, Ct));
            var tb = Collect(engine.GenerateAsync(b, sb, NoStop, Ct));
            await Task.WhenAll(ta, tb);
            Assert.Equal(aloneA, (await ta));
            Assert.Equal(aloneB, (await tb));
            Assert.Equal(10, (await ta).Count);
            await WaitUntil(() => engine.Metrics.FreePages == engine.TotalPages, "pages come back");
        }
        Assert.Equal(new ReferenceForward(config, TestModels.Weights(config)).Greedy(b, 10), aloneB);
    }

    [Fact]
    public async Task Many_concurrent_sequences_under_a_small_token_budget_match_their_solo_runs()
    {
        var config = TestModels.Qwen3;
        var prompts = Enumerable.Range(0, 6).Select(i => TestModels.Tokens(5 + 3 * i, 80 + i)).ToArray();
        var sampling = prompts.Select((_, i) => i % 2 == 0 ? SamplingParams.Greedy(7) : new SamplingParams(Temperature: 1.1f, TopK: 30, Seed: (ulong)i, MaxNewTokens: 7)).ToArray();
        var solo = new List<int>[prompts.Length];
        using (var engine = NewEngine(config))
            for (int i = 0; i < prompts.Length; i++) solo[i] = await Collect(engine.GenerateAsync(prompts[i], sampling[i], NoStop, Ct));
        using (var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 64, MaxBatchTokens = 9, PrefillChunkTokens = 4, MaxSequences = 4 }))
        {
            var tasks = prompts.Select((p, i) => Collect(engine.GenerateAsync(p, sampling[i], NoStop, Ct))).ToArray();
            var batched = await Task.WhenAll(tasks);
            for (int i = 0; i < prompts.Length; i++) Assert.Equal(solo[i], batched[i]);
            Assert.True(engine.Metrics.Steps < prompts.Sum(p => p.Length + 7), "steps were shared between sequences");
        }
    }

    [Fact]
    public async Task Shared_prefix_reuses_pages_and_gives_identical_results()
    {
        var config = TestModels.Qwen2;
        var prefix = TestModels.Tokens(12, 30);
        var first = prefix.Concat(new[] { 5, 6, 7 }).ToArray();
        var second = prefix.Concat(new[] { 9, 1 }).ToArray();
        var reference = new ReferenceForward(config, TestModels.Weights(config));
        using var engine = NewEngine(config);
        var g1 = await Collect(engine.GenerateAsync(first, SamplingParams.Greedy(6), NoStop, Ct));
        Assert.Equal(0, engine.Metrics.PrefixHitTokens);
        var g2 = await Collect(engine.GenerateAsync(second, SamplingParams.Greedy(6), NoStop, Ct));
        Assert.Equal(12, engine.Metrics.PrefixHitTokens); // three full pages of 4
        Assert.Equal(reference.Greedy(first, 6), g1);
        Assert.Equal(reference.Greedy(second, 6), g2);
        // The same prompt again reuses everything but the page holding its last token.
        var g3 = await Collect(engine.GenerateAsync(first, SamplingParams.Greedy(6), NoStop, Ct));
        Assert.Equal(g1, g3);
        Assert.Equal(12 + 12, engine.Metrics.PrefixHitTokens);
    }

    [Fact]
    public async Task Running_sequences_share_prefix_pages_while_both_are_live()
    {
        var config = TestModels.Llama;
        var prefix = TestModels.Tokens(16, 31);
        using var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 64 });
        var reference = new ReferenceForward(config, TestModels.Weights(config));
        var p1 = prefix.Append(1).ToArray();
        var p2 = prefix.Append(2).ToArray();
        // The first finishes its prefill in the first step; the second arrives later and finds its pages.
        var t1 = Collect(engine.GenerateAsync(p1, SamplingParams.Greedy(20), NoStop, Ct));
        await WaitUntil(() => engine.Metrics.GeneratedTokens > 0, "first sequence decoding");
        var t2 = Collect(engine.GenerateAsync(p2, SamplingParams.Greedy(5), NoStop, Ct));
        await Task.WhenAll(t1, t2);
        Assert.Equal(16, engine.Metrics.PrefixHitTokens);
        Assert.Equal(reference.Greedy(p2, 5), (await t2));
        Assert.Equal(reference.Greedy(p1, 20), (await t1));
    }

    [Fact]
    public async Task Bad_requests_are_rejected_with_the_reason()
    {
        var config = TestModels.Llama;
        using var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 64, ContextLength = 32 });
        var tooLong = Assert.Throws<ArgumentException>(() => engine.GenerateAsync(TestModels.Tokens(33, 1), SamplingParams.Greedy(), NoStop, Ct));
        Assert.Contains("32", tooLong.Message);
        var empty = Assert.Throws<ArgumentException>(() => engine.GenerateAsync([], SamplingParams.Greedy(), NoStop, Ct));
        Assert.Contains("empty", empty.Message);
        var badId = Assert.Throws<ArgumentException>(() => engine.GenerateAsync([1, 2, 97], SamplingParams.Greedy(), NoStop, Ct));
        Assert.Contains("token 2", badId.Message);
        Assert.ThrowsAny<ArgumentException>(() => engine.GenerateAsync([1], new SamplingParams(TopP: 2f), NoStop, Ct));
        // Async usage sees the same exception.
        await Assert.ThrowsAsync<ArgumentException>(async () => { await foreach (var _ in engine.GenerateAsync([], SamplingParams.Greedy(), NoStop, Ct)) { } });
        // The model's own limit applies without an override.
        using var plain = NewEngine(config);
        var e = Assert.Throws<ArgumentException>(() => plain.ComputeLogits(TestModels.Tokens(129, 1), 8));
        Assert.Contains("128", e.Message);
        // A prompt bigger than the whole KV pool can never run.
        using var small = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 2 });
        var pool = Assert.Throws<ArgumentException>(() => small.GenerateAsync(TestModels.Tokens(9, 1), SamplingParams.Greedy(), NoStop, Ct));
        Assert.Contains("2 pages", pool.Message);
    }

    [Fact]
    public async Task KV_exhaustion_queues_and_preempts_and_every_request_completes()
    {
        var config = TestModels.Llama;
        var reference = new ReferenceForward(config, TestModels.Weights(config));
        // 6 pages of 4 tokens; each request needs up to 4 pages (8 prompt + 8 new): at most one fits at a time.
        using var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 6, MaxSequences = 4, PrefillChunkTokens = 4 });
        var prompts = Enumerable.Range(0, 5).Select(i => TestModels.Tokens(8, 40 + i)).ToArray();
        var tasks = prompts.Select(p => Collect(engine.GenerateAsync(p, SamplingParams.Greedy(8), NoStop, Ct))).ToArray();
        await Task.WhenAll(tasks);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(reference.Greedy(prompts[i], 8), await tasks[i]);
        var m = engine.Metrics;
        Assert.True(m.Preemptions > 0, "the tiny pool should have forced a preemption");
        await WaitUntil(() => engine.Metrics.FreePages == 6, "every page back");
    }

    [Fact]
    public async Task Stop_tokens_end_generation_without_being_yielded()
    {
        var config = TestModels.Qwen3;
        var prompt = TestModels.Tokens(7, 50);
        var greedy = new ReferenceForward(config, TestModels.Weights(config)).Greedy(prompt, 8);
        int stop = greedy[3];
        int expectedCount = greedy.IndexOf(stop);
        using var engine = NewEngine(config);
        var got = await Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(8), new HashSet<int> { stop }, Ct));
        Assert.Equal(greedy.Take(expectedCount), got);
    }

    [Fact]
    public async Task Generation_stops_at_max_new_tokens_and_at_the_context_length()
    {
        var config = TestModels.Llama;
        using var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 64, ContextLength = 16 });
        Assert.Equal(3, (await Collect(engine.GenerateAsync(TestModels.Tokens(5, 1), SamplingParams.Greedy(3), NoStop, Ct))).Count);
        Assert.Equal(6, (await Collect(engine.GenerateAsync(TestModels.Tokens(10, 1), SamplingParams.Greedy(50), NoStop, Ct))).Count);
        Assert.Empty(await Collect(engine.GenerateAsync(TestModels.Tokens(16, 1), SamplingParams.Greedy(50), NoStop, Ct)));
    }

    [Fact]
    public async Task Cancellation_ends_the_request_and_frees_its_pages()
    {
        var config = TestModels.Llama;
        // A budget the tiny model needs a long while for (thousands of steps over a growing context), so a cancel seen
        // late on a loaded machine still ends the request far short of it (100 tokens took the engine a few ms).
        const int budget = 4000;
        using var engine = NewEngine(config, new EngineOptions { PageSize = 4, KvPages = 1100, ContextLength = 4096 });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var received = new List<int>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (int t in engine.GenerateAsync(TestModels.Tokens(10, 2), SamplingParams.Greedy(budget), NoStop, cts.Token))
            {
                received.Add(t);
                if (received.Count == 2) cts.Cancel();
            }
        });
        Assert.True(received.Count >= 2);
        await WaitUntil(() => engine.Metrics.FreePages == engine.TotalPages && engine.Metrics.RunningSequences == 0, "pages freed after cancel");
        Assert.True(engine.Metrics.GeneratedTokens < budget, $"{engine.Metrics.GeneratedTokens} tokens generated after a cancel at the second");

        // Leaving the loop early frees the pages too.
        await foreach (int _ in engine.GenerateAsync(TestModels.Tokens(10, 3), SamplingParams.Greedy(100), NoStop, Ct)) break;
        await WaitUntil(() => engine.Metrics.FreePages == engine.TotalPages && engine.Metrics.RunningSequences == 0, "pages freed after break");
    }

    [Fact]
    public async Task Sampling_is_deterministic_per_seed()
    {
        var config = TestModels.Qwen2;
        var prompt = TestModels.Tokens(6, 60);
        using var engine = NewEngine(config);
        var p = new SamplingParams(Temperature: 1.5f, Seed: 11, MaxNewTokens: 16);
        var one = await Collect(engine.GenerateAsync(prompt, p, NoStop, Ct));
        var two = await Collect(engine.GenerateAsync(prompt, p, NoStop, Ct));
        var other = await Collect(engine.GenerateAsync(prompt, p with { Seed = 12 }, NoStop, Ct));
        Assert.Equal(one, two);
        Assert.NotEqual(one, other);
    }

    [Fact]
    public void Dispose_releases_the_weights_and_refuses_new_work()
    {
        var config = TestModels.Llama;
        var weights = TestModels.Weights(config);
        var engine = new InferenceEngine(config, weights, "m", new EngineOptions { Backend = Backend.Cpu, KvPages = 8 });
        engine.Dispose();
        Assert.True(weights.Disposed);
        Assert.Throws<ObjectDisposedException>(() => engine.GenerateAsync([1, 2], SamplingParams.Greedy(), NoStop, Ct));
        Assert.Throws<ObjectDisposedException>(() => engine.ComputeLogits([1, 2], 1));
    }

    [Fact]
    public void Default_pool_is_sized_from_memory_and_capped_at_max_sequences_contexts()
    {
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "m", new EngineOptions { Backend = Backend.Cpu, MaxSequences = 3 });
        Assert.Equal(3 * (128 / 16), engine.TotalPages);
        using var byBytes = new InferenceEngine(config, TestModels.Weights(config), "m", new EngineOptions { Backend = Backend.Cpu, KvMemoryBytes = 10 * 2 * 2 * 16 * 2 * 12 * 4 });
        Assert.Equal(10, byBytes.TotalPages);
    }
}
