using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

/// <summary>
/// Fills this silo's <see cref="ClusterDeviceStats"/>: from the silo's Active stage until it stops, every
/// RefreshInterval it asks every active member's <see cref="ISiloDeviceStatsGrain"/> (its own first, which also
/// activates that grain here) for a report, each call bounded by RefreshTimeout. A silo that fails to answer keeps its
/// last report, which the director stops trusting after StaleAfter. Silos that left membership are dropped.
/// </summary>
public sealed partial class DeviceStatsRefresher(
    ClusterDeviceStats stats,
    IGrainFactory grains,
    IClusterMembershipService membership,
    ILocalSiloDetails local,
    IOptions<VramAwarePlacementOptions> options,
    ILogger<DeviceStatsRefresher> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(DeviceStatsRefresher), ServiceLifecycleStage.Active, OnStart, OnStop);

    private Task OnStart(CancellationToken _)
    {
        _loop = Task.Run(Loop);
        return Task.CompletedTask;
    }

    private async Task OnStop(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>One round: pulls every active member's report. Public so tests can force a round.</summary>
    public async Task RefreshOnce(CancellationToken cancellationToken = default)
    {
        var members = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToHashSet();
        members.Add(local.SiloAddress);
        stats.Retain(members);
        // Own grain first: it must activate here before any remote caller asks for it.
        await Pull(local.SiloAddress, cancellationToken);
        await Task.WhenAll(members.Where(m => !m.Equals(local.SiloAddress)).Select(m => Pull(m, cancellationToken)));
    }

    private async Task Loop()
    {
        using var timer = new PeriodicTimer(options.Value.RefreshInterval, stats.Time);
        try
        {
            do
            {
                try { await RefreshOnce(_stop.Token); }
                catch (Exception e) when (!_stop.IsCancellationRequested) { LogRoundFailed(e); }
            } while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
    }

    private async Task Pull(SiloAddress silo, CancellationToken cancellationToken)
    {
        try
        {
            var report = await grains.GetGrain<ISiloDeviceStatsGrain>(silo.ToParsableString()).GetReport()
                .WaitAsync(options.Value.RefreshTimeout, stats.Time, cancellationToken);
            stats.Update(report);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            LogPullFailed(silo, e.Message);
        }
    }

    [LoggerMessage(1, LogLevel.Debug, "Device report of silo {Silo} not refreshed: {Reason}")]
    private partial void LogPullFailed(SiloAddress silo, string reason);

    [LoggerMessage(2, LogLevel.Warning, "Device stats refresh round failed")]
    private partial void LogRoundFailed(Exception e);
}
