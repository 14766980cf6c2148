using Actors.Engine;
using Actors.Grains;
using Actors.Grains.Ingestion;
using Actors.Grains.Jobs;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Actors.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Actors.Silo;

/// <summary>The configuration of an Actors silo, shared by the real host and the test clusters.</summary>
public static class ActorsSilo
{
    /// <summary>
    /// Clustering (localhost unless turned off), file grain storage for sessions under the data directory, the blob
    /// store (Azure when a connection string is set, else local disk under the data directory), the grains'
    /// services, and VRAM-aware placement of sessions. The text generator factory is registered separately
    /// (services.AddTextGeneratorFactory).
    /// </summary>
    public static ISiloBuilder ConfigureActorsSilo(this ISiloBuilder builder, ActorsSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.UseLocalhostClustering)
            builder.UseLocalhostClustering(options.SiloPort, options.GatewayPort, null, options.ServiceId, options.ClusterId);
        var grainDirectory = options.GrainStorageDirectory;
        builder.AddFileGrainStorage(ActorsStorage.SessionStore, o => o.RootDirectory = grainDirectory);
        builder.AddFileGrainStorage(SummarizationJobGrain.StorageName, o => o.RootDirectory = grainDirectory);
        // Reminders resume unfinished summarization jobs on a live silo. The table is a file under the data directory:
        // enough for the one-machine default (a job resumes by itself after the silo restarts); a multi-machine
        // cluster needs a shared reminder table (e.g. Azure Table) instead.
        builder.AddReminders();
        var reminders = Path.Combine(options.DataDirectory, "reminders.json");
        builder.Services.AddSingleton<IReminderTable>(_ => new FileReminderTable(reminders));
        builder.Services.AddActorsGrains();
        builder.Services.AddActorsBlobStore(options.BlobConnectionString, options.BlobStorageDirectory);
        builder.Services.AddDocumentIngestion(); // files submitted to summarization jobs
        // Sessions go where their KV is or where the GPU memory is; devices are simulated until the engine reports its pools.
        builder.AddVramAwarePlacement();
        return builder;
    }

    /// <summary>Longest a graceful stop may take: every session stores its KV snapshot while its silo deactivates it.</summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The real silo host (Program uses it): Orleans configured by <see cref="ConfigureActorsSilo"/>, each model directory
    /// loaded by <paramref name="loadModel"/>, and placement fed by the loaded engines' page pools (one device per silo,
    /// ordinal 0) instead of a simulated device.
    /// Shutdown order: a graceful stop runs the Orleans silo's stop, which deactivates every activation; each session
    /// then exports its KV from the engine and stores it in blob (bounded by SessionKvOptions.SnapshotSaveTimeout). The
    /// engines belong to the ModelHost singleton, which only the service provider's disposal (after the host stopped)
    /// disposes, so no session finds its engine gone. The host's shutdown timeout is raised to <see cref="ShutdownTimeout"/>
    /// so those uploads are not cut short.
    /// </summary>
    public static HostApplicationBuilder AddActorsSilo(this HostApplicationBuilder builder, ActorsSiloOptions options, Func<string, ITextGenerator> loadModel)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loadModel);
        builder.UseOrleans(silo => silo.ConfigureActorsSilo(options));
        builder.Services.AddTextGeneratorFactory(loadModel);
        builder.Services.AddEngineDeviceStats();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
        return builder;
    }
}
