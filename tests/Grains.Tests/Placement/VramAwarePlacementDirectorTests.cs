using Actors.Grains.Placement;

namespace Actors.Grains.Tests.Placement;

public sealed class VramAwarePlacementDirectorTests
{
    [Fact]
    public void Without_reports_choice_is_deterministic_per_session_and_spread_over_silos()
    {
        var rig = new DirectorRig(4);
        var first = Enumerable.Range(0, 400).Select(i => rig.Place($"s{i}")).ToArray();
        var again = Enumerable.Range(0, 400).Select(i => rig.Place($"s{i}")).ToArray();
        Assert.Equal(first, again);
        var counts = first.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c, 60, 140)); // uniform would be 100 each
    }

    [Fact]
    public void Prefers_the_silo_holding_the_sessions_kv_even_with_less_free()
    {
        var rig = new DirectorRig(3);
        rig.Report(0, freePages: 900);
        rig.Report(1, freePages: 50, sessions: ["held", "other"]);
        rig.Report(2, freePages: 800);
        Assert.Equal(1, rig.Place("held", tokens: 10 * 16));
        Assert.Equal(0, rig.Place("fresh", tokens: 10 * 16)); // not held anywhere: most free
    }

    [Fact]
    public void A_holder_with_no_room_left_is_skipped()
    {
        var rig = new DirectorRig(2);
        rig.Report(0, freePages: 30, sessions: ["held"]);
        rig.Report(1, freePages: 20);
        // Silo 0 gets a 40-page reservation for another session: it now has -10 free and must not take "held".
        Assert.Equal(0, rig.Place("burst", tokens: 40 * 16));
        Assert.Equal(-10, 30 - rig.Stats.ReservedPages(rig.Silos[0]));
        Assert.Equal(1, rig.Place("held", tokens: 16));
    }

    [Fact]
    public void Picks_most_free_pages_and_skips_a_full_silo()
    {
        var rig = new DirectorRig(3);
        rig.Report(0, freePages: 0, totalPages: 10_000);
        rig.Report(1, freePages: 300);
        rig.Report(2, freePages: 500);
        for (var i = 0; i < 40; i++) Assert.NotEqual(0, rig.Place($"s{i}"));
    }

    [Fact]
    public void Reservations_spread_a_burst_until_a_report_accounts_for_it()
    {
        var rig = new DirectorRig(3);
        for (var s = 0; s < 3; s++) rig.Report(s, freePages: 200);
        var placed = Enumerable.Range(0, 30).Select(i => rig.Place($"b{i}", tokens: 10 * 16)).ToArray();
        // Each placement reserves 10 pages, so equal silos take turns: 10 sessions each, 100 pages reserved each.
        Assert.All(placed.GroupBy(x => x), g => Assert.Equal(10, g.Count()));
        Assert.All(rig.Silos, s => Assert.Equal(100, rig.Stats.ReservedPages(s)));

        // Silo 0 reports the sessions it got (now using their pages): its reservations end, the others' stay.
        var on0 = Enumerable.Range(0, 30).Where(i => placed[i] == 0).Select(i => $"b{i}").ToArray();
        rig.Report(0, freePages: 100, sessions: on0);
        Assert.Equal(0, rig.Stats.ReservedPages(rig.Silos[0]));
        Assert.Equal(100, rig.Stats.ReservedPages(rig.Silos[1]));
    }

    [Fact]
    public void Reservations_expire_after_their_lifetime()
    {
        var rig = new DirectorRig(2, o => { o.ReservationLifetime = TimeSpan.FromSeconds(3); o.StaleAfter = TimeSpan.FromSeconds(60); });
        rig.Report(0, freePages: 100);
        rig.Report(1, freePages: 90);
        Assert.Equal(0, rig.Place("a", tokens: 20 * 16));
        Assert.Equal(20, rig.Stats.ReservedPages(rig.Silos[0]));
        Assert.Equal(1, rig.Place("b", tokens: 20 * 16)); // 80 < 90
        rig.Time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(0, rig.Stats.ReservedPages(rig.Silos[0]));
        Assert.Equal(0, rig.Place("c", tokens: 20 * 16)); // 100 again
    }

    [Fact]
    public void When_nothing_fits_the_least_queued_silo_is_chosen()
    {
        var rig = new DirectorRig(3);
        rig.Report(0, freePages: 5, queue: 7);
        rig.Report(1, freePages: 2, queue: 1);
        rig.Report(2, freePages: 9, queue: 4);
        Assert.Equal(1, rig.Place("big", tokens: 100 * 16));
    }

    [Fact]
    public void Stale_reports_are_ignored_and_fresh_ones_win_over_unknown_silos()
    {
        var rig = new DirectorRig(3, o => { o.RefreshInterval = TimeSpan.FromSeconds(1); o.StaleAfter = TimeSpan.FromSeconds(5); });
        rig.Report(0, freePages: 0);
        rig.Report(1, freePages: 0);
        rig.Report(2, freePages: 500);
        Assert.Equal(2, rig.Place("x"));
        rig.Time.Advance(TimeSpan.FromSeconds(6)); // every report stale: hash choice, as with no reports
        var noReports = new DirectorRig(3);
        Assert.Equal(noReports.Place("y"), rig.Place("y"));
        // One fresh report among stale ones: only the fresh silo is trusted, even when nearly full it beats unknowns.
        rig.Report(1, freePages: 20);
        for (var i = 0; i < 10; i++) Assert.Equal(1, rig.Place($"z{i}", tokens: 16));
    }

    [Fact]
    public void Estimate_comes_from_the_request_context_else_the_default()
    {
        var o = new VramAwarePlacementOptions { EstimatedTokensPerSession = 777 };
        Assert.Equal(777, VramAwarePlacementDirector.EstimatedTokens(null, o));
        Assert.Equal(42, VramAwarePlacementDirector.EstimatedTokens(new Dictionary<string, object> { [VramAwarePlacementOptions.EstimatedTokensKey] = 42 }, o));
        Assert.Equal(5_000_000_000, VramAwarePlacementDirector.EstimatedTokens(new Dictionary<string, object> { [VramAwarePlacementOptions.EstimatedTokensKey] = 5_000_000_000L }, o));
        Assert.Equal(777, VramAwarePlacementDirector.EstimatedTokens(new Dictionary<string, object> { [VramAwarePlacementOptions.EstimatedTokensKey] = -3 }, o));
        Assert.Equal(777, VramAwarePlacementDirector.EstimatedTokens(new Dictionary<string, object> { [VramAwarePlacementOptions.EstimatedTokensKey] = "lots" }, o));
        Assert.Equal(1, o.PagesFor(1));
        Assert.Equal(1, o.PagesFor(16));
        Assert.Equal(2, o.PagesFor(17));
    }
}

