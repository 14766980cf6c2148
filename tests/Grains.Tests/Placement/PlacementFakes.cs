using System.Net;
using Actors.Grains.Placement;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Runtime.Placement;

namespace Actors.Grains.Tests.Placement;

internal sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;
    public override DateTimeOffset GetUtcNow() => Now;
    public void Advance(TimeSpan by) => Now += by;
}

internal sealed class FakePlacementContext(SiloAddress[] silos) : IPlacementContext
{
    public SiloAddress[] GetCompatibleSilos(PlacementTarget target) => silos;
    public IReadOnlyDictionary<ushort, SiloAddress[]> GetCompatibleSilosWithVersions(PlacementTarget target) => new Dictionary<ushort, SiloAddress[]> { [0] = silos };
    public SiloAddress LocalSilo => silos[0];
    public SiloStatus LocalSiloStatus => SiloStatus.Active;
}

/// <summary>A director over a hand-filled <see cref="ClusterDeviceStats"/>, with a manual clock.</summary>
internal sealed class DirectorRig
{
    public ManualTime Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    public VramAwarePlacementOptions Options { get; }
    public ClusterDeviceStats Stats { get; }
    public VramAwarePlacementDirector Director { get; }
    public SiloAddress[] Silos { get; }

    public DirectorRig(int silos, Action<VramAwarePlacementOptions>? configure = null)
    {
        Options = new VramAwarePlacementOptions { TokensPerPage = 16, EstimatedTokensPerSession = 160 }; // default need: 10 pages
        configure?.Invoke(Options);
        Stats = new ClusterDeviceStats(Microsoft.Extensions.Options.Options.Create(Options), Time);
        Director = new VramAwarePlacementDirector(Stats, NullLogger<VramAwarePlacementDirector>.Instance);
        Silos = Enumerable.Range(0, silos).Select(i => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111 + i), 1)).ToArray();
    }

    public void Report(int silo, int freePages, int totalPages = 1000, int queue = 0, params string[] sessions) =>
        Stats.Update(new SiloDeviceReport(Silos[silo], Time.Now, new DeviceSnapshot(
            [new DeviceStats(0, totalPages * 1024L, freePages * 1024L, totalPages, freePages, 0, queue, 1024)], sessions, false)));

    /// <summary>Places session <paramref name="id"/> (estimated <paramref name="tokens"/> when given); returns the silo index.</summary>
    public int Place(string id, long? tokens = null)
    {
        var context = tokens is { } t ? new Dictionary<string, object> { [VramAwarePlacementOptions.EstimatedTokensKey] = t } : null;
        var target = new PlacementTarget(GrainId.Create("document", id), context!, default, 0);
        var silo = Director.OnAddActivation(new VramAwarePlacement(), target, new FakePlacementContext(Silos));
        Assert.True(silo.IsCompletedSuccessfully, "the director must answer synchronously");
        return Array.IndexOf(Silos, silo.Result);
    }
}
