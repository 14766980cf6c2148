using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using static Actors.Engine.Tests.Runtime.EngineParityTests;

namespace Actors.Engine.Tests.Runtime;

/// <summary>
/// The engine's KV tiers end to end on the CPU: pages pushed off the device come back from the host pool, export and
/// import between engines, offload, preemption that spills instead of dropping, copy-on-write of shared prefixes. The
/// yardstick for every resumed session is a fresh engine that computes everything (no caching, no host tier).
/// </summary>
public class KvTierEngineTests
{
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const int P = 4;

    private static ModelConfig Config => TestModels.Llama;

    /// <summary>12 device pages of 4 tokens, a host pool of <paramref name="hostPages"/> pages.</summary>
    private static InferenceEngine TightEngine(int hostPages = 64, int kvPages = 12)
    {
        long pageBytes = (long)Config.NumLayers * 2 * P * Config.NumKvHeads * Config.HeadDim * sizeof(float);
        return NewEngine(Config, new EngineOptions { PageSize = P, KvPages = kvPages, HostKvBytes = hostPages * pageBytes, ContextLength = 128 });
    }

    /// <summary>Greedy tokens from an engine that computes every position (no prefix reuse, no host tier).</summary>
    private static async Task<List<int>> Fresh(int[] prompt, int newTokens)
    {
        using var engine = NewEngine(Config, new EngineOptions { PageSize = P, KvPages = 64, HostKvBytes = 0, EnablePrefixCaching = false, ContextLength = 128 });
        return await Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(newTokens), NoStop, Ct));
    }

    private static async Task<(List<int> Tokens, KvAdmission Admission)> Run(InferenceEngine engine, int[] prompt, int newTokens, Action<KvAdmission>? also = null)
    {
        KvAdmission? admission = null;
        int calls = 0;
        var tokens = await Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(newTokens), NoStop, a => { admission = a; calls++; also?.Invoke(a); }, Ct));
        Assert.Equal(1, calls);
        return (tokens, admission!.Value);
    }

    /// <summary>A first turn: 18 prompt tokens and 6 generated; 5 full pages (20 tokens) end up computed and cached.</summary>
    private static async Task<int[]> FirstTurn(InferenceEngine engine)
    {
        var session = TestModels.Tokens(18, 1);
        var (reply, admission) = await Run(engine, session, 6);
        Assert.Equal(new KvAdmission(18, 0, 0), admission);
        Assert.Equal(6, reply.Count);
        return [.. session, .. reply];
    }

    private static async Task PushOffDevice(InferenceEngine engine)
    {
        // Two unrelated requests of 11 pages each take every page the session left cached.
        for (int i = 0; i < 2; i++) await Collect(engine.GenerateAsync(TestModels.Tokens(40, 50 + i), SamplingParams.Greedy(2), NoStop, Ct));
    }

    [Fact]
    public async Task Pages_pushed_off_the_device_come_back_from_host_with_the_tokens_of_a_full_recompute()
    {
        using var engine = TightEngine();
        var history = await FirstTurn(engine);
        Assert.Equal(new KvResidency(20, 0), engine.Probe(history));
        await PushOffDevice(engine);
        Assert.Equal(new KvResidency(0, 20), engine.Probe(history));
        Assert.Equal(new KvResidency(0, 20), await engine.ProbeAsync(history, Ct));
        Assert.Equal(new KvResidency(0, 20), await ((IKvTiers)engine).ProbeAsync(history, Ct)); // the interface's member, not its default
        Assert.True(engine.PageMoves.Spilled >= 5);

        int[] next = [.. history, .. TestModels.Tokens(5, 99)];
        var (tokens, admission) = await Run(engine, next, 8);
        Assert.Equal(new KvAdmission(29, 0, 20), admission);
        Assert.Equal(9, admission.ComputedTokens);
        Assert.Equal(5, engine.PageMoves.SwappedIn);
        Assert.Equal(20, engine.HostHitTokens);
        Assert.Equal(await Fresh(next, 8), tokens);

        // Swapped-in pages are device pages again: the same prompt now hits on the device.
        var (again, second) = await Run(engine, next, 8);
        Assert.Equal(tokens, again);
        Assert.True(second.DeviceHitTokens >= 20, $"device hits {second.DeviceHitTokens}");
        Assert.Equal(0, second.HostHitTokens);
    }

    [Fact]
    public async Task Without_a_host_tier_pages_pushed_off_are_recomputed()
    {
        using var engine = TightEngine(hostPages: 0);
        var history = await FirstTurn(engine);
        await PushOffDevice(engine);
        Assert.Equal(new KvResidency(0, 0), engine.Probe(history));
        int[] next = [.. history, .. TestModels.Tokens(5, 99)];
        var (tokens, admission) = await Run(engine, next, 8);
        Assert.Equal(new KvAdmission(29, 0, 0), admission);
        Assert.Equal(await Fresh(next, 8), tokens);
        Assert.Equal(0, engine.TierStats.HostPagesCapacity);
        Assert.Equal((0L, 0L, 0L), engine.PageMoves);
    }

    [Fact]
    public async Task Export_then_import_into_a_fresh_engine_resumes_with_identical_tokens_from_host()
    {
        int[] history;
        KvExport export;
        List<int> continued;
        int[] next;
        using (var first = TightEngine())
        {
            history = await FirstTurn(first);
            Assert.Null(await first.ExportAsync(TestModels.Tokens(12, 77), Ct)); // nothing held
            export = (await first.ExportAsync(history, Ct))!;
            Assert.NotNull(export);
            Assert.Equal(history.Take(20), export.Tokens);
            Assert.Equal(5, export.Pages.Count);
            Assert.Equal(first.PageFormat, export.Format);
            Assert.Equal(new KvPageFormat("test/llama", export.Format.RopeProfile, "f32", P, 2, 2, 12), export.Format);
            Assert.All(export.Pages, p => Assert.Equal(export.Format.PageBytes, p.Length));
            Assert.Equal(new KvResidency(20, 0), first.Probe(history)); // export moves nothing
            next = [.. history, .. TestModels.Tokens(5, 99)];
            (continued, var admission) = await Run(first, next, 8);
            Assert.Equal(20, admission.DeviceHitTokens);
        }
        using var second = TightEngine();
        Assert.Equal(new KvResidency(0, 0), second.Probe(history));
        Assert.Equal(20, await second.ImportAsync(export, Ct));
        Assert.Equal(new KvResidency(0, 20), second.Probe(history));
        Assert.Equal(5, second.TierStats.HostPagesUsed);
        // The host pool holds the very bytes exported.
        var back = (await second.ExportAsync(history, Ct))!;
        for (int i = 0; i < 5; i++) Assert.True(back.Pages[i].Span.SequenceEqual(export.Pages[i].Span), $"page {i}");

        var (tokens, resumed) = await Run(second, next, 8);
        Assert.Equal(new KvAdmission(29, 0, 20), resumed);
        Assert.Equal(continued, tokens);
        Assert.Equal(await Fresh(next, 8), tokens);
    }

    [Fact]
    public async Task Import_takes_only_what_the_host_budget_holds_and_nothing_without_a_host_tier()
    {
        KvExport export;
        using (var first = TightEngine())
        {
            export = (await first.ExportAsync(await FirstTurn(first), Ct))!;
            Assert.Equal(20, await first.ImportAsync(export, Ct)); // all on the device already: accepted, nothing copied
            Assert.Equal(0, first.TierStats.HostPagesUsed);
        }
        using (var small = TightEngine(hostPages: 2))
        {
            Assert.Equal(8, await small.ImportAsync(export, Ct));
            Assert.Equal(new KvResidency(0, 8), small.Probe(export.Tokens));
            Assert.Equal(2, small.TierStats.HostPagesUsed);
        }
        using var none = TightEngine(hostPages: 0);
        Assert.Equal(0, await none.ImportAsync(export, Ct));
    }

    [Fact]
    public async Task Import_of_a_foreign_format_or_a_wrong_page_names_the_field()
    {
        KvExport export;
        using var engine = TightEngine();
        export = (await engine.ExportAsync(await FirstTurn(engine), Ct))!;
        var f = export.Format;
        var cases = new (KvExport Bad, string Field)[]
        {
            (export with { Format = f with { ModelId = "other/model" } }, "ModelId"),
            (export with { Format = f with { RopeProfile = "theta=1" } }, "RopeProfile"),
            (export with { Format = f with { DType = "bf16" } }, "DType"),
            (export with { Format = f with { PageSize = 8 } }, "PageSize"),
            (export with { Format = f with { LayerCount = 3 } }, "LayerCount"),
            (export with { Format = f with { KvHeads = 1 } }, "KvHeads"),
            (export with { Format = f with { HeadDim = 16 } }, "HeadDim"),
            (export with { Pages = export.Pages.Select((p, i) => i == 2 ? p[..^4] : p).ToArray() }, "Pages[2]"),
            (export with { Tokens = export.Tokens.Take(19).ToArray() }, "Tokens"),
            (export with { Tokens = export.Tokens.Select((t, i) => i == 3 ? 5000 : t).ToArray() }, "Tokens[3]"),
        };
        foreach (var (bad, field) in cases)
        {
            var e = await Assert.ThrowsAsync<ArgumentException>(() => engine.ImportAsync(bad, Ct));
            Assert.Contains(field, e.Message);
        }
        Assert.Equal(0, engine.TierStats.HostPagesUsed); // nothing of a bad import went in
    }

    [Fact]
    public async Task The_host_budget_is_never_exceeded_and_the_least_recent_pages_go()
    {
        using var engine = TightEngine(hostPages: 3);
        var history = await FirstTurn(engine);
        await PushOffDevice(engine); // 5 session pages spilled into 3 slots, then the first request's pages
        for (int i = 0; i < 4; i++)
        {
            await Collect(engine.GenerateAsync(TestModels.Tokens(30, 60 + i), SamplingParams.Greedy(3), NoStop, Ct));
            var stats = engine.TierStats;
            Assert.Equal(3, stats.HostPagesCapacity);
            Assert.True(stats.HostPagesUsed <= 3);
        }
        Assert.True(engine.PageMoves.HostEvictions > 0);
        Assert.Equal(engine.PageMoves.Spilled - engine.PageMoves.HostEvictions, engine.TierStats.HostPagesUsed);
        // The session's pages were the least recently used: they are gone and the session recomputes, identically.
        Assert.Equal(new KvResidency(0, 0), engine.Probe(history));
        int[] next = [.. history, .. TestModels.Tokens(5, 99)];
        var (tokens, admission) = await Run(engine, next, 6);
        Assert.Equal(0, admission.HostHitTokens);
        Assert.Equal(await Fresh(next, 6), tokens);
    }

    [Fact]
    public async Task Offload_frees_the_device_pages_and_probe_then_reports_them_on_host()
    {
        using var engine = TightEngine();
        var history = await FirstTurn(engine);
        Assert.Equal(5, engine.TierStats.DevicePagesCached);
        Assert.Equal(20, await engine.OffloadAsync(history, Ct));
        Assert.Equal(new KvResidency(0, 20), engine.Probe(history));
        var stats = engine.TierStats;
        Assert.Equal(0, stats.DevicePagesCached);
        Assert.Equal(stats.DevicePagesTotal, stats.DevicePagesFree);
        Assert.Equal(5, stats.HostPagesUsed);
        Assert.Equal(0, await engine.OffloadAsync(history, Ct)); // nothing left on the device

        int[] next = [.. history, .. TestModels.Tokens(5, 99)];
        var (tokens, admission) = await Run(engine, next, 8);
        Assert.Equal(new KvAdmission(29, 0, 20), admission);
        Assert.Equal(await Fresh(next, 8), tokens);
    }

    [Fact]
    public async Task Drop_forgets_the_prefix_in_both_tiers_and_the_next_turn_recomputes_it()
    {
        using var engine = TightEngine();
        var history = await FirstTurn(engine);
        await engine.OffloadAsync(history[..8], Ct); // two pages on host, three still cached on the device
        Assert.Equal(new KvResidency(0, 8), engine.Probe(history[..8]));
        Assert.Equal(12, await engine.DropAsync(history, Ct));
        Assert.Equal(new KvResidency(0, 0), engine.Probe(history));
        Assert.Equal(0, engine.TierStats.DevicePagesCached);
        Assert.Equal(0, engine.TierStats.HostPagesUsed);

        int[] next = [.. history, .. TestModels.Tokens(5, 98)];
        var (tokens, admission) = await Run(engine, next, 8);
        Assert.Equal(new KvAdmission(29, 0, 0), admission);
        Assert.Equal(await Fresh(next, 8), tokens);
    }

    [Fact]
    public async Task Offload_leaves_pages_a_running_request_holds()
    {
        using var engine = TightEngine(kvPages: 32);
        var history = await FirstTurn(engine);
        int[] longer = [.. history.Take(12), .. TestModels.Tokens(3, 5)]; // shares the first 3 pages
        Task<int>? offload = null;
        KvResidency during = default;
        // The callback runs on the engine thread while the request holds its pages; tier calls made there run inline.
        var (_, admission) = await Run(engine, longer, 2, _ =>
        {
            offload = engine.OffloadAsync(history, Ct);
            during = engine.Probe(history);
        });
        Assert.Equal(12, admission.DeviceHitTokens);
        Assert.True(offload!.IsCompleted);
        Assert.Equal(8, await offload); // pages 3 and 4; pages 0-2 are held by the running request
        Assert.Equal(new KvResidency(12, 8), during);
        Assert.Equal(new KvResidency(12, 8), engine.Probe(history)); // released pages 0-2 stay cached on the device
    }

    [Fact]
    public async Task Preemption_under_pressure_spills_pages_and_the_resumed_sequence_finds_them()
    {
        var prompts = Enumerable.Range(0, 3).Select(i => TestModels.Tokens(8, 30 + i)).ToArray();
        var solo = new List<int>[prompts.Length];
        for (int i = 0; i < prompts.Length; i++) solo[i] = await Fresh(prompts[i], 16);
        // Each sequence grows to 24 tokens (6 pages); 3 of them need 18 pages of the 10 there are.
        using var engine = TightEngine(kvPages: 10);
        // Hold the loop in an admission callback while the three are queued, so they surely run together.
        using var release = new ManualResetEventSlim();
        var blocker = Collect(engine.GenerateAsync([1], SamplingParams.Greedy(1), NoStop, _ => release.Wait(Ct), Ct));
        var tasks = prompts.Select(p => Collect(engine.GenerateAsync(p, SamplingParams.Greedy(16), NoStop, Ct))).ToArray();
        release.Set();
        await blocker;
        var results = await Task.WhenAll(tasks);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(solo[i], results[i]);
        var m = engine.Metrics;
        Assert.True(m.Preemptions > 0, "the pool was too small for all three");
        // The prompts share nothing, so every hit is a preempted sequence finding its own pages again.
        Assert.True(m.PrefixHitTokens + engine.HostHitTokens > 0, $"device hits {m.PrefixHitTokens}, host hits {engine.HostHitTokens}");
        Assert.True(engine.PageMoves.Spilled > 0, "cached pages handed out again went to host");
    }

    [Fact]
    public async Task Sequences_sharing_a_prefix_and_diverging_mid_page_give_the_tokens_each_gives_alone()
    {
        var prefix = TestModels.Tokens(10, 5); // pages 0 and 1 full, page 2 half
        int[] a = [.. prefix, .. TestModels.Tokens(5, 6)];
        int[] b = [.. prefix, .. TestModels.Tokens(5, 7)];
        Assert.NotEqual(a[10], b[10]);
        var aloneA = await Fresh(a, 12);
        var aloneB = await Fresh(b, 12);
        using var engine = NewEngine(Config, new EngineOptions { PageSize = P, KvPages = 64, ContextLength = 128 });
        await Collect(engine.GenerateAsync(prefix, SamplingParams.Greedy(1), NoStop, Ct));
        var ta = Run(engine, a, 12);
        var tb = Run(engine, b, 12);
        var (gotA, admA) = await ta;
        var (gotB, admB) = await tb;
        Assert.Equal(8, admA.DeviceHitTokens); // pages 0 and 1 shared; page 2 (diverging inside) is each one's own
        Assert.Equal(8, admB.DeviceHitTokens);
        Assert.Equal(aloneA, gotA);
        Assert.Equal(aloneB, gotB);
    }

    [Fact]
    public async Task The_admission_callback_runs_once_on_the_engine_thread_and_a_throwing_one_fails_only_its_request()
    {
        using var engine = TightEngine(kvPages: 32);
        string? thread = null;
        var prompt = TestModels.Tokens(9, 3);
        await Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(3), NoStop, _ => thread = Thread.CurrentThread.Name, Ct));
        Assert.StartsWith("InferenceEngine", thread);
        var boom = new InvalidOperationException("callback failed");
        var e = await Assert.ThrowsAnyAsync<Exception>(() =>
            Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(3), NoStop, _ => throw boom, Ct)));
        Assert.True(ReferenceEquals(boom, e) || ReferenceEquals(boom, e.InnerException), e.ToString());
        Assert.Equal(3, (await Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(3), NoStop, Ct))).Count);
    }

    [Fact]
    public async Task Tier_work_queued_on_a_disposed_engine_fails()
    {
        var engine = TightEngine();
        engine.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Probe([1, 2, 3, 4]));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => engine.OffloadAsync([1, 2, 3, 4], Ct));
    }
}
