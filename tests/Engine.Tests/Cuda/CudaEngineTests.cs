using System.Text.Json;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Engine.Tests.Runtime;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Tests.Cuda;

/// <summary>Whether this machine has a CUDA device the engine can use; tests that need one skip with the reason.</summary>
internal static class CudaGpu
{
    private static readonly Lazy<string?> Missing = new(() =>
    {
        if (!CudaDevice.TryOpen(0, out var device, out var reason)) return reason;
        device!.Dispose();
        return null;
    });

    public static void Require()
    {
        if (Missing.Value is { } reason) Assert.Skip($"no usable CUDA device: {reason}");
    }

    public static bool Available => Missing.Value is null;
}

/// <summary>A parity fixture: prompt, transformers' logits for every prompt position, its greedy continuation.</summary>
internal sealed record Fixture(string Name, string Dir, int[] Prompt, List<int> Greedy, float[] Logits, int Vocab,
    float[] LogitsBf16, List<int> GreedyBf16)
{
    public static Fixture Load(string name)
    {
        var dir = FixtureModel.Find(name) ?? throw new DirectoryNotFoundException($"tests/fixtures/models/{name} is missing");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        var root = doc.RootElement;
        var prompt = root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var greedy = root.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var shape = root.GetProperty("logits_shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var logits = ReadFloats(Path.Combine(dir, root.GetProperty("logits_file").GetString()!));
        Assert.Equal(prompt.Length * shape[1], logits.Length);
        // transformers' own bf16 run of the same model (tools/reference/make_fixtures.py --bf16-only)
        var logitsBf16 = ReadFloats(Path.Combine(dir, root.GetProperty("logits_bf16_file").GetString()!));
        Assert.Equal(logits.Length, logitsBf16.Length);
        var greedyBf16 = root.GetProperty("greedy_ids_bf16").EnumerateArray().Select(e => e.GetInt32()).ToList();
        return new Fixture(name, dir, prompt, greedy, logits, shape[1], logitsBf16, greedyBf16);
    }

    private static float[] ReadFloats(string path)
    {
        var raw = File.ReadAllBytes(path);
        var values = new float[raw.Length / 4];
        Buffer.BlockCopy(raw, 0, values, 0, raw.Length);
        return values;
    }

    public InferenceEngine Engine(Backend backend, int pageSize = 16) =>
        new(ModelConfig.Load(Path.Combine(Dir, "config.json")), SafeTensorsModel.Open(Dir), Name,
            new EngineOptions { Backend = backend, PageSize = pageSize, KvPages = 64, ContextLength = Prompt.Length + Greedy.Count + 1 });
}

/// <summary>
/// The CUDA engine (bf16) against transformers' fixtures and the CPU engine, judged as flash-attention judges its
/// kernels: against the f32 reference, a bf16 engine may be at most twice as far off as transformers itself running
/// the same model in bf16 (worst row error; argmax disagreements, plus 2% of positions for near-ties), and never
/// past 3e-2. Also chunked prefill,
/// batching, KV exhaustion. Skips without a device.
/// </summary>
[Collection("cuda-engine")]
public class CudaEngineTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const double MaxTolerance = 3e-2;

    public static TheoryData<string> Names => FixtureParityTests.Names;

    /// <summary>Largest |a − b| over the row relative to the row's largest |b|, and whether the argmaxes agree.</summary>
    private static (double RelErr, bool SameArgmax) Compare(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double maxRef = 0, maxDiff = 0;
        int am = 0, bm = 0;
        for (int i = 0; i < b.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(b[i]));
            maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            if (a[i] > a[am]) am = i;
            if (b[i] > b[bm]) bm = i;
        }
        return (maxDiff / Math.Max(maxRef, 1e-6), am == bm);
    }

    /// <summary>Worst row error and argmax disagreements of <paramref name="actual"/> against <paramref name="expected"/>.</summary>
    private static (double Worst, int WorstRow, int Disagree, int Rows) Measure(float[] actual, float[] expected, int vocab)
    {
        int rows = expected.Length / vocab, disagree = 0, worstRow = -1;
        double worst = 0;
        for (int t = 0; t < rows; t++)
        {
            var (err, same) = Compare(actual.AsSpan(t * vocab, vocab), expected.AsSpan(t * vocab, vocab));
            if (!same) disagree++;
            if (err > worst) { worst = err; worstRow = t; }
        }
        return (worst, worstRow, disagree, rows);
    }

    /// <summary>
    /// Parity with a yardstick: <paramref name="yardstick"/> is how far a same-precision naive implementation
    /// (transformers in bf16) lands from the same f32 reference.
    /// </summary>
    private static void AssertParity(float[] actual, float[] expected, int vocab, string what,
        (double Worst, int Disagree) yardstick)
    {
        var m = Measure(actual, expected, vocab);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{what}: worst relative error {m.Worst:E3} at position {m.WorstRow} (transformers bf16: {yardstick.Worst:E3}), " +
            $"argmax disagreements {m.Disagree}/{m.Rows} (transformers bf16: {yardstick.Disagree})");
        double bound = Math.Min(2 * yardstick.Worst, MaxTolerance);
        Assert.True(m.Worst <= bound, $"{what}: relative error {m.Worst:E3} at position {m.WorstRow} exceeds {bound:E3} (2x transformers bf16, at most {MaxTolerance})");
        // Argmax flips come from near-ties, which any bf16 rounding may tip: twice transformers' count, plus 2% of the
        // positions (at least one) for ties transformers happened to round the other way.
        int allowed = 2 * yardstick.Disagree + Math.Max(1, m.Rows / 50);
        Assert.True(m.Disagree <= allowed,
            $"{what}: argmax disagrees at {m.Disagree} of {m.Rows} positions (allowed {allowed}); transformers in bf16 disagrees at {yardstick.Disagree}");
    }

    /// <summary>The yardstick of a fixture: transformers' bf16 logits against its f32 logits.</summary>
    private static (double Worst, int Disagree) Yardstick(Fixture f)
    {
        var m = Measure(f.LogitsBf16, f.Logits, f.Vocab);
        return (m.Worst, m.Disagree);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Logits_match_transformers_and_the_cpu_engine(string name)
    {
        CudaGpu.Require();
        var f = Fixture.Load(name);
        using var gpu = f.Engine(Backend.Cuda);
        Assert.Equal(Backend.Cuda, gpu.Backend);
        Assert.StartsWith("CUDA", gpu.BackendDescription);
        using var cpu = f.Engine(Backend.Cpu);
        var cpuLogits = cpu.ComputeLogits(f.Prompt, f.Prompt.Length);
        var yardstick = Yardstick(f);
        foreach (int chunk in new[] { f.Prompt.Length, 16, 7 })
        {
            var logits = gpu.ComputeLogits(f.Prompt, chunk);
            AssertParity(logits, f.Logits, f.Vocab, $"{name} chunk {chunk} vs transformers", yardstick);
            AssertParity(logits, cpuLogits, f.Vocab, $"{name} chunk {chunk} vs CPU engine", yardstick);
        }
    }

    [Fact]
    public async Task Greedy_continuations_match_transformers_for_most_fixtures()
    {
        CudaGpu.Require();
        var differ = new List<string>();
        int total = 0, hfBf16Differ = 0;
        foreach (var name in Names.Select(r => (string)r.Data))
        {
            var f = Fixture.Load(name);
            var config = ModelConfig.Load(Path.Combine(f.Dir, "config.json"));
            var stops = new HashSet<int>([.. GenerationConfig.Load(f.Dir).EosTokenIds, .. config.EosTokenIds]);
            var expected = f.Greedy;
            int firstStop = expected.FindIndex(stops.Contains);
            int maxNew = expected.Count;
            if (firstStop >= 0) expected = expected.Take(firstStop).ToList();
            using var gpu = f.Engine(Backend.Cuda);
            var got = new List<int>();
            await foreach (int token in gpu.GenerateAsync(f.Prompt, SamplingParams.Greedy(maxNew), stops, Ct)) got.Add(token);
            total++;
            var hf = f.GreedyBf16.Count > expected.Count ? f.GreedyBf16.Take(expected.Count).ToList() : f.GreedyBf16;
            if (!hf.SequenceEqual(expected)) hfBf16Differ++;
            if (!got.SequenceEqual(expected))
            {
                int at = got.Zip(expected).TakeWhile(p => p.First == p.Second).Count();
                differ.Add($"{name} (first difference at new token {at} of {expected.Count})");
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"greedy identical for {total - differ.Count}/{total} (transformers bf16: {total - hfBf16Differ}/{total}); differ: {string.Join(", ", differ)}");
        // A bf16 run flips near-ties of these tiny random models; transformers in bf16 keeps the f32 continuation
        // for only some fixtures. The engine must keep it at least as often, less one.
        Assert.True(differ.Count <= hfBf16Differ + 1,
            $"greedy continuations differ from transformers (f32) for {differ.Count} of {total}, transformers in bf16 for {hfBf16Differ}: {string.Join(", ", differ)}");
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Chunked_prefill_and_page_size_agree(string family)
    {
        CudaGpu.Require();
        var config = TestModels.ByName(family);
        var tokens = TestModels.Tokens(45, seed: 3);
        using var cpu = EngineParityTests.NewEngine(config);
        var reference = cpu.ComputeLogits(tokens, tokens.Length);
        // Yardstick: the one-pass bf16 prefill with page size 16 against the f32 CPU engine. Other chunkings and page
        // sizes compute the same function with other roundings, so they may be off by as much again.
        (double Worst, int Disagree) yardstick;
        using (var onePass = new InferenceEngine(config, TestModels.Weights(config), "t", new EngineOptions { Backend = Backend.Cuda, PageSize = 16, KvPages = 64 }))
        {
            var m = Measure(onePass.ComputeLogits(tokens, tokens.Length), reference, config.VocabSize);
            Assert.True(m.Worst <= MaxTolerance, $"{family}: one-pass bf16 prefill is {m.Worst:E3} off the f32 engine");
            yardstick = (m.Worst, m.Disagree);
        }
        foreach (int pageSize in new[] { 4, 16 })
        {
            using var gpu = new InferenceEngine(config, TestModels.Weights(config), "t", new EngineOptions { Backend = Backend.Cuda, PageSize = pageSize, KvPages = 64 });
            foreach (int chunk in new[] { tokens.Length, 1, 5, 16 })
                AssertParity(gpu.ComputeLogits(tokens, chunk), reference, config.VocabSize, $"{family} page {pageSize} chunk {chunk}", yardstick);
        }
    }

    [Fact]
    public async Task Batched_sequences_generate_as_they_do_alone()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        var prompts = Enumerable.Range(0, 6).Select(i => TestModels.Tokens(5 + 7 * i, 60 + i)).ToArray();
        var options = new EngineOptions { Backend = Backend.Cuda, PageSize = 4, KvPages = 256, PrefillChunkTokens = 8, MaxBatchTokens = 24 };
        var alone = new List<List<int>>();
        using (var engine = new InferenceEngine(config, TestModels.Weights(config), "t", options))
            foreach (var p in prompts) alone.Add(await EngineParityTests.Collect(engine.GenerateAsync(p, SamplingParams.Greedy(12), new HashSet<int>(), Ct)));
        using var batched = new InferenceEngine(config, TestModels.Weights(config), "t", options);
        var tasks = prompts.Select(p => EngineParityTests.Collect(batched.GenerateAsync(p, SamplingParams.Greedy(12), new HashSet<int>(), Ct))).ToArray();
        await Task.WhenAll(tasks);
        int same = 0, all = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var got = await tasks[i];
            Assert.Equal(12, got.Count);
            Assert.Equal(alone[i][0], got[0]); // the prefill's token: same computation whatever the neighbours
            same += got.Zip(alone[i]).Count(p => p.First == p.Second);
            all += got.Count;
        }
        // bf16 GEMMs of other row counts may round differently and flip a near-tie; most tokens must still agree.
        Assert.True(same >= 0.9 * all, $"batched greedy tokens agree with solo runs at {same} of {all}");
        Assert.True(batched.Metrics.Steps < prompts.Length * 12, "sequences were never batched together");
    }

    [Fact]
    public async Task KV_exhaustion_queues_and_every_request_completes()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "t",
            new EngineOptions { Backend = Backend.Cuda, PageSize = 4, KvPages = 6, MaxSequences = 4, PrefillChunkTokens = 4 });
        var prompts = Enumerable.Range(0, 5).Select(i => TestModels.Tokens(8, 40 + i)).ToArray();
        var tasks = prompts.Select(p => EngineParityTests.Collect(engine.GenerateAsync(p, SamplingParams.Greedy(8), new HashSet<int>(), Ct))).ToArray();
        await Task.WhenAll(tasks);
        foreach (var t in tasks) Assert.Equal(8, (await t).Count);
        Assert.True(engine.Metrics.Preemptions > 0, "the tiny pool should have forced a preemption");
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public async Task Decode_graphs_replay_what_plain_launches_compute(string family)
    {
        CudaGpu.Require();
        var config = TestModels.ByName(family);
        // the last prompt decodes across the 64-token context bucket: a second graph is captured mid-generation
        var prompts = Enumerable.Range(0, 3).Select(i => TestModels.Tokens(6 + 5 * i, 80 + i)).Append(TestModels.Tokens(58, 83)).ToArray();
        async Task<List<int>[]> Run(bool graphs)
        {
            using var engine = new InferenceEngine(config, TestModels.Weights(config), "t",
                new EngineOptions { Backend = Backend.Cuda, PageSize = 4, KvPages = 128, CudaGraphs = graphs });
            var tasks = prompts.Select(p => EngineParityTests.Collect(engine.GenerateAsync(p, SamplingParams.Greedy(10), new HashSet<int>(), Ct))).ToArray();
            return await Task.WhenAll(tasks);
        }
        var plain = await Run(false);
        var graphs = await Run(true);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(plain[i], graphs[i]);
    }

    [Fact]
    public void Device_argmax_equals_the_argmax_of_the_copied_logits()
    {
        CudaGpu.Require();
        var config = TestModels.Qwen2;
        Assert.True(Actors.Engine.Cuda.CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
        using var runner = Actors.Engine.Cuda.CudaModelRunner.Create(device!, config, TestModels.Weights(config),
            new EngineOptions { PageSize = 4, KvPages = 32 }, 64);
        var a = TestModels.Tokens(13, 1);
        var b = TestModels.Tokens(9, 2);
        ForwardChunk[] Batch() => [new(a, 0, Enumerable.Range(0, 4).ToArray(), 13, LogitsRows.All), new(b, 0, Enumerable.Range(4, 3).ToArray(), 9, LogitsRows.Last)];
        var logits = runner.Forward(Batch());
        var argmax = runner.ForwardArgmax(Batch());
        int v = config.VocabSize;
        Assert.Equal(14, argmax.Length);
        for (int r = 0; r < argmax.Length; r++) Assert.Equal(Sampler.Argmax(logits.AsSpan(r * v, v)), argmax[r]);
    }

    [Fact]
    public void Runner_profile_times_every_stage_of_a_step_and_leaves_the_result_alone()
    {
        CudaGpu.Require();
        var config = TestModels.Qwen2;
        Assert.True(Actors.Engine.Cuda.CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
        using var runner = Actors.Engine.Cuda.CudaModelRunner.Create(device!, config, TestModels.Weights(config),
            new EngineOptions { PageSize = 4, KvPages = 32, CudaGraphs = false }, 64);
        var a = TestModels.Tokens(13, 3);
        ForwardChunk[] Batch() => [new(a, 0, Enumerable.Range(0, 4).ToArray(), 13, LogitsRows.Last)];
        var plain = runner.ForwardArgmax(Batch());
        using var profile = new StepProfile(runner.Device);
        runner.Profile = profile;
        var profiled = runner.ForwardArgmax(Batch());
        runner.Profile = null;
        Assert.Equal(plain, profiled);
        var totals = profile.Totals().ToDictionary(t => t.Label);
        foreach (var stage in new[] { "qkv projection", "qkv bias/norm, rope, kv write", "prefill attention", "o projection", "down projection" })
            Assert.Equal(config.NumLayers, totals[stage].Count);
        // the last layer runs past its KV write on the logits row alone (TrimLastLayer), where the post-attention norm
        // is folded into the gate/up product
        Assert.Equal(2, runner.TrimmedSteps);
        Assert.Equal(2 * config.NumLayers - 1, totals["residual + norm"].Count);
        Assert.Equal(1, totals["logits rows"].Count);
        Assert.Equal(1, totals["logits"].Count);
        Assert.All(totals.Values, t => Assert.True(t.Ms >= 0, $"{t.Label}: {t.Ms} ms"));
    }

    [Fact]
    public void Cuda_engine_defaults_to_64_token_pages()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "t",
            new EngineOptions { Backend = Backend.Cuda, MaxSequences = 2, ContextLength = 128 });
        Assert.Equal(EngineOptions.DefaultCudaPageSize, engine.PageSize);
        Assert.Equal(2 * 128 / EngineOptions.DefaultCudaPageSize, engine.TotalPages);
    }

    [Fact]
    public void Pool_is_sized_from_free_device_memory()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "t",
            new EngineOptions { Backend = Backend.Cuda, PageSize = 16, MaxSequences = 8, ContextLength = 128 });
        // Capped at MaxSequences full contexts: 8 × 128 / 16 pages.
        Assert.Equal(64, engine.TotalPages);
    }
}

