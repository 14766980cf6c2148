using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Actors.Grains.Ingestion;

public static class IngestionServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="DocumentIngestor"/> as a singleton over the registered <see cref="IBlobStore"/>
    /// (see AddActorsBlobStore). Idempotent: a second call does not replace the first registration.
    /// </summary>
    public static IServiceCollection AddDocumentIngestion(this IServiceCollection services, Action<IngestionOptions>? configure = null)
    {
        var options = new IngestionOptions();
        configure?.Invoke(options);
        options.Validate();
        services.TryAddSingleton(sp => new DocumentIngestor(sp.GetRequiredService<IBlobStore>(), options, sp.GetService<ILogger<DocumentIngestor>>()));
        return services;
    }
}
