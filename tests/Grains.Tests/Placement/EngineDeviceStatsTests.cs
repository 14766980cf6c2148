using System.Diagnostics.CodeAnalysis;
using Actors.Engine;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Grains.Placement;
using Actors.Grains.Tests.Kv;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Actors.Grains.Tests.Placement;

public sealed class EngineDeviceStatsTests
{
    private sealed class Models : IModelHost
    {
        public List<ITextGenerator> List { get; } = [];

        public ValueTask<ITextGenerator> GetAsync(string modelRef, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public bool TryGetLoaded(string modelRef, [NotNullWhen(true)] out ITextGenerator? generator)
        {
            generator = List.FirstOrDefault();
            return generator is not null;
        }

        public IReadOnlyList<ITextGenerator> Loaded => List;
    }

    private static EngineDeviceStats Stats(Models models, int pagesBeforeLoad = 0) => new(models,
        Options.Create(new EngineDeviceStatsOptions { PagesBeforeLoad = pagesBeforeLoad, PageBytesBeforeLoad = 1000, ReservedVramBytes = 5 }),
        Options.Create(new VramAwarePlacementOptions { TokensPerPage = 16 }));

    [Fact]
    public void Before_a_model_loads_the_configured_pool_is_reported_less_expected_sessions()
    {
        var stats = Stats(new Models(), pagesBeforeLoad: 100);
        stats.ExpectTokens("a", 33); // 3 pages
        stats.ExpectTokens("a", 10); // an estimate never shrinks
        stats.ExpectTokens("b", 16); // 1 page
        var snap = stats.Capture(10);
        var d = Assert.Single(snap.Devices);
        Assert.Equal(100, d.TotalPages);
        Assert.Equal(96, d.FreePages);
        Assert.Equal(5 + 100 * 1000, d.TotalVramBytes);
        Assert.Equal(96 * 1000, d.FreeVramBytes);
        Assert.Equal(["a", "b"], snap.Sessions.Order());
        Assert.False(snap.SessionsTruncated);
        using (stats.BeginGeneration("a"))
        using (stats.BeginGeneration("b"))
            Assert.Equal(2, stats.Capture(10).Devices[0].QueueDepth);
        Assert.Equal(0, stats.Capture(10).Devices[0].QueueDepth);
        Assert.True(Stats(new Models()).Capture(10).Devices[0].TotalPages == 0);
    }

    [Fact]
    public async Task A_loaded_engine_reports_its_tiers_and_the_sessions_whose_pages_it_holds()
    {
        var models = new Models();
        using var g = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        models.List.Add(g);
        var stats = Stats(models);

        var prompt = g.EncodeChat([new Actors.Engine.Chat.ChatMessage("user", "A question long enough to fill a few pages of KV, about lamps and wicks.")], true);
        var tokens = new List<int>(prompt);
        await foreach (var t in g.GenerateAsync(prompt, SamplingParams.Greedy(4), TestContext.Current.CancellationToken)) tokens.Add(t);
        stats.ExpectTokens("s1", 500);
        Assert.Equal(KvCluster.KvPages - 32, stats.Capture(10).Devices[0].FreePages); // 500 tokens = 32 pages reserved
        stats.RecordTokenIds("s1", tokens); // it ran: the reservation is replaced by its pages in the pool

        var t0 = g.KvTiers.TierStats;
        var snap = stats.Capture(10);
        var d = snap.Devices[0];
        Assert.Equal(KvCluster.KvPages, d.TotalPages);
        Assert.Equal(t0.DevicePagesFree, d.FreePages);
        Assert.Equal(KvCluster.PageBytes, d.PageBytes);
        Assert.Equal(0, d.PagesOnHost);
        Assert.Equal(["s1"], snap.Sessions);

        // Its pages move to host: still held by this silo, now counted on host.
        var moved = await g.KvTiers.OffloadAsync(tokens, TestContext.Current.CancellationToken);
        Assert.True(moved > 0);
        snap = stats.Capture(10);
        Assert.Equal(moved / KvCluster.PageSize, snap.Devices[0].PagesOnHost);
        Assert.Equal(["s1"], snap.Sessions);

        // Sessions sharing pages count them once; a session known only by its size shares nothing known, and the
        // pools hold only one copy of these pages, so it is not listed (placement must not count on its KV).
        stats.RecordTokens("count-only", tokens.Count);
        stats.RecordTokenIds("s1", tokens);
        stats.RecordTokenIds("s2", tokens);
        Assert.Equal(["s2", "s1"], stats.Capture(10).Sessions);
        Assert.Equal(["s2"], stats.Capture(1).Sessions);
        Assert.True(stats.Capture(1).SessionsTruncated);
    }

    [Fact]
    public void The_engine_source_replaces_the_simulated_device_whatever_the_registration_order()
    {
        foreach (var engineFirst in new[] { true, false })
        {
            var services = new ServiceCollection();
            services.AddLogging();
            if (engineFirst) services.AddEngineDeviceStats();
            services.AddVramAwarePlacement();
            if (!engineFirst) services.AddEngineDeviceStats();
            using var sp = services.BuildServiceProvider();
            Assert.IsType<EngineDeviceStats>(sp.GetRequiredService<IDeviceStatsSource>());
            Assert.Same(sp.GetRequiredService<IDeviceStatsSource>(), sp.GetRequiredService<ISessionKvTracker>());
        }
    }
}
