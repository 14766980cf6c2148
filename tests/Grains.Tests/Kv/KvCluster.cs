using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Actors.Silo;
using Actors.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.TestingHost;

namespace Actors.Grains.Tests.Kv;

/// <summary>
/// An in-process cluster configured like the real silo, each silo serving the tiny real Qwen2 fixture through the CPU
/// engine (small device and host page pools), placement fed by <see cref="EngineDeviceStats"/>, blobs on local disk
/// (or Azure/Azurite) behind a switch that can make the store fail. Data survives <see cref="RestartAsync"/>.
/// </summary>
public sealed class KvCluster : IAsyncDisposable
{
    public const int KvPages = 192;
    public const int HostPages = 96;
    public const int PageSize = 16;
    public const int ContextLength = 512;
    public const int MaxNewTokens = 8;

    private readonly string? _azure;
    private readonly string _container = "kv-" + Guid.NewGuid().ToString("N")[..16];

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "actors-kv-" + Guid.NewGuid().ToString("N"));
    public string DataDirectory => Path.Combine(Root, "data");
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public StoreSwitch Store { get; } = new();
    public MetricsRecorder Metrics { get; } = new();

    /// <summary>The Qwen2 fixture directory (tests/fixtures/models/qwen2).</summary>
    public static string Model { get; } = FindModel();

    /// <summary>Page bytes of the fixture on the CPU engine: 2 layers x (K, V) x 16 slots x 2 kv heads x 16 dims x 4 bytes.</summary>
    public static long PageBytes => 2L * 2 * PageSize * 2 * 16 * 4;

    public static EngineOptions Engine => new()
    {
        Backend = Backend.Cpu,
        KvPages = KvPages,
        HostKvBytes = HostPages * PageBytes,
        ContextLength = ContextLength,
        PageSize = PageSize,
        MaxSequences = 64,
    };

    private readonly Action<ISiloBuilder>? _configure;

    private KvCluster(string? azureConnectionString, Action<ISiloBuilder>? configure)
    {
        _azure = azureConnectionString;
        _configure = configure;
    }

    /// <param name="configure">Extra silo configuration, applied after the defaults.</param>
    public static async Task<KvCluster> StartAsync(short silos = 3, string? azureConnectionString = null, Action<ISiloBuilder>? configure = null)
    {
        var c = new KvCluster(azureConnectionString, configure);
        Directory.CreateDirectory(c.Root);
        await c.DeployAsync(silos);
        return c;
    }

    private async Task DeployAsync(short silos)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        var options = new ActorsSiloOptions { DataDirectory = DataDirectory, UseLocalhostClustering = false, BlobConnectionString = _azure };
        var store = Store;
        var azure = _azure;
        var container = _container;
        var configure = _configure;
        builder.ConfigureSilo((_, silo) =>
        {
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(dir => TextGenerator.Load(dir, Engine));
            silo.Services.AddEngineDeviceStats(o => { o.PagesBeforeLoad = KvPages; o.PageBytesBeforeLoad = PageBytes; });
            silo.AddVramAwarePlacement(o =>
            {
                o.TokensPerPage = PageSize;
                o.RefreshInterval = TimeSpan.FromMilliseconds(100);
                o.EstimatedTokensPerSession = 64;
            });
            // The configured store behind a switch: tests turn on an outage or read what was stored.
            var settings = new BlobStoreSettings
            {
                ConnectionString = azure,
                LocalDirectory = options.BlobStorageDirectory,
                ContainerName = container,
                ConfigureAzure = o => { o.MaxRetries = 1; o.RetryDelay = TimeSpan.FromMilliseconds(50); o.NetworkTimeout = TimeSpan.FromSeconds(3); },
            };
            silo.Services.AddSingleton<IBlobStore>(_ => store.Wrap(settings.Create()));
            configure?.Invoke(silo);
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        foreach (var s in Cluster.Silos) Metrics.Listen(s.ServiceProvider.GetRequiredService<GrainMetrics>().Meter);
    }

    /// <summary>Stops every silo gracefully and starts a fresh cluster (new engines: empty device and host pools) on the same data.</summary>
    public async Task RestartAsync(short silos = 3)
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        await DeployAsync(silos);
    }

    public IDocumentGrain Session(string id) => Cluster.Client.GetGrain<IDocumentGrain>(id);

    /// <summary>The silo holding the session's activation, or null when it has none.</summary>
    public InProcessSiloHandle? SiloOf(string sessionId)
    {
        if (!Cluster.TryGetGrainContext(Session(sessionId).GetGrainId(), out var ctx)) return null;
        return Cluster.Silos.FirstOrDefault(s => s.IsActive && s.SiloAddress.Equals(ctx.Address.SiloAddress));
    }

    /// <summary>The silo's engine for the fixture (null when it has not loaded it).</summary>
    public static ITextGenerator? EngineOf(InProcessSiloHandle silo) =>
        silo.ServiceProvider.GetRequiredService<IModelHost>().TryGetLoaded(Model, out var g) ? g : null;

    public KvSnapshotStore Snapshots(InProcessSiloHandle? silo = null) =>
        (silo ?? Cluster.Silos.First(s => s.IsActive)).ServiceProvider.GetRequiredService<KvSnapshotStore>();

    /// <summary>The session's state as stored now.</summary>
    public DocumentState? StoredState(string sessionId)
    {
        var storage = new FileGrainStorage("check", new FileGrainStorageOptions { RootDirectory = Path.Combine(DataDirectory, "grains") }, NullLogger<FileGrainStorage>.Instance);
        var state = new GrainState<DocumentState>();
        storage.ReadStateAsync("document", Session(sessionId).GetGrainId(), state).GetAwaiter().GetResult();
        return state.RecordExists ? state.State : null;
    }

    public static async Task<(string Text, GenerationStats Stats)> AskAsync(IDocumentGrain grain, string message)
    {
        var text = new System.Text.StringBuilder();
        GenerationStats? stats = null;
        await foreach (var c in grain.Ask(new AskRequest(message, MaxNewTokens), TestContext.Current.CancellationToken))
        {
            text.Append(c.Text);
            stats ??= c.Stats;
        }
        return (text.ToString(), stats ?? throw new InvalidOperationException("no final chunk"));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            Store.Outage = null;
            await Cluster.StopAllSilosAsync();
            await Cluster.DisposeAsync();
        }
        finally
        {
            Metrics.Dispose();
            try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
        }
    }

    private static string FindModel()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
                return Path.Combine(d.FullName, "tests", "fixtures", "models", "qwen2");
        throw new DirectoryNotFoundException("repository root (Actors.sln) not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// The same conversations run uninterrupted on one engine outside the cluster, built exactly as DocumentGrain builds
/// them (chat template over every turn, greedy, streamed decode): what a resumed session must answer.
/// </summary>
public sealed class ReferenceConversations : IDisposable
{
    private readonly TextGenerator _g = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);

    public TextGenerator Generator => _g;

    /// <summary>The answers to <paramref name="questions"/>, asked in order in one session.</summary>
    public async Task<List<string>> AnswersAsync(params string[] questions)
    {
        var messages = new List<ChatMessage>();
        var answers = new List<string>();
        foreach (var q in questions)
        {
            messages.Add(new ChatMessage("user", q));
            var prompt = _g.EncodeChat(messages, addGenerationPrompt: true);
            var decoder = _g.CreateStreamDecoder();
            var text = new System.Text.StringBuilder();
            await foreach (var t in _g.GenerateAsync(prompt, SamplingParams.Greedy(KvCluster.MaxNewTokens), TestContext.Current.CancellationToken))
                text.Append(decoder.Push(t));
            text.Append(decoder.Flush());
            answers.Add(text.ToString());
            messages.Add(new ChatMessage("assistant", text.ToString()));
        }
        return answers;
    }

    public void Dispose() => _g.Dispose();
}