public sealed class VramAwarePlacementOptionsValidatorTests
{
    [Fact]
    public void Defaults_are_valid() => VramAwarePlacementOptionsValidator.Validate(new VramAwarePlacementOptions());

    [Theory]
    [InlineData(nameof(VramAwarePlacementOptions.RefreshInterval))]
    [InlineData(nameof(VramAwarePlacementOptions.RefreshTimeout))]
    [InlineData(nameof(VramAwarePlacementOptions.StaleAfter))]
    [InlineData(nameof(VramAwarePlacementOptions.ReservationLifetime))]
    [InlineData(nameof(VramAwarePlacementOptions.TokensPerPage))]
    [InlineData(nameof(VramAwarePlacementOptions.EstimatedTokensPerSession))]
    [InlineData(nameof(VramAwarePlacementOptions.MaxReportedSessions))]
    public void Rejects_a_bad_value_naming_the_option(string option)
    {
        var o = new VramAwarePlacementOptions();
        switch (option)
        {
            case nameof(o.RefreshInterval): o.RefreshInterval = TimeSpan.Zero; break;
            case nameof(o.RefreshTimeout): o.RefreshTimeout = TimeSpan.FromSeconds(-1); break;
            case nameof(o.StaleAfter): o.StaleAfter = o.RefreshInterval; break; // not beyond the interval
            case nameof(o.ReservationLifetime): o.ReservationLifetime = TimeSpan.Zero; break;
            case nameof(o.TokensPerPage): o.TokensPerPage = 0; break;
            case nameof(o.EstimatedTokensPerSession): o.EstimatedTokensPerSession = -1; break;
            case nameof(o.MaxReportedSessions): o.MaxReportedSessions = 0; break;
        }
        var e = Assert.Throws<OrleansConfigurationException>(() => VramAwarePlacementOptionsValidator.Validate(o));
        Assert.Contains($"VramAwarePlacementOptions.{option}", e.Message);
    }

