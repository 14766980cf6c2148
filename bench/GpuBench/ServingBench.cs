using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Grains;
using Actors.Grains.Storage;
using Actors.Kernels.Cuda;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

/// <summary>
/// Serving-level measurements on the GPU (issues 4 and 5), on the Llama-3-8B-shaped model with random bf16 weights:
/// --tiers: time to first token of a new turn on a 32K-token session whose KV is on the device, in the host pool,
///   in a blob snapshot on local disk, or nowhere (recomputed), through the engine's tier API as the session grain
///   drives it (blob: read and check the snapshot, import to host, swap in, prefill the new turn).
/// --grains: 32 sessions decoding together at 8K context, through the engine alone and through DocumentGrains on an
///   in-process Orleans silo hosting the same engine; tokens/s of each and the ratio.
/// --mapreduce: a 128K-token document summarized by a SummarizationJobGrain (map-reduce over an 8K context) on the same
///   silo, its wall time beside the sum of its steps' prefill and decode run one at a time on the engine alone, and the
///   engine's busy fraction (time inside engine steps / wall time) during the job.
/// Usage: actors-gpubench --serving [--tiers] [--grains] [--mapreduce] [--quick] [--out result.json] [--device 0]
/// </summary>
internal static class ServingBench
{
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();

    public static async Task<int> RunAsync(string[] args)
    {
        bool quick = args.Contains("--quick");
        bool tiers = args.Contains("--tiers"), grains = args.Contains("--grains"), mapReduce = args.Contains("--mapreduce");
        if (!tiers && !grains && !mapReduce) tiers = grains = mapReduce = true;
        string? outPath = Arg(args, "--out");
        int ordinal = int.Parse(Arg(args, "--device") ?? "0", CultureInfo.InvariantCulture);
        var results = new Dictionary<string, object>();
        var errors = new Dictionary<string, string>();
        results["errors"] = errors;

        if (!CudaDevice.TryOpen(ordinal, out var opened, out var reason))
        {
            Console.Error.WriteLine($"actors-gpubench --serving: no usable CUDA device: {reason}");
            return 2;
        }
        using var dev = opened!;
        results["device"] = dev.ToString();
        results["model"] = "Llama-3-8B shape, random bf16 weights, RoPE linear x4";
        var config = LlamaShape(32768 + 512);
        var compiler = new KernelCompiler(dev);
        var ek = new EngineKernels(compiler);
        using var weights = CudaWeights.Random(dev, config, ek, seed: 7);

        if (tiers)
        {
            try { await TiersAsync(dev, config, weights, compiler, ek, quick ? 4096 : 32768, results); }
            catch (Exception e) { errors["tiers"] = $"{e.GetType().Name}: {e.Message}"; Console.WriteLine($"tiers: FAILED {e}"); }
        }
        if (grains)
        {
            try { await GrainsAsync(dev, config, weights, compiler, ek, quick ? 2048 : 8192, quick ? 4 : 32, results); }
            catch (Exception e) { errors["grains"] = $"{e.GetType().Name}: {e.Message}"; Console.WriteLine($"grains: FAILED {e}"); }
        }

        if (mapReduce)
        {
            try { await MapReduceAsync(dev, weights, compiler, ek, quick ? 16384 : 131072, results); }
            catch (Exception e) { errors["mapreduce"] = $"{e.GetType().Name}: {e.Message}"; Console.WriteLine($"mapreduce: FAILED {e}"); }
        }

        Console.WriteLine();
        foreach (var (k, v) in results.Where(r => r.Value is double))
            Console.WriteLine($"{k,-52} {(double)v,12:F2}");
        if (outPath != null)
            File.WriteAllText(outPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        return errors.Count == 0 ? 0 : 1;
    }

    internal static ModelConfig LlamaShape(int maxPositions) => new()
    {
        ModelType = "llama", Family = ModelFamily.Llama, HiddenSize = 4096, IntermediateSize = 14336, NumLayers = 32,
        NumHeads = 32, NumKvHeads = 8, HeadDim = 128, VocabSize = 128256, RmsNormEps = 1e-5f, RopeTheta = 500000,
        MaxPositionEmbeddings = maxPositions, RopeScaling = new RopeScaling("linear", 4.0), Source = "Llama-3-8B shape",
    };

    /// <summary>An engine over the random weights (the weights stay the caller's).</summary>
    internal static InferenceEngine Engine(CudaDevice dev, CudaWeights weights, KernelCompiler compiler, EngineKernels ek, EngineOptions options) =>
        InferenceEngine.FromRunner(CudaModelRunner.Create(dev, weights, options, options.ContextLength!.Value, compiler, ek), "bench/llama-3-8b-shape-random", options);

    /// <summary>Random printable ASCII: one token per byte through <see cref="ByteTextGenerator"/>.</summary>
    internal static string RandomText(Random rng, int bytes)
    {
        var sb = new StringBuilder(bytes);
        for (int i = 0; i < bytes; i++) sb.Append((char)rng.Next(32, 127));
        return sb.ToString();
    }

    private static async Task<(double Ms, KvAdmission Admission, int Token)> FirstTokenAsync(InferenceEngine engine, IReadOnlyList<int> prompt)
    {
        KvAdmission admission = default;
        var sw = Stopwatch.StartNew();
        await foreach (var token in engine.GenerateAsync(prompt, SamplingParams.Greedy(1), NoStop, a => admission = a))
            return (sw.Elapsed.TotalMilliseconds, admission, token);
        throw new InvalidOperationException("the engine produced no token");
    }

    private static async Task TiersAsync(CudaDevice dev, ModelConfig config, CudaWeights weights, KernelCompiler compiler, EngineKernels ek, int context, Dictionary<string, object> results)
    {
        var options = new EngineOptions
        {
            PageSize = EngineOptions.DefaultCudaPageSize, MaxSequences = 4, ContextLength = context + 512, PrefillChunkTokens = 8192, MaxBatchTokens = 8192,
            HostKvBytes = 12L << 30,
        };
        var runner = CudaModelRunner.Create(dev, weights, options, options.ContextLength!.Value, compiler, ek);
        using var engine = InferenceEngine.FromRunner(runner, "bench/llama-3-8b-shape-random", options);
        var gen = new ByteTextGenerator(engine, options.ContextLength!.Value);
        Console.WriteLine($"tiers: {engine.BackendDescription}");
        var rng = new Random(11);
        var store = Path.Combine(Path.GetTempPath(), "actors-bench-blobs-" + Guid.NewGuid().ToString("N"));
        var sessions = new SessionKvSnapshots(new KvSnapshotStore(new LocalDiskBlobStore(store)), new GrainMetrics(null),
            Microsoft.Extensions.Options.Options.Create(new SessionKvOptions { SnapshotSaveTimeout = TimeSpan.FromMinutes(5), SnapshotLoadTimeout = TimeSpan.FromMinutes(5) }),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<SessionKvSnapshots>.Instance);
        try
        {
            // Turn 1 of a session: a document of `context` tokens; turn 2: a question about it.
            (IReadOnlyList<int> Turn1, IReadOnlyList<int> Turn2) Session()
            {
                var doc = RandomText(rng, context - 64);
                var turn1 = gen.EncodeChat([new ChatMessage("user", doc)], addGenerationPrompt: true);
                var turn2 = gen.EncodeChat([new ChatMessage("user", doc), new ChatMessage("assistant", "ok"), new ChatMessage("user", "And then?")], addGenerationPrompt: true);
                return (turn1, turn2);
            }
            // Turn 1 answered: its KV is computed and cached on the device.
            Task Warm(IReadOnlyList<int> turn1) => FirstTokenAsync(engine, turn1);
            void Record(string tier, double ms, KvAdmission a)
            {
                results[$"ttft_{tier}_{context}_ms"] = ms;
                results[$"ttft_{tier}_{context}_device_hit_tokens"] = (double)a.DeviceHitTokens;
                results[$"ttft_{tier}_{context}_host_hit_tokens"] = (double)a.HostHitTokens;
                Console.WriteLine($"time to first token, KV {tier}: {ms:F1} ms (device hit {a.DeviceHitTokens}, host hit {a.HostHitTokens}, computed {a.ComputedTokens} of {a.PromptTokens})");
            }

            // Warm-up at a small size: kernels compiled, cuBLASLt plans made, pinned buffers touched.
            await FirstTokenAsync(engine, gen.EncodeChat([new ChatMessage("user", RandomText(rng, 2048))], true));

            {
                var (_, turn2) = Session();
                var (ms, a, _) = await FirstTokenAsync(engine, turn2);
                Record("recompute", ms, a);
            }
            {
                var (turn1, turn2) = Session();
                await Warm(turn1);
                var (ms, a, _) = await FirstTokenAsync(engine, turn2);
                Record("device", ms, a);
            }
            // The device hit again on two more sessions, with the engine's steps (schedule, page moves, forward,
            // sampling: actors.engine.step.duration) recorded beside it: where a first token's time goes besides them.
            for (int rep = 1; rep <= 2; rep++)
            {
                var (turn1, turn2) = Session();
                await Warm(turn1);
                var steps = new List<double>();
                using var listener = new System.Diagnostics.Metrics.MeterListener();
                listener.InstrumentPublished = (inst, l) => { if (inst.Name == EngineMeters.StepDuration) l.EnableMeasurementEvents(inst); };
                listener.SetMeasurementEventCallback<double>((_, v, _, _) => { lock (steps) steps.Add(v); });
                listener.Start();
                using var profile = rep == 2 ? new StepProfile(dev) : null; // the last one: GPU time per stage too
                runner.Profile = profile;
                var (ms, a, _) = await FirstTokenAsync(engine, turn2);
                runner.Profile = null;
                listener.Dispose();
                if (profile is not null)
                    Console.WriteLine("  its step's GPU time: " + string.Join(", ", profile.Totals().Select(t => $"{t.Label} {t.Ms:F2} ms")));
                results[$"ttft_device_{context}_repeat{rep}_ms"] = ms;
                results[$"ttft_device_{context}_repeat{rep}_steps_ms"] = steps.Sum();
                Console.WriteLine($"time to first token, KV device (session {rep + 1}): {ms:F1} ms, {steps.Count} engine steps of {string.Join(" + ", steps.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} ms (computed {a.ComputedTokens} of {a.PromptTokens})");
            }
            // Turns of new lengths on 4K-token sessions, each length on two sessions: what a turn pays the first time its
            // row count is seen, then what it pays again. Before them, one bf16 product per decoder shape at row counts
            // the engine has not run, timed from the host with a sync (plan + first launch, then a second launch).
            {
                using var probe = new CublasLtMatmul(dev);
                using var stream = dev.CreateStream();
                int hid = config.HiddenSize, inter = config.IntermediateSize, qkv = (config.NumHeads + 2 * config.NumKvHeads) * config.HeadDim;
                using var x = dev.Allocate<ushort>(128L * inter);
                using var w = dev.Allocate<ushort>((long)2 * inter * hid);
                using var y = dev.Allocate<ushort>(128L * 2 * inter);
                foreach (int rows in (int[])[29, 30, 113])
                    foreach (var (k, n, name) in new[] { (hid, qkv, "qkv"), (hid, hid, "o"), (hid, 2 * inter, "gate/up"), (inter, hid, "down") })
                    {
                        var t = Stopwatch.StartNew();
                        probe.Bf16(stream, x, w, y, rows, k, n, accumulate: name is "o" or "down");
                        stream.Synchronize();
                        double first = t.Elapsed.TotalMilliseconds;
                        t.Restart();
                        probe.Bf16(stream, x, w, y, rows, k, n, accumulate: name is "o" or "down");
                        stream.Synchronize();
                        Console.WriteLine($"cuBLASLt {name} product of {rows} rows: first call {first:F2} ms (plan + launch + sync), then {t.Elapsed.TotalMilliseconds:F2} ms");
                        results[$"matmul_first_call_{name.Replace('/', '_')}_{rows}_rows_ms"] = first;
                    }
            }
            foreach (string question in (string[])["Why?", "Say that again, but shorter, and in French.", RandomText(rng, 90), RandomText(rng, 300)])
                for (int rep = 0; rep < 2; rep++)
                {
                    var doc = RandomText(rng, 4096 - 64);
                    var t1 = gen.EncodeChat([new ChatMessage("user", doc)], addGenerationPrompt: true);
                    var t2 = gen.EncodeChat([new ChatMessage("user", doc), new ChatMessage("assistant", "ok"), new ChatMessage("user", question)], addGenerationPrompt: true);
                    await Warm(t1);
                    var (ms, a, _) = await FirstTokenAsync(engine, t2);
                    results[$"ttft_device_4096_new_{a.ComputedTokens}_tokens_{(rep == 0 ? "first" : "again")}_ms"] = ms;
                    Console.WriteLine($"time to first token, KV device, 4K session, {a.ComputedTokens} new tokens ({(rep == 0 ? "first turn of that length" : "again")}): {ms:F1} ms");
                }
            {
                var (turn1, turn2) = Session();
                await Warm(turn1);
                int moved = await engine.OffloadAsync(turn1);
                Console.WriteLine($"offloaded {moved} tokens to host; host pages {engine.TierStats.HostPagesUsed}");
                var (ms, a, _) = await FirstTokenAsync(engine, turn2);
                Record("host", ms, a);
            }
            {
                var (turn1, turn2) = Session();
                await Warm(turn1);
                // As the session grain does: SaveAsync on deactivation; before the next turn RestoreAsync (download, check,
                // import into the host pool), then the turn, whose admission swaps the pages in.
                var write = Stopwatch.StartNew();
                var saved = await sessions.SaveAsync("bench-session", engine, turn1, 0, CancellationToken.None);
                if (!saved.Saved) throw new InvalidOperationException($"snapshot not saved: {saved.Reason}");
                double gb = (double)saved.Tokens * engine.PageFormat.PageBytes / engine.PageFormat.PageSize / 1e9;
                results[$"snapshot_write_{context}_gb_per_s"] = gb / write.Elapsed.TotalSeconds;
                Console.WriteLine($"snapshot of {saved.Tokens} tokens: {gb:F2} GB written in {write.Elapsed.TotalMilliseconds:F0} ms");
                int dropped = await engine.DropAsync(turn1);
                bool coldCache = DropPageCache();
                results[$"ttft_blob_{context}_page_cache_dropped"] = coldCache ? 1.0 : 0.0;

                var sw = Stopwatch.StartNew();
                var restored = await sessions.RestoreAsync("bench-session", engine, turn1, CancellationToken.None);
                if (!restored.Imported) throw new InvalidOperationException($"snapshot not restored: {restored.Reason}");
                double restoreMs = sw.Elapsed.TotalMilliseconds;
                KvAdmission a = default;
                await foreach (var _ in engine.GenerateAsync(turn2, SamplingParams.Greedy(1), NoStop, x => a = x)) break;
                double ms = sw.Elapsed.TotalMilliseconds;
                Console.WriteLine($"blob: dropped {dropped} cached tokens first; page cache {(coldCache ? "dropped" : "NOT dropped (the read may come from RAM)")}; download + check + import {restoreMs:F0} ms ({restored.ImportedTokens} tokens)");
                results[$"ttft_blob_{context}_restore_ms"] = restoreMs;
                Record("blob", ms, a);
            }
        }
        finally
        {
            try { Directory.Delete(store, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Asks the kernel to drop clean page-cache pages (root only), so the snapshot read comes from the disk.</summary>
    private static bool DropPageCache()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("sh", ["-c", "sync && echo 1 > /proc/sys/vm/drop_caches"]) { RedirectStandardError = true });
            p!.WaitForExit(30_000);
            return p.ExitCode == 0;
        }
        catch (Exception) { return false; }
    }

    private static async Task GrainsAsync(CudaDevice dev, ModelConfig config, CudaWeights weights, KernelCompiler compiler, EngineKernels ek, int context, int sessions, Dictionary<string, object> results)
    {
        const int NewTokens = 256; // long enough that a turn's fixed costs (state writes, tier probe) are amortised as in real answers
        var options = new EngineOptions
        {
            PageSize = EngineOptions.DefaultCudaPageSize, MaxSequences = sessions, ContextLength = context + 256, PrefillChunkTokens = 8192, MaxBatchTokens = 8192,
        };
        using var engine = Engine(dev, weights, compiler, ek, options);
        var gen = new ByteTextGenerator(engine, options.ContextLength!.Value);
        Console.WriteLine($"grains: {engine.BackendDescription}");
        var rng = new Random(13);
        var docs = Enumerable.Range(0, sessions).Select(_ => RandomText(rng, context - 16)).ToArray();
        var prompts = docs.Select(d => gen.EncodeChat([new ChatMessage("user", d)], addGenerationPrompt: true)).ToArray();

        // Engine alone: every session generates NewTokens at once. The first run computes (and caches) every prompt,
        // so the measured runs, the engine's and the grains', are the same decode work over device-resident KV.
        async Task<double> EngineAloneAsync()
        {
            var sw = Stopwatch.StartNew();
            var counts = await Task.WhenAll(prompts.Select(async p =>
            {
                int n = 0;
                await foreach (var _ in engine.GenerateAsync(p, SamplingParams.Greedy(NewTokens), NoStop)) n++;
                return n;
            }));
            return counts.Sum() / sw.Elapsed.TotalSeconds;
        }
        double warm = await EngineAloneAsync();
        Console.WriteLine($"{sessions} sessions at {context}, first run (prefill + decode): {warm:F0} tokens/s");
        double alone = await EngineAloneAsync();

        var data = Path.Combine(Path.GetTempPath(), "actors-bench-silo-" + Guid.NewGuid().ToString("N"));
        var modelDir = Path.Combine(data, "model");
        Directory.CreateDirectory(modelDir);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleans(silo => silo.ConfigureActorsSilo(new ActorsSiloOptions { DataDirectory = data, SiloPort = 21111, GatewayPort = 40000 }));
        builder.Services.AddTextGeneratorFactory(_ => gen);
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var client = host.Services.GetRequiredService<IClusterClient>();
            var grainsList = Enumerable.Range(0, sessions).Select(i => client.GetGrain<IDocumentGrain>($"bench-{i}")).ToArray();
            foreach (var g in grainsList) await g.Open(new OpenSession(modelDir));
            async Task<double> ThroughGrainsAsync(int round)
            {
                var sw = Stopwatch.StartNew();
                var counts = await Task.WhenAll(grainsList.Select(async (g, i) =>
                {
                    int n = 0;
                    await foreach (var chunk in g.Ask(new AskRequest(docs[i], MaxNewTokens: NewTokens)))
                        if (chunk.Stats is { } s) n = s.GeneratedTokens;
                    return n;
                }));
                return counts.Sum() / sw.Elapsed.TotalSeconds;
            }
            // Each Ask adds a turn, so a session's second Ask is a longer prompt: measure the first Ask of each
            // session (the same prompts as the engine's runs, found on the device) and re-run the engine after.
            double viaGrains = await ThroughGrainsAsync(0);
            double aloneAfter = await EngineAloneAsync();
            double baseline = (alone + aloneAfter) / 2;
            results[$"grains_{sessions}x{context}_engine_tokens_per_s"] = baseline;
            results[$"grains_{sessions}x{context}_grains_tokens_per_s"] = viaGrains;
            results[$"grains_{sessions}x{context}_ratio"] = viaGrains / baseline;
            Console.WriteLine($"{sessions} sessions at {context}: engine alone {alone:F0} / {aloneAfter:F0} tokens/s, through grains {viaGrains:F0} tokens/s ({viaGrains / baseline:P1} of the engine)");
        }
        finally
        {
            await host.StopAsync();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Random prose: words of 2-9 letters, sentences of 6-20 words, paragraphs of 3-8 sentences.</summary>
    internal static string RandomProse(Random rng, int bytes)
    {
        var sb = new StringBuilder(bytes + 64);
        while (sb.Length < bytes)
        {
            int sentences = rng.Next(3, 9);
            for (int s = 0; s < sentences && sb.Length < bytes; s++)
            {
                int words = rng.Next(6, 21);
                for (int w = 0; w < words; w++)
                {
                    int len = rng.Next(2, 10);
                    for (int c = 0; c < len; c++) sb.Append((char)('a' + rng.Next(26)));
                    sb.Append(w == words - 1 ? ". " : " ");
                }
            }
            sb.Append("\n\n");
        }
        return sb.ToString(0, bytes);
    }

    private static async Task MapReduceAsync(CudaDevice dev, CudaWeights weights, KernelCompiler compiler, EngineKernels ek, int documentTokens, Dictionary<string, object> results)
    {
        var options = new EngineOptions
        {
            PageSize = EngineOptions.DefaultCudaPageSize, MaxSequences = 32, ContextLength = 8192, PrefillChunkTokens = 8192, MaxBatchTokens = 8192, HostKvBytes = 0,
        };
        using var engine = Engine(dev, weights, compiler, ek, options);
        var gen = new ByteTextGenerator(engine, options.ContextLength!.Value);
        Console.WriteLine($"mapreduce: {engine.BackendDescription}");
        var document = RandomProse(new Random(17), documentTokens);

        // Engine busy time: the engine's step durations, summed while the job runs.
        double stepMs = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Actors.Engine" && instrument.Name == "actors.engine.step.duration") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) => { lock (listener) stepMs += value; });
        listener.Start();

        var data = Path.Combine(Path.GetTempPath(), "actors-bench-job-" + Guid.NewGuid().ToString("N"));
        var modelDir = Path.Combine(data, "model");
        Directory.CreateDirectory(modelDir);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleans(silo => silo.ConfigureActorsSilo(new ActorsSiloOptions { DataDirectory = data, SiloPort = 21112, GatewayPort = 40001 }));
        builder.Services.AddTextGeneratorFactory(_ => gen);
        using var host = builder.Build();
        await host.StartAsync();
        JobResult result;
        double wall, busy;
        try
        {
            var client = host.Services.GetRequiredService<IClusterClient>();
            // Warm-up: a small job compiles the kernels and plans the GEMM shapes of prefill chunks and decode batches.
            var warm = await SummarizationJobs.SubmitAsync(client, new SubmitJob(modelDir, new SummaryOptions(TargetWords: 20), Text: RandomProse(new Random(3), 20000)));
            await foreach (var _ in client.GetGrain<ISummarizationJobGrain>(warm.JobId).Watch()) { }

            lock (listener) stepMs = 0;
            var sw = Stopwatch.StartNew();
            var info = await SummarizationJobs.SubmitAsync(client, new SubmitJob(modelDir, new SummaryOptions(), Text: document));
            var job = client.GetGrain<ISummarizationJobGrain>(info.JobId);
            JobProgress? last = null;
            await foreach (var p in job.Watch())
            {
                if (last is null || p.StepsDone != last.StepsDone)
                    Console.WriteLine($"  {sw.Elapsed.TotalSeconds,6:F1} s  {p.Phase,-10} {p.StepsDone}/{p.StepsTotal} steps, {p.TokensProcessed} tokens, {p.TokensPerSecond:F0} tokens/s");
                last = p;
            }
            wall = sw.Elapsed.TotalMilliseconds;
            lock (listener) busy = stepMs;
            result = await job.GetResult();
            if (result.Status != JobStatus.Succeeded) throw new InvalidOperationException($"the job ended {result.Status}: {result.Error}");
        }
        finally
        {
            await host.StopAsync();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }

        // Each step alone: a fresh prompt of the step's length (random tokens: no prefix cache) and its decode.
        var rng = new Random(19);
        double alone = 0;
        foreach (var step in result.Steps)
        {
            var prompt = Enumerable.Range(0, step.PromptTokens).Select(_ => ByteTextGenerator.ByteBase + rng.Next(256)).ToArray();
            var sw = Stopwatch.StartNew();
            int n = 0;
            await foreach (var _ in engine.GenerateAsync(prompt, SamplingParams.Greedy(Math.Max(1, step.GeneratedTokens)), NoStop)) n++;
            alone += sw.Elapsed.TotalMilliseconds;
        }
        int maps = result.Steps.Count(s => s.StepId.StartsWith("map-", StringComparison.Ordinal));
        results[$"mapreduce_{documentTokens}_steps"] = (double)result.Steps.Count;
        results[$"mapreduce_{documentTokens}_map_steps"] = (double)maps;
        results[$"mapreduce_{documentTokens}_wall_ms"] = wall;
        results[$"mapreduce_{documentTokens}_steps_alone_ms"] = alone;
        results[$"mapreduce_{documentTokens}_wall_over_steps_alone"] = wall / alone;
        results[$"mapreduce_{documentTokens}_engine_busy_fraction"] = busy / wall;
        results[$"mapreduce_{documentTokens}_prompt_tokens"] = (double)result.Steps.Sum(s => s.PromptTokens);
        results[$"mapreduce_{documentTokens}_generated_tokens"] = (double)result.Steps.Sum(s => s.GeneratedTokens);
        Console.WriteLine($"map-reduce of {documentTokens} tokens: {result.Steps.Count} steps ({maps} maps), wall {wall / 1000:F1} s; the steps alone {alone / 1000:F1} s (ratio {wall / alone:F2}); engine busy {busy / wall:P0} of the wall time");
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
