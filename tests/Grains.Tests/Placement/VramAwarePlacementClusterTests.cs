using Actors.Grains.Placement;
using Microsoft.Extensions.DependencyInjection;

namespace Actors.Grains.Tests.Placement;

public sealed class VramAwarePlacementClusterTests
{
    private static int Pages(int tokens) => (tokens + PlacementCluster.TokensPerPage - 1) / PlacementCluster.TokensPerPage;

    // CharModel, one user turn of L ASCII bytes (L + 4 under the default 512 new tokens): prompt BOS <user> L bytes <end> <assistant>, answer "[1] " + L bytes.
    private static int TokensAfterFirstTurn(string message) => (message.Length + 4) * 2;

    [Fact]
    public async Task Two_hundred_sessions_of_mixed_lengths_fit_and_balance_across_four_silos()
    {
        await using var c = await PlacementCluster.StartAsync(2400, 2400, 2400, 2400);
        await c.RefreshAllAsync();
        var messages = Enumerable.Range(0, 200).Select(i => new string((char)('a' + i % 26), 10 + i * 97 % 480)).ToArray();
        using var gate = new SemaphoreSlim(16);
        await Task.WhenAll(messages.Select(async (m, i) =>
        {
            await gate.WaitAsync(TestContext.Current.CancellationToken);
            try
            {
                var answer = await c.OpenAndAskAsync($"mixed-{i}", m, TokensAfterFirstTurn(m));
                Assert.Equal(CharModel.ExpectedAnswer(1, m), answer);
            }
            finally { gate.Release(); }
        }));

        var devices = c.Devices;
        var used = devices.Select(d => d.UsedPages).ToArray();
        // Every session's KV is on exactly one device and nothing was pushed to host: no device went over capacity.
        Assert.Equal(messages.Sum(m => Pages(TokensAfterFirstTurn(m))), used.Sum());
        Assert.All(devices, d => Assert.Equal(0, d.PagesOnHost));
        Assert.All(devices, d => Assert.InRange(d.UsedPages, 1, d.TotalPages));
        Assert.All(Enumerable.Range(0, 200), i => Assert.NotNull(c.Holder($"mixed-{i}")));
        var counts = devices.Select(d => Enumerable.Range(0, 200).Count(i => d.DevicePagesOf($"mixed-{i}") > 0)).ToArray();
        Assert.True(used.Max() <= 1.25 * used.Min(),
            $"KV pages per device {string.Join(", ", used)} (sessions {string.Join(", ", counts)}): busiest over 1.25x the least busy");
    }

    [Fact]
    public async Task A_session_returns_after_deactivation_to_the_silo_holding_its_kv()
    {
        await using var c = await PlacementCluster.StartAsync(1000, 1000, 1000);
        await c.RefreshAllAsync();
        const string id = "returns";
        Assert.Equal("[1] eno", await c.OpenAndAskAsync(id, "one", estimatedTokens: null));
        var b = c.Holder(id);
        Assert.NotNull(b);
        var firstPages = b.DevicePagesOf(id);

        // Make B the fullest silo, so only "its KV is there" can bring the session back to it.
        b.RecordTokens("filler", 700 * PlacementCluster.TokensPerPage);
        await c.RefreshAllAsync();
        await c.Cluster.DeactivateAsync(c.Session(id));

        // A long second turn so the session's pages on B visibly grow.
        var grain = c.Session(id);
        Assert.Equal("[2] " + new string('x', 60), await PlacementCluster.AskAsync(grain, new string('x', 60)));
        Assert.Same(b, c.Holder(id));
        Assert.True(b.DevicePagesOf(id) > firstPages);

        // A new session, held nowhere, goes to a silo with more room than B.
        await c.RefreshAllAsync();
        await c.OpenAndAskAsync("newcomer", "hi", estimatedTokens: 64);
        Assert.NotSame(b, c.Holder("newcomer"));
    }

    [Fact]
    public async Task A_full_silo_gets_no_new_sessions()
    {
        await using var c = await PlacementCluster.StartAsync(1000, 1000, 1000);
        var full = c.Devices[1];
        full.RecordTokens("filler", 1000 * PlacementCluster.TokensPerPage);
        await c.RefreshAllAsync();
        for (var i = 0; i < 24; i++)
        {
            await c.OpenAndAskAsync($"skip-{i}", "hello there", estimatedTokens: 64);
            Assert.NotSame(full, c.Holder($"skip-{i}"));
        }
        Assert.Equal(1000, full.UsedPages);
        Assert.Equal(0, full.PagesOnHost); // nothing evicted the filler
    }

    [Fact]
    public async Task Every_silo_learns_every_silos_devices_from_the_periodic_refresh_alone()
    {
        await using var c = await PlacementCluster.StartAsync(300, 500, 700);
        var silos = c.Cluster.Silos.Select(s => (Address: s.SiloAddress, Services: s.ServiceProvider)).ToList();
        silos[2].Services.GetRequiredService<SimulatedDevice>().RecordTokens("marker", 40 * PlacementCluster.TokensPerPage);

        // No forced refresh: the silos' own timers (100 ms) must carry every report everywhere within a few intervals.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        bool AllKnown() => silos.All(viewer => silos.All(s =>
        {
            var latest = viewer.Services.GetRequiredService<ClusterDeviceStats>().Latest(s.Address);
            var device = s.Services.GetRequiredService<SimulatedDevice>();
            // The report must come from the silo itself (a stand-in activated elsewhere would report other devices).
            return latest is { } l && l.Report.Silo.Equals(s.Address) && l.Report.TotalPages == device.TotalPages
                && l.Report.FreePages == device.TotalPages - device.UsedPages;
        }));
        while (!AllKnown())
        {
            Assert.True(DateTime.UtcNow < deadline, "device reports did not reach every silo within 10 s");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.Equal([300, 500, 700], silos.Select(s => s.Services.GetRequiredService<SimulatedDevice>().TotalPages).Order());
        var viewer0 = silos[0].Services.GetRequiredService<ClusterDeviceStats>().Latest(silos[2].Address)!.Value.Report;
        Assert.Contains("marker", viewer0.Snapshot.Sessions);
    }
}
