using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

public static class VramAwarePlacementExtensions
{
    /// <summary>Registers <see cref="VramAwarePlacement"/> on the silo; see the IServiceCollection overload.</summary>
    public static ISiloBuilder AddVramAwarePlacement(this ISiloBuilder builder, Action<VramAwarePlacementOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddVramAwarePlacement(configure);
        return builder;
    }

    /// <summary>
    /// The strategy and its director, the options and their validator, this silo's <see cref="ClusterDeviceStats"/> and
    /// the refresher that fills it. The device source defaults to a <see cref="SimulatedDevice"/> sized by
    /// <see cref="SimulatedDeviceOptions"/>; register an <see cref="IDeviceStatsSource"/> / <see cref="ISessionKvTracker"/>
    /// before this call to use a real one. Idempotent apart from <paramref name="configure"/>, which is added each time.
    /// </summary>
    public static IServiceCollection AddVramAwarePlacement(this IServiceCollection services, Action<VramAwarePlacementOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<VramAwarePlacementOptions>();
        if (configure is not null) options.Configure(configure);
        if (services.Any(d => d.ServiceType == typeof(ClusterDeviceStats))) return services;

        services.AddPlacementDirector<VramAwarePlacement, VramAwarePlacementDirector>();
        services.AddSingleton<IConfigurationValidator, VramAwarePlacementOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ClusterDeviceStats>();
        services.AddSingleton<DeviceStatsRefresher>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<DeviceStatsRefresher>());
        services.AddOptions<SimulatedDeviceOptions>();
        services.TryAddSingleton<SimulatedDevice>();
        services.TryAddSingleton<IDeviceStatsSource>(sp => sp.GetRequiredService<SimulatedDevice>());
        services.TryAddSingleton<ISessionKvTracker>(sp => sp.GetRequiredService<SimulatedDevice>());
        return services;
    }
}
