using System.Net;
using System.Net.Sockets;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Silo;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.TestingHost;
using Actors.Silo.Storage;

namespace Actors.Grains.Tests;

/// <summary>A temp data directory, a model directory, and in-process clusters configured like the real silo.</summary>
public sealed class ClusterHarness : IAsyncDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "actors-grains-" + Guid.NewGuid().ToString("N"));
    public string DataDirectory => Path.Combine(Root, "data");
    public CharModelHooks Hooks { get; } = new();
    public InProcessTestCluster? Cluster { get; private set; }

    public ClusterHarness() => Directory.CreateDirectory(Root);

    /// <summary>Loopback ports for a silo host configured like the real one (see <see cref="StartSiloHostAsync"/>).</summary>
    public int SiloPort { get; } = FreePort();
    public int GatewayPort { get; } = FreePort();

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>
    /// A started silo host as the real one is configured (ConfigureActorsSilo on <see cref="SiloPort"/> /
    /// <see cref="GatewayPort"/> over <see cref="DataDirectory"/>), loading models with <paramref name="loadModel"/>
    /// (CharModel with <see cref="Hooks"/> when null); <paramref name="configure"/> adds to the silo's services.
    /// </summary>
    public async Task<IHost> StartSiloHostAsync(Func<string, ITextGenerator>? loadModel = null, Action<ISiloBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        var options = new ActorsSiloOptions { SiloPort = SiloPort, GatewayPort = GatewayPort, DataDirectory = DataDirectory };
        var hooks = Hooks;
        loadModel ??= dir => new CharModel(dir, hooks);
        builder.UseOrleans(silo =>
        {
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(loadModel);
            configure?.Invoke(silo);
        });
        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        return host;
    }

    /// <summary>Writes a CharModel directory with the given context length; returns its path.</summary>
    public string MakeModel(string name, int contextLength)
    {
        var dir = Path.Combine(Root, "models", name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""{"model_id": "{{name}}", "context_length": {{contextLength}}}""");
        return dir;
    }

    public async Task<InProcessTestCluster> StartAsync(short silos = 2)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        var options = new ActorsSiloOptions { DataDirectory = DataDirectory, UseLocalhostClustering = false };
        var hooks = Hooks;
        builder.ConfigureSilo((_, silo) =>
        {
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(dir => new CharModel(dir, hooks));
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        return Cluster;
    }

    public async Task StopAsync()
    {
        if (Cluster is null) return;
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Cluster = null;
    }

    /// <summary>The session's state as it is on disk right now (null when never written).</summary>
    public DocumentState? ReadStoredState(IDocumentGrain grain)
    {
        var grainId = grain.GetGrainId();
        var storage = new FileGrainStorage("check", new FileGrainStorageOptions { RootDirectory = Path.Combine(DataDirectory, "grains") }, NullLogger<FileGrainStorage>.Instance);
        var state = new GrainState<DocumentState>();
        storage.ReadStateAsync("document", grainId, state).GetAwaiter().GetResult();
        return state.RecordExists ? state.State : null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
