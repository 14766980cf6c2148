using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Grains;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Actors.Silo.Tests;

/// <summary>The real silo host (ActorsSilo.AddActorsSilo, as Program builds it) with the real CPU engine.</summary>
public sealed class GracefulShutdownTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-silo-shutdown-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static string Model()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
                return Path.Combine(d.FullName, "tests", "fixtures", "models", "qwen2");
        throw new DirectoryNotFoundException("repository root (Actors.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public async Task A_graceful_stop_stores_every_sessions_KV_before_the_engine_is_disposed()
    {
        var events = new ConcurrentQueue<string>();
        var options = new ActorsSiloOptions { DataDirectory = Path.Combine(_root, "data"), SiloPort = FreePort(), GatewayPort = FreePort() };
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.AddActorsSilo(options, dir => new Recording(TextGenerator.Load(dir, new EngineOptions { Backend = Backend.Cpu, KvPages = 64, ContextLength = 512 }), events));

        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        var grains = host.Services.GetRequiredService<IGrainFactory>();
        Assert.IsType<EngineDeviceStats>(host.Services.GetRequiredService<IDeviceStatsSource>());
        var ids = new[] { "s-a", "s-b" };
        var tokenCounts = new Dictionary<string, int>();
        foreach (var id in ids)
        {
            var s = grains.GetGrain<IDocumentGrain>(id);
            await s.Open(new OpenSession(Model()));
            await foreach (var _ in s.Ask(new AskRequest($"Session {id}: the keeper lit the lamp at sunset and trimmed the wick until sunrise. Why?", 6), TestContext.Current.CancellationToken)) { }
            tokenCounts[id] = (await s.GetInfo()).TokenCount;
        }
        // The device now reports the engine's pool and the sessions.
        var report = host.Services.GetRequiredService<IDeviceStatsSource>().Capture(10);
        Assert.Equal(64, report.Devices[0].TotalPages);
        Assert.Equal(ids.Order(), report.Sessions.Order());

        await host.StopAsync(TestContext.Current.CancellationToken);
        Assert.DoesNotContain("dispose", events); // the engine outlives the silo's stop
        host.Dispose();
        Assert.Equal("dispose", events.Last());
        Assert.Equal(ids.Length, events.Count(e => e == "export"));

        // Each session's snapshot is on disk and holds its full pages.
        var store = new KvSnapshotStore(new LocalDiskBlobStore(options.BlobStorageDirectory));
        using var g = TextGenerator.Load(Model(), new EngineOptions { Backend = Backend.Cpu, KvPages = 64, ContextLength = 512 });
        var expect = Actors.Grains.SessionKvSnapshots.ExpectationOf(g.KvTiers.PageFormat);
        foreach (var id in ids)
        {
            var (result, pages) = await store.TryLoadAllAsync(id, expect, TestContext.Current.CancellationToken);
            Assert.True(result.Loaded, result.Reason);
            Assert.Equal(Actors.Grains.SessionKvSnapshots.CachedPagesTokens(tokenCounts[id], 16), result.Header!.TokenCount);
            Assert.Equal((tokenCounts[id] - 1) / 16, pages.Count);
        }
    }

    /// <summary>Forwards to the engine and records when its KV is exported and when it is disposed.</summary>
    private sealed class Recording(TextGenerator inner, ConcurrentQueue<string> events) : ITextGenerator, IKvTiers
    {
        public string ModelId => inner.ModelId;
        public int ContextLength => inner.ContextLength;
        public IReadOnlyList<int> Encode(string text) => inner.Encode(text);
        public string Decode(IReadOnlyList<int> tokens) => inner.Decode(tokens);
        public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) => inner.EncodeChat(messages, addGenerationPrompt);
        public IStreamDecoder CreateStreamDecoder() => inner.CreateStreamDecoder();
        public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default) =>
            inner.GenerateAsync(prompt, sampling, cancellationToken);
        public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, Action<KvAdmission>? onAdmitted, CancellationToken cancellationToken = default) =>
            inner.GenerateAsync(prompt, sampling, onAdmitted, cancellationToken);
        public IKvTiers KvTiers => this;

        public KvPageFormat PageFormat => inner.KvTiers.PageFormat;
        public KvTierStats TierStats => inner.KvTiers.TierStats;
        public KvResidency Probe(IReadOnlyList<int> tokens) => inner.KvTiers.Probe(tokens);
        public Task<KvResidency> ProbeAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default) =>
            inner.KvTiers.ProbeAsync(tokens, cancellationToken);
        public Task<KvExport?> ExportAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
        {
            events.Enqueue("export");
            return inner.KvTiers.ExportAsync(tokens, cancellationToken);
        }
        public Task<int> ImportAsync(KvExport export, CancellationToken cancellationToken = default) => inner.KvTiers.ImportAsync(export, cancellationToken);
        public Task<int> OffloadAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default) => inner.KvTiers.OffloadAsync(tokens, cancellationToken);

        public void Dispose()
        {
            events.Enqueue("dispose");
            inner.Dispose();
        }
    }
}
