using System.Diagnostics.Metrics;
using Actors.Engine;
using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Actors.Grains;

public static class ServiceCollectionExtensions
{
    /// <summary>Services the grains need: the silo's <see cref="IModelHost"/>. Idempotent.</summary>
    public static IServiceCollection AddActorsGrains(this IServiceCollection services)
    {
        services.TryAddSingleton<ModelHost>(sp => new ModelHost(sp.GetRequiredService<ILogger<ModelHost>>(), sp.GetService<TextGeneratorFactory>()));
        services.TryAddSingleton<IModelHost>(sp => sp.GetRequiredService<ModelHost>());
        services.AddOptions<SessionKvOptions>();
        services.TryAddSingleton(sp => new GrainMetrics(sp.GetService<IMeterFactory>(), PagesPerTier(sp.GetRequiredService<ModelHost>())));
        services.TryAddSingleton(sp => new SessionKvSnapshots(
            sp.GetService<KvSnapshotStore>(), sp.GetRequiredService<GrainMetrics>(),
            sp.GetRequiredService<IOptions<SessionKvOptions>>(), sp.GetRequiredService<ILogger<SessionKvSnapshots>>()));
        return services;
    }

    // Pages of every loaded engine's tiers, summed, for the pages-per-tier gauge.
    private static Func<IEnumerable<(string Tier, long Pages)>> PagesPerTier(ModelHost models) => () =>
    {
        long device = 0, cached = 0, host = 0;
        foreach (var g in models.Loaded)
        {
            if (g.KvTiers is not { } tiers) continue;
            var t = tiers.TierStats;
            device += t.DevicePagesTotal - t.DevicePagesFree;
            cached += t.DevicePagesCached;
            host += t.HostPagesUsed;
        }
        return [("device", device), ("device_cached", cached), ("host", host)];
    };

    /// <summary>
    /// Registers how this silo loads a model directory into an <see cref="ITextGenerator"/> (replacing any earlier
    /// registration). The factory runs once per model directory per silo, on a thread-pool thread.
    /// </summary>
    public static IServiceCollection AddTextGeneratorFactory(this IServiceCollection services, Func<string, ITextGenerator> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        services.RemoveAll<TextGeneratorFactory>();
        services.AddSingleton<TextGeneratorFactory>(dir => factory(dir));
        return services.AddActorsGrains();
    }
}
