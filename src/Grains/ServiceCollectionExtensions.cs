using Actors.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Actors.Grains;

public static class ServiceCollectionExtensions
{
    /// <summary>Services the grains need: the silo's <see cref="IModelHost"/>. Idempotent.</summary>
    public static IServiceCollection AddActorsGrains(this IServiceCollection services)
    {
        services.TryAddSingleton<ModelHost>(sp => new ModelHost(sp.GetRequiredService<ILogger<ModelHost>>(), sp.GetService<TextGeneratorFactory>()));
        services.TryAddSingleton<IModelHost>(sp => sp.GetRequiredService<ModelHost>());
        return services;
    }

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
