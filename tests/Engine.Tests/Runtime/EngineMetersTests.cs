using System.Diagnostics.Metrics;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Runtime;

/// <summary>The Actors.Engine meter, read through a MeterListener, against the engine's own counters.</summary>
public class EngineMetersTests
{
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Everything measured for one model id (engines of other tests run in parallel and are filtered out).</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly string _model;
        public readonly List<(string Name, double Value, Dictionary<string, string> Tags)> Measurements = [];

        public Recorder(string model)
        {
            _model = model;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EngineMeters.MeterName) listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
            _listener.Start();
        }

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var d = new Dictionary<string, string>();
            foreach (var t in tags) d[t.Key] = t.Value?.ToString() ?? "";
            if (d.GetValueOrDefault("model") != _model) return;
            lock (Measurements) Measurements.Add((instrument.Name, value, d));
        }

        public void Observe() => _listener.RecordObservableInstruments();

        public double Sum(string name, string? tier = null)
        {
            lock (Measurements)
                return Measurements.Where(m => m.Name == name && (tier is null || m.Tags.GetValueOrDefault("tier") == tier)).Sum(m => m.Value);
        }

        public List<double> Values(string name)
        {
            lock (Measurements) return Measurements.Where(m => m.Name == name).Select(m => m.Value).ToList();
        }

        public double Gauge(string tier, string state)
        {
            lock (Measurements)
                return Measurements.Last(m => m.Name == EngineMeters.KvPages && m.Tags["tier"] == tier && m.Tags["state"] == state).Value;
        }

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public void Device_energy_and_power_come_from_the_sensors_and_a_failing_sensor_reports_nothing()
    {
        string model = "meters/" + Guid.NewGuid().ToString("N");
        using var recorder = new Recorder(model);
        double joules = 1000, watts = 350;
        bool broken = false;
        double Energy() => broken ? throw new InvalidOperationException("driver gone") : joules;
        using (var meters = new EngineMeters(model, power: new EngineMeters.DevicePower("0000:19:00.0", Energy, () => watts)))
        {
            recorder.Observe();
            joules = 1250.5;
            watts = 690;
            recorder.Observe();
            Assert.Equal([1000, 1250.5], recorder.Values(EngineMeters.DeviceEnergy));
            Assert.Equal([350, 690], recorder.Values(EngineMeters.DevicePowerDraw));
            lock (recorder.Measurements)
                Assert.All(recorder.Measurements.Where(m => m.Name.StartsWith("actors.engine.device.", StringComparison.Ordinal)),
                    m => Assert.Equal("0000:19:00.0", m.Tags["device"]));

            broken = true;
            recorder.Observe(); // the energy sensor throws: no energy measurement, the power one still comes
            Assert.Equal(2, recorder.Values(EngineMeters.DeviceEnergy).Count);
            Assert.Equal([350, 690, 690], recorder.Values(EngineMeters.DevicePowerDraw));
        }

        // no sensors (the CPU backend): no device instruments at all
        string cpu = "meters/" + Guid.NewGuid().ToString("N");
        using var cpuRecorder = new Recorder(cpu);
        using (new EngineMeters(cpu))
        {
            cpuRecorder.Observe();
            Assert.Empty(cpuRecorder.Values(EngineMeters.DeviceEnergy));
            Assert.Empty(cpuRecorder.Values(EngineMeters.DevicePowerDraw));
            Assert.NotEmpty(cpuRecorder.Values(EngineMeters.KvPages));
        }
    }

    [Fact]
    public async Task Counters_histograms_and_page_gauges_match_what_the_engine_did()
    {
        var config = TestModels.Llama;
        string model = "meters/" + Guid.NewGuid().ToString("N");
        using var recorder = new Recorder(model);
        long pageBytes = 2L * 2 * 4 * 2 * 12 * sizeof(float);
        using var engine = new InferenceEngine(config, TestModels.Weights(config), model,
            new EngineOptions { Backend = Backend.Cpu, PageSize = 4, KvPages = 12, HostKvBytes = 64 * pageBytes, ContextLength = 128, MaxSequences = 2 });

        var session = TestModels.Tokens(18, 1);
        var reply = await EngineParityTests.Collect(engine.GenerateAsync(session, SamplingParams.Greedy(6), NoStop, Ct));
        int[] history = [.. session, .. reply];
        for (int i = 0; i < 2; i++) // long prompts, one at a time: they push the session's pages to host
            await EngineParityTests.Collect(engine.GenerateAsync(TestModels.Tokens(40, 50 + i), SamplingParams.Greedy(2), NoStop, Ct));
        // short ones together: steps of two sequences (10 tokens each, so that a loaded machine still overlaps them; with
        // 4 one could finish before the next was admitted)
        var others = Enumerable.Range(0, 3).Select(i => EngineParityTests.Collect(engine.GenerateAsync(TestModels.Tokens(6, 70 + i), SamplingParams.Greedy(10), NoStop, Ct))).ToArray();
        await Task.WhenAll(others);
        KvAdmission admission = default;
        var resumed = await EngineParityTests.Collect(engine.GenerateAsync([.. history, 7, 8, 9], SamplingParams.Greedy(5), NoStop, a => admission = a, Ct));
        await WaitIdle(engine);

        var m = engine.Metrics;
        var moves = engine.PageMoves;
        Assert.True(admission.HostHitTokens > 0);
        Assert.Equal(m.GeneratedTokens, recorder.Sum(EngineMeters.GeneratedTokens));
        Assert.Equal(6 + 2 * 2 + 3 * 10 + 5, m.GeneratedTokens);
        Assert.Equal(m.Preemptions, recorder.Sum(EngineMeters.Preemptions));
        Assert.Equal(moves.Spilled, recorder.Sum(EngineMeters.PagesSpilled));
        Assert.Equal(moves.SwappedIn, recorder.Sum(EngineMeters.PagesSwappedIn));
        Assert.Equal(admission.HostHitTokens / 4, moves.SwappedIn);
        Assert.Equal(moves.HostEvictions, recorder.Sum(EngineMeters.HostEvictions));
        Assert.Equal(admission.HostHitTokens, recorder.Sum(EngineMeters.PrefixHitTokens, "host"));
        Assert.Equal(m.PrefixHitTokens, recorder.Sum(EngineMeters.PrefixHitTokens, "device"));

        var batches = recorder.Values(EngineMeters.BatchSize);
        Assert.Equal(m.Steps, batches.Count);
        Assert.All(batches, b => Assert.InRange(b, 1, 2)); // MaxSequences = 2
        Assert.Contains(2.0, batches); // the three requests overlapped
        var steps = recorder.Values(EngineMeters.StepDuration);
        Assert.Equal(m.Steps, steps.Count);
        Assert.All(steps, s => Assert.True(s > 0));

        // One first token per request: the session and the short ones recomputed, the resumed one came from host.
        lock (recorder.Measurements)
        {
            var ttft = recorder.Measurements.Where(x => x.Name == EngineMeters.TimeToFirstToken).ToList();
            Assert.Equal(7, ttft.Count);
            Assert.Single(ttft, x => x.Tags["tier"] == "host");
            Assert.All(ttft, x => Assert.True(x.Value > 0));
        }

        recorder.Observe();
        var stats = engine.TierStats;
        Assert.Equal(stats.DevicePagesTotal - stats.DevicePagesFree, recorder.Gauge("device", "used"));
        Assert.Equal(stats.DevicePagesFree, recorder.Gauge("device", "free"));
        Assert.Equal(12, recorder.Gauge("device", "used") + recorder.Gauge("device", "free"));
        Assert.Equal(stats.HostPagesUsed, recorder.Gauge("host", "used"));
        Assert.True(stats.HostPagesUsed > 0);
        Assert.Equal(64, recorder.Gauge("host", "used") + recorder.Gauge("host", "free"));
    }

    private static async Task WaitIdle(InferenceEngine engine)
    {
        for (int i = 0; i < 500 && (engine.Metrics.RunningSequences > 0 || engine.Metrics.FreePages != engine.TotalPages); i++)
            await Task.Delay(10, Ct);
    }

    [Fact]
    public async Task TextGenerator_exposes_the_tiers_and_reports_admissions_through_ITextGenerator()
    {
        var dir = FixtureModel.Find("qwen2") ?? throw new DirectoryNotFoundException("tests/fixtures/models/qwen2 is missing");
        using var generator = TextGenerator.Load(dir, new EngineOptions { Backend = Backend.Cpu, PageSize = 4, KvPages = 64, ContextLength = 64 });
        ITextGenerator g = generator;
        var tiers = g.KvTiers;
        Assert.NotNull(tiers);
        Assert.Equal(g.ModelId, tiers.PageFormat.ModelId);
        Assert.Equal("f32", tiers.PageFormat.DType);
        var prompt = g.Encode("The cache keeps the pages of every layer together.");
        Assert.True(prompt.Count > 8);
        var admissions = new List<KvAdmission>();
        var first = new List<int>();
        await foreach (var t in g.GenerateAsync(prompt, SamplingParams.Greedy(6), admissions.Add, Ct)) first.Add(t);
        var second = new List<int>();
        await foreach (var t in g.GenerateAsync(prompt, SamplingParams.Greedy(6), admissions.Add, Ct)) second.Add(t);
        var plain = new List<int>();
        await foreach (var t in generator.Engine.GenerateAsync(prompt, SamplingParams.Greedy(6), generator.StopTokenIds, Ct)) plain.Add(t);
        Assert.Equal(plain, first);
        Assert.Equal(first, second);
        Assert.Equal(2, admissions.Count);
        Assert.Equal(new KvAdmission(prompt.Count, 0, 0), admissions[0]);
        Assert.Equal((prompt.Count - 1) / 4 * 4, admissions[1].DeviceHitTokens);
        Assert.Equal(prompt.Count / 4 * 4, tiers.Probe(prompt).DeviceTokens); // every full page of the prompt is computed now
    }
}
