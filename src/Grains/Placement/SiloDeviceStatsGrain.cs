using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Placement;

namespace Actors.Grains.Placement;

/// <summary>
/// One per silo (key: the silo's address, SiloAddress.ToParsableString()), living on that silo: answers with the
/// silo's current device report. Other silos pull from it; see <see cref="DeviceStatsRefresher"/>.
/// </summary>
public interface ISiloDeviceStatsGrain : IGrainWithStringKey
{
    Task<SiloDeviceReport> GetReport();
}

/// <summary>
/// Pinned like GpuWorkerGrain: the owning silo's refresher calls it first (prefer-local puts it there) and it refuses
/// to activate on any other silo, so a remote caller never creates a stand-in that reports the wrong devices.
/// </summary>
[PreferLocalPlacement]
[Reentrant]
public sealed class SiloDeviceStatsGrain(
    IDeviceStatsSource source,
    ILocalSiloDetails silo,
    IOptions<VramAwarePlacementOptions> options,
    TimeProvider time) : Grain, ISiloDeviceStatsGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyString();
        var local = silo.SiloAddress.ToParsableString();
        if (!string.Equals(key, local, StringComparison.Ordinal))
            throw new InvalidOperationException($"device stats grain '{key}' belongs to silo {key}, not to {local}");
        return base.OnActivateAsync(cancellationToken);
    }

    public Task<SiloDeviceReport> GetReport() =>
        Task.FromResult(new SiloDeviceReport(silo.SiloAddress, time.GetUtcNow(), source.Capture(options.Value.MaxReportedSessions)));
}