/// <summary>Wraps each silo's blob store so a test can make every call fail (a storage outage).</summary>
public sealed class StoreSwitch
{
    /// <summary>When set, every call of every wrapped store throws what this returns.</summary>
    public Func<Exception>? Outage { get; set; }

    public IBlobStore Wrap(IBlobStore inner) => new Switched(inner, this);

    private sealed class Switched(IBlobStore inner, StoreSwitch s) : IBlobStore
    {
        private void Check()
        {
            if (s.Outage is { } fail) throw fail();
        }

        public Task<BlobProperties> PutAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default)
        { Check(); return inner.PutAsync(name, content, options, cancellationToken); }

        public Task<bool> PutIfNotExistsAsync(string name, Stream content, BlobPutOptions? options = null, CancellationToken cancellationToken = default)
        { Check(); return inner.PutIfNotExistsAsync(name, content, options, cancellationToken); }

        public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
        { Check(); return inner.GetAsync(name, cancellationToken); }

        public Task<BlobProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default)
        { Check(); return inner.GetPropertiesAsync(name, cancellationToken); }

        public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default)
        { Check(); return inner.ExistsAsync(name, cancellationToken); }

        public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default)
        { Check(); return inner.DeleteAsync(name, cancellationToken); }

        public IAsyncEnumerable<BlobProperties> ListAsync(string prefix, CancellationToken cancellationToken = default)
        { Check(); return inner.ListAsync(prefix, cancellationToken); }
    }
}

/// <summary>
/// Sums the measurements of the grains' meters by instrument and tier tag. Listens from construction (before the silos
/// create their meters) to every meter named <see cref="GrainMetrics.MeterName"/>, and counts only those of the meters
/// given to <see cref="Listen"/> (this cluster's silos; other tests in the process have their own).
/// </summary>
public sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Meter, byte> _meters = new();
    private readonly ConcurrentQueue<(Meter Meter, string Instrument, double Value, Dictionary<string, string?> Tags)> _measurements = new();

    public MetricsRecorder()
    {
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == GrainMetrics.MeterName) l.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    public void Listen(Meter meter) => _meters.TryAdd(meter, 0);

    /// <summary>Reads every observable instrument (gauges) once into the measurements.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    private void Add(Instrument i, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var d = new Dictionary<string, string?>();
        foreach (var t in tags) d[t.Key] = t.Value?.ToString();
        _measurements.Enqueue((i.Meter, i.Name, value, d));
    }

    private IEnumerable<double> Of(string instrument, string? tagKey, string? tagValue) =>
        _measurements.Where(m => _meters.ContainsKey(m.Meter) && m.Instrument == instrument
            && (tagKey is null || (m.Tags.TryGetValue(tagKey, out var v) && v == tagValue))).Select(m => m.Value);

    /// <summary>Sum of an instrument's measurements, of one tier when <paramref name="tier"/> is given.</summary>
    public double Sum(string instrument, string? tier = null) => Of(instrument, tier is null ? null : "tier", tier).Sum();

    /// <summary>Number of an instrument's measurements, of one tier when <paramref name="tier"/> is given.</summary>
    public int Count(string instrument, string? tier = null) => Of(instrument, tier is null ? null : "tier", tier).Count();

    /// <summary>Number of an instrument's measurements with the tag <paramref name="key"/> = <paramref name="value"/>.</summary>
    public int CountTagged(string instrument, string key, string value) => Of(instrument, key, value).Count();

    public void Dispose() => _listener.Dispose();
}
