using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime.Hosting;

namespace Actors.Silo.Storage;

public static class FileGrainStorageExtensions
{
    /// <summary>Adds a <see cref="FileGrainStorage"/> named <paramref name="name"/>.</summary>
    public static ISiloBuilder AddFileGrainStorage(this ISiloBuilder builder, string name, Action<FileGrainStorageOptions> configure)
    {
        builder.Services.AddFileGrainStorage(name, configure);
        return builder;
    }

    /// <summary>Adds a <see cref="FileGrainStorage"/> named <paramref name="name"/>.</summary>
    public static IServiceCollection AddFileGrainStorage(this IServiceCollection services, string name, Action<FileGrainStorageOptions> configure)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<FileGrainStorageOptions>(name).Configure(configure);
        return services.AddGrainStorage(name, static (sp, n) => new FileGrainStorage(
            n,
            sp.GetRequiredService<IOptionsMonitor<FileGrainStorageOptions>>().Get(n),
            sp.GetRequiredService<ILogger<FileGrainStorage>>()));
    }
}