/// <summary>Backend selection; runs everywhere (no skip): the answer depends on whether a device is present.</summary>
public class BackendSelectionTests
{
    [Fact]
    public void Auto_takes_cuda_when_a_device_opens_and_the_cpu_with_the_reason_otherwise()
    {
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "t", new EngineOptions { PageSize = 4, KvPages = 16 });
        if (CudaGpu.Available)
        {
            Assert.Equal(Backend.Cuda, engine.Backend);
            Assert.StartsWith("CUDA", engine.BackendDescription);
        }
        else
        {
            Assert.Equal(Backend.Cpu, engine.Backend);
            Assert.Contains("CUDA not used:", engine.BackendDescription);
        }
    }

    [Fact]
    public async Task Cuda_engine_reports_its_devices_energy_and_power()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        string model = "energy/" + Guid.NewGuid().ToString("N");
        var seen = new List<(string Name, double Value, string? Device)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == EngineMeters.MeterName && i.Name.StartsWith("actors.engine.device.", StringComparison.Ordinal)) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) =>
        {
            string? m = null, d = null;
            foreach (var t in tags) { if (t.Key == "model") m = t.Value as string; if (t.Key == "device") d = t.Value as string; }
            if (m == model) lock (seen) seen.Add((i.Name, v, d));
        });
        listener.Start();
        using var engine = new InferenceEngine(config, TestModels.Weights(config), model, new EngineOptions { Backend = Backend.Cuda, PageSize = 16, KvPages = 64 });
        Assert.Contains("power sensors: NVML on", engine.BackendDescription);
        listener.RecordObservableInstruments();
        await EngineParityTests.Collect(engine.GenerateAsync(TestModels.Tokens(40, 9), SamplingParams.Greedy(20), new HashSet<int>(), TestContext.Current.CancellationToken));
        Thread.Sleep(300); // past a step of the energy counter (about 100 ms on an H200)
        listener.RecordObservableInstruments();
        lock (seen)
        {
            var energy = seen.Where(x => x.Name == EngineMeters.DeviceEnergy).ToList();
            var power = seen.Where(x => x.Name == EngineMeters.DevicePowerDraw).ToList();
            Assert.Equal(2, energy.Count);
            Assert.True(energy[1].Value > energy[0].Value && energy[0].Value > 0, $"energy {energy[0].Value} J, then {energy[1].Value} J");
            Assert.All(power, x => Assert.InRange(x.Value, 1, 2000));
            Assert.All(seen, x => Assert.Matches(@"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$", x.Device ?? ""));
        }
    }

    [Fact]
    public void Cuda_without_a_device_is_a_clear_error()
    {
        if (CudaGpu.Available) Assert.Skip("a CUDA device is present");
        var config = TestModels.Llama;
        var e = Assert.Throws<InvalidOperationException>(() =>
            new InferenceEngine(config, TestModels.Weights(config), "t", new EngineOptions { Backend = Backend.Cuda, PageSize = 4, KvPages = 16 }));
        Assert.Contains("no usable CUDA device", e.Message);
    }

    [Fact]
    public void Cpu_runner_argmax_equals_the_argmax_of_its_logits()
    {
        var config = TestModels.Llama;
        using var runner = new CpuModelRunner(config, TestModels.Weights(config), 4, _ => 16);
        var tokens = TestModels.Tokens(10, 3);
        ForwardChunk[] batch = [new(tokens, 0, Enumerable.Range(0, 3).ToArray(), 10, LogitsRows.All)];
        var logits = runner.Forward(batch);
        var argmax = runner.ForwardArgmax(batch);
        Assert.Equal(10, argmax.Length);
        for (int r = 0; r < 10; r++) Assert.Equal(Sampler.Argmax(logits.AsSpan(r * config.VocabSize, config.VocabSize)), argmax[r]);
    }

    [Fact]
    public void Cpu_is_used_when_asked()
    {
        var config = TestModels.Llama;
        using var engine = new InferenceEngine(config, TestModels.Weights(config), "t", new EngineOptions { Backend = Backend.Cpu, PageSize = 4, KvPages = 16 });
        Assert.Equal(Backend.Cpu, engine.Backend);
        Assert.StartsWith("CPU", engine.BackendDescription);
    }
}

[CollectionDefinition("cuda-engine", DisableParallelization = true)]
public sealed class CudaEngineCollection;