    [Fact]
    public void The_registered_validator_reads_configured_options()
    {
        var validator = new VramAwarePlacementOptionsValidator(Microsoft.Extensions.Options.Options.Create(new VramAwarePlacementOptions { TokensPerPage = -4 }));
        var e = Assert.Throws<OrleansConfigurationException>(validator.ValidateConfiguration);
        Assert.Contains("TokensPerPage must be positive, got -4", e.Message);
    }
}

public sealed class SimulatedDeviceTests
{
    private static SimulatedDevice Device(int pages) => new(
        Microsoft.Extensions.Options.Options.Create(new SimulatedDeviceOptions { TotalPages = pages, PageBytes = 1000, ReservedVramBytes = 500 }),
        Microsoft.Extensions.Options.Options.Create(new VramAwarePlacementOptions { TokensPerPage = 16 }));

    [Fact]
    public void Pages_grow_with_tokens_and_overflow_moves_least_recent_sessions_to_host()
    {
        var d = Device(10);
        d.RecordTokens("a", 40);  // 3 pages
        d.RecordTokens("b", 64);  // 4 pages
        Assert.Equal(7, d.UsedPages);
        d.RecordTokens("a", 49);  // 4 pages, a is now most recent
        d.RecordTokens("c", 48);  // 3 pages: only 2 free, so b (least recent) goes to host
        Assert.Equal(0, d.DevicePagesOf("b"));
        Assert.Equal(4, d.PagesOnHost);
        Assert.Equal(7, d.UsedPages);
        var snap = d.Capture(10);
        var dev = Assert.Single(snap.Devices);
        Assert.Equal((10, 3, 4), (dev.TotalPages, dev.FreePages, dev.PagesOnHost));
        Assert.Equal((10 * 1000 + 500, 3 * 1000L), (dev.TotalVramBytes, dev.FreeVramBytes));
        Assert.Equal(["c", "a"], snap.Sessions); // most recent first, b not resident
        Assert.Equal(["c"], d.Capture(1).Sessions);
        Assert.True(d.Capture(1).SessionsTruncated);

        using (d.BeginGeneration("a")) Assert.Equal(1, d.Capture(1).Devices[0].QueueDepth);
        Assert.Equal(0, d.Capture(1).Devices[0].QueueDepth);
    }
}

public sealed class SimulatedDeviceExpectationTests
{
    [Fact]
    public void Expected_tokens_count_at_once_and_never_shrink_what_is_held()
    {
        var d = new SimulatedDevice(
            Microsoft.Extensions.Options.Options.Create(new SimulatedDeviceOptions { TotalPages = 100 }),
            Microsoft.Extensions.Options.Options.Create(new VramAwarePlacementOptions { TokensPerPage = 16 }));
        d.ExpectTokens("s", 160);           // 10 pages before any turn
        Assert.Equal(10, d.UsedPages);
        Assert.Equal(["s"], d.Capture(8).Sessions);
        d.ExpectTokens("s", 16);            // a smaller expectation keeps the 10
        Assert.Equal(10, d.UsedPages);
        d.RecordTokens("s", 40);            // the real size replaces the estimate
        Assert.Equal(3, d.UsedPages);
    }
}
