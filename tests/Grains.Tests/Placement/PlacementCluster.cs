using Actors.Abstractions;
using Actors.Grains.Placement;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Actors.Grains.Tests.Placement;

/// <summary>
/// An in-process cluster configured like the real silo, whose silos get simulated devices of the given page counts
/// (in start order) and fast stats refresh.
/// </summary>
public sealed class PlacementCluster : IAsyncDisposable
{
    public const int TokensPerPage = 16;
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(100);

    private readonly ClusterHarness _h = new();
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public string Model { get; private set; } = "";

    public static async Task<PlacementCluster> StartAsync(params int[] pagesPerSilo)
    {
        var c = new PlacementCluster();
        c.Model = c._h.MakeModel("char-2048", contextLength: 2048);
        var builder = new InProcessTestClusterBuilder((short)pagesPerSilo.Length);
        var options = new ActorsSiloOptions { DataDirectory = c._h.DataDirectory, UseLocalhostClustering = false };
        var hooks = c._h.Hooks;
        var next = -1;
        builder.ConfigureSilo((_, silo) =>
        {
            // Silos are configured one by one in start order; later silos (if any are added) get the last size.
            var pages = pagesPerSilo[Math.Min(Interlocked.Increment(ref next), pagesPerSilo.Length - 1)];
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(dir => new CharModel(dir, hooks));
            silo.Services.Configure<SimulatedDeviceOptions>(o => { o.TotalPages = pages; o.PageBytes = 4096; });
            silo.AddVramAwarePlacement(o =>
            {
                o.TokensPerPage = TokensPerPage;
                o.RefreshInterval = RefreshInterval;
                o.StaleAfter = TimeSpan.FromSeconds(5);
                o.EstimatedTokensPerSession = 256;
            });
        });
        c.Cluster = builder.Build();
        await c.Cluster.DeployAsync();
        return c;
    }

    public IReadOnlyList<SimulatedDevice> Devices =>
        Cluster.Silos.Where(s => s.IsActive).Select(s => s.ServiceProvider.GetRequiredService<SimulatedDevice>()).ToList();

    public IDocumentGrain Session(string id) => Cluster.Client.GetGrain<IDocumentGrain>(id);

    /// <summary>The device whose KV pages hold the session (null when none does).</summary>
    public SimulatedDevice? Holder(string sessionId) => Devices.SingleOrDefault(d => d.DevicePagesOf(sessionId) > 0);

    /// <summary>Every silo pulls every report now (instead of waiting for the next refresh tick).</summary>
    public Task RefreshAllAsync() => Task.WhenAll(Cluster.Silos.Where(s => s.IsActive)
        .Select(s => s.ServiceProvider.GetRequiredService<DeviceStatsRefresher>().RefreshOnce()));

    /// <summary>Opens (with an estimate in the request context) and asks once; returns the answer text.</summary>
    public async Task<string> OpenAndAskAsync(string sessionId, string message, long? estimatedTokens)
    {
        if (estimatedTokens is { } t) RequestContext.Set(VramAwarePlacementOptions.EstimatedTokensKey, t);
        try
        {
            var grain = Session(sessionId);
            await grain.Open(new OpenSession(Model));
            return await AskAsync(grain, message);
        }
        finally
        {
            RequestContext.Remove(VramAwarePlacementOptions.EstimatedTokensKey);
        }
    }

    public static async Task<string> AskAsync(IDocumentGrain grain, string message)
    {
        var text = new System.Text.StringBuilder();
        await foreach (var c in grain.Ask(new AskRequest(message), TestContext.Current.CancellationToken)) text.Append(c.Text);
        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.StopAllSilosAsync();
            await Cluster.DisposeAsync();
        }
        await _h.DisposeAsync();
    }
}
