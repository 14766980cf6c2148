using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Actors.Grains.Storage;

/// <summary>Which blob store a silo uses.</summary>
public sealed class BlobStoreSettings
{
    /// <summary>An Azure Storage connection string; null or empty selects <see cref="LocalDiskBlobStore"/>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Root of the local-disk store (used when <see cref="ConnectionString"/> is empty).</summary>
    public string LocalDirectory { get; set; } = "";

    /// <summary>Container for the Azure store.</summary>
    public string ContainerName { get; set; } = "actors";

    /// <summary>Extra Azure client settings (retries, timeouts); <see cref="AzureBlobStoreOptions.ConnectionString"/> and ContainerName are taken from here.</summary>
    public Action<AzureBlobStoreOptions>? ConfigureAzure { get; set; }

    /// <summary>Builds the configured store. Throws ArgumentException naming the missing setting.</summary>
    public IBlobStore Create()
    {
        if (!string.IsNullOrWhiteSpace(ConnectionString))
        {
            var o = new AzureBlobStoreOptions { ConnectionString = ConnectionString, ContainerName = ContainerName };
            ConfigureAzure?.Invoke(o);
            return new AzureBlobStore(o);
        }
        if (string.IsNullOrWhiteSpace(LocalDirectory))
            throw new ArgumentException("BlobStoreSettings: neither ConnectionString nor LocalDirectory is set");
        return new LocalDiskBlobStore(LocalDirectory);
    }
}

public static class BlobStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IBlobStore"/> (Azure when a connection string is given, else local disk) and
    /// <see cref="KvSnapshotStore"/> on top of it, as singletons. Replaces an earlier IBlobStore registration.
    /// </summary>
    public static IServiceCollection AddActorsBlobStore(this IServiceCollection services, BlobStoreSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var store = new Lazy<IBlobStore>(settings.Create);
        services.RemoveAll<IBlobStore>();
        services.AddSingleton<IBlobStore>(_ => store.Value);
        services.TryAddSingleton<KvSnapshotStore>(sp => new KvSnapshotStore(sp.GetRequiredService<IBlobStore>()));
        return services;
    }

    /// <summary>Convenience overload: Azure when <paramref name="connectionString"/> is non-empty, else disk under <paramref name="localDirectory"/>.</summary>
    public static IServiceCollection AddActorsBlobStore(this IServiceCollection services, string? connectionString, string localDirectory) =>
        services.AddActorsBlobStore(new BlobStoreSettings { ConnectionString = connectionString, LocalDirectory = localDirectory });
}
