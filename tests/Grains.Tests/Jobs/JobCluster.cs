using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Sampling;
using Actors.Grains.Jobs;
using Actors.Grains.Placement;
using Actors.Silo;
using Actors.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace Actors.Grains.Tests.Jobs;

/// <summary>One generation as a model saw it: which silo ran it and the prompt's last user message.</summary>
public sealed record Execution(string Silo, string UserMessage);

/// <summary>
/// An in-process cluster configured like the real silo, for jobs: CharModels that record every generation with the
/// silo that ran it, simulated devices with fast stats refresh (so placement spreads steps), a reminder table that
/// survives silo deaths, reminders every second, and quick retries.
/// </summary>
public sealed class JobCluster : IAsyncDisposable
{
    private readonly ClusterHarness _h = new();
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public string Model { get; private set; } = "";
    public CharModelHooks Hooks => _h.Hooks;
    public SharedReminderTable Reminders { get; } = new();
    public ConcurrentQueue<Execution> Executions { get; } = new();
    public string DataDirectory => _h.DataDirectory;

    public IClusterClient Client => Cluster.Client;

    private short _silos;
    private Action<SummarizationJobOptions>? _jobs;

    public static async Task<JobCluster> StartAsync(short silos, int contextLength = 4096, Action<SummarizationJobOptions>? jobs = null)
    {
        var c = new JobCluster { _silos = silos, _jobs = jobs };
        c.Model = c._h.MakeModel($"char-{contextLength}", contextLength);
        await c.DeployAsync();
        return c;
    }

    /// <summary>Stops every silo (gracefully: activations are deactivated) and starts a new cluster on the same data and reminder table.</summary>
    public async Task RestartAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        await DeployAsync();
    }

    private async Task DeployAsync()
    {
        var builder = new InProcessTestClusterBuilder(_silos);
        var options = new ActorsSiloOptions { DataDirectory = _h.DataDirectory, UseLocalhostClustering = false };
        builder.ConfigureSilo((siloOptions, silo) =>
        {
            var name = siloOptions.SiloName;
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(dir => new RecordingModel(new CharModel(dir, Hooks), name, Executions));
            silo.Services.AddSingleton<IReminderTable>(Reminders);
            silo.Services.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
            silo.Services.Configure<SummarizationJobOptions>(o =>
            {
                o.ResumePeriod = TimeSpan.FromSeconds(1);
                o.RetryDelay = TimeSpan.FromMilliseconds(200);
                o.StepAttempts = 12;
                _jobs?.Invoke(o);
            });
            silo.Services.Configure<SimulatedDeviceOptions>(o => { o.TotalPages = 100_000; o.PageBytes = 4096; });
            silo.AddVramAwarePlacement(o =>
            {
                o.TokensPerPage = 16;
                o.RefreshInterval = TimeSpan.FromMilliseconds(100);
                o.StaleAfter = TimeSpan.FromSeconds(5);
            });
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public ISummarizationJobGrain Job(string jobId) => Client.GetGrain<ISummarizationJobGrain>(jobId);

    public Task<JobInfo> SubmitAsync(string text, SummaryOptions? options = null, bool force = false) =>
        SummarizationJobs.SubmitAsync(Client, new SubmitJob(Model, options ?? new SummaryOptions(), Text: text, Force: force));

    /// <summary>Every progress report until the job is final.</summary>
    public async Task<List<JobProgress>> WatchAsync(string jobId, TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(timeout);
        var seen = new List<JobProgress>();
        await foreach (var p in Job(jobId).Watch(cts.Token)) seen.Add(p);
        return seen;
    }

    /// <summary>The silo (index into Cluster.Silos) holding the grain's activation; -1 when none does.</summary>
    public int HostOf(IAddressable grain)
    {
        if (!Cluster.TryGetGrainContext(grain.GetGrainId(), out var context)) return -1;
        for (var i = 0; i < Cluster.Silos.Count; i++)
            if (Cluster.Silos[i].IsActive && context.Address.SiloAddress == Cluster.Silos[i].SiloAddress) return i;
        return -1;
    }

    /// <summary>The job's state as it is in grain storage now (null when never written).</summary>
    public SummarizationJobState? StoredJob(string jobId)
    {
        var storage = new FileGrainStorage("check", new FileGrainStorageOptions { RootDirectory = Path.Combine(DataDirectory, "grains") }, NullLogger<FileGrainStorage>.Instance);
        var state = new GrainState<SummarizationJobState>();
        storage.ReadStateAsync("job", Job(jobId).GetGrainId(), state).GetAwaiter().GetResult();
        return state.RecordExists ? state.State : null;
    }

    /// <summary>Generations whose user message was exactly <paramref name="userMessage"/>.</summary>
    public int Runs(string userMessage) => Executions.Count(e => e.UserMessage == userMessage);

    public async ValueTask DisposeAsync()
    {
        if (Cluster is not null)
        {
            try { await Cluster.StopAllSilosAsync(); } catch (Exception) { /* a killed silo may refuse */ }
            await Cluster.DisposeAsync();
        }
        await _h.DisposeAsync();
    }
}

/// <summary>A model that records each generation (silo, last user message) and delegates to an inner CharModel.</summary>
public sealed class RecordingModel(CharModel inner, string silo, ConcurrentQueue<Execution> log) : ITextGenerator
{
    public string ModelId => inner.ModelId;
    public int ContextLength => inner.ContextLength;
    public IReadOnlyList<int> Encode(string text) => inner.Encode(text);
    public string Decode(IReadOnlyList<int> tokens) => inner.Decode(tokens);
    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) => inner.EncodeChat(messages, addGenerationPrompt);
    public IStreamDecoder CreateStreamDecoder() => inner.CreateStreamDecoder();

    public async IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var lastUser = -1;
        for (var i = 0; i < prompt.Count; i++) if (prompt[i] == CharModel.UserTag) lastUser = i;
        var end = lastUser + 1;
        while (end < prompt.Count && prompt[end] != CharModel.EndTag) end++;
        log.Enqueue(new Execution(silo, inner.Decode(prompt.Skip(lastUser + 1).Take(end - lastUser - 1).ToArray())));
        await foreach (var t in inner.GenerateAsync(prompt, sampling, cancellationToken)) yield return t;
    }

    public void Dispose() => inner.Dispose();
}
