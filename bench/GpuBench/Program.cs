using System.Diagnostics;
using System.Text.Json;
using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

// GPU benchmark of the CUDA engine path on a Llama-3-8B-shaped model with random bf16 weights generated on the device.
// Usage: actors-gpubench [--out results.json] [--chunk 8192] [--decode 32] [--quick]
//        actors-gpubench --serving [--tiers] [--grains] [--quick] [--out result.json]   (ServingBench.cs)
//        actors-gpubench --scale-parity --model DIR --variant DIR [--out result.json] [--chunk 2048]
// --skip "case,case": leave out the named cases (the names Case() prints), for short device runs; --only "case,case":
// run only those (and the optional cases, such as "gemv configurations", run only when named here).
// --quick: 2K/4K instead of 8K/32K and 4 sessions (for a smoke run). Times: wall clock around a synchronised step
// (prefill, decode: what a caller sees, logits copied back) or CUDA events (kernels alone).
// At-scale parity against transformers (ScaleParity.cs): a mode of its own, it shares nothing with the benchmark below.
if (args.Length > 0 && args[0] == "--scale-parity") return ScaleParity.Run(args[1..]);
if (args.Length > 0 && args[0] == "--serving") return await ServingBench.RunAsync(args[1..]);
string? outPath = Str("--out");
bool quick = args.Contains("--quick");
string[] skip = Str("--skip")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? []; // case names
string[] only = Str("--only")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? []; // case names
int chunk = Int("--chunk", 8192), decodeSteps = Int("--decode", 32), warmDecode = 4;
int shortCtx = quick ? 2048 : 8192, longCtx = quick ? 4096 : 32768, sessions = quick ? 4 : 32;

if (!CudaDevice.TryOpen(Int("--device", 0), out var device, out var reason))
{
    Console.Error.WriteLine($"actors-gpubench: no usable CUDA device: {reason}");
    return 2;
}
using var dev = device!;
const int PageSize = EngineOptions.DefaultCudaPageSize; // the engine's default on CUDA
var config = new ModelConfig
{
    ModelType = "llama", Family = ModelFamily.Llama, HiddenSize = 4096, IntermediateSize = 14336, NumLayers = 32,
    NumHeads = 32, NumKvHeads = 8, HeadDim = 128, VocabSize = 128256, RmsNormEps = 1e-5f, RopeTheta = 500000,
    // Linear x4 for every case: the scaling type changes only the cos/sin table, never the work.
    MaxPositionEmbeddings = 32768 + 256, RopeScaling = new RopeScaling("linear", 4.0), Source = "Llama-3-8B shape",
};
var results = new Dictionary<string, object>
{
    ["device"] = dev.ToString(),
    ["model"] = "Llama-3-8B shape, random bf16 weights, RoPE linear x4",
    ["prefill_chunk_tokens"] = chunk,
};
long minFree = long.MaxValue;
var errors = new Dictionary<string, string>();
bool samplePeak = true; // off in cases that switch to a non-default path holding more memory (the unfused SwiGLU's buffer)
void Sample() { if (samplePeak) minFree = Math.Min(minFree, dev.MemoryInfo().Free); }

Console.WriteLine($"device: {dev}");
var compiler = new KernelCompiler(dev);
var ek = new EngineKernels(compiler);
var sw = Stopwatch.StartNew();
using var weights = CudaWeights.Random(dev, config, ek, seed: 7);
Console.WriteLine($"weights: {weights.Bytes / 1e9:F2} GB bf16 generated on the device in {sw.Elapsed.TotalSeconds:F1} s");
int pagesPerSession = (shortCtx + decodeSteps + warmDecode + PageSize) / PageSize + 1;
int kvPages = Math.Max(sessions * pagesPerSession, (longCtx + decodeSteps + warmDecode + PageSize) / PageSize + 1);
var options = new EngineOptions
{
    PageSize = PageSize, KvPages = kvPages, MaxBatchTokens = chunk, PrefillChunkTokens = chunk, MaxSequences = sessions,
    ContextLength = longCtx + 256,
};
using var runner = CudaModelRunner.Create(dev, weights, options, options.ContextLength!.Value, compiler, ek);
Console.WriteLine(runner.Description);
Sample();
var layout = runner.KvLayout;
var stream = runner.Stream;
var rng = new Random(5);
int[] RandomTokens(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(config.VocabSize)).ToArray();
int[] Pages(int first, int count) => Enumerable.Range(first, count).ToArray();

// The card's energy counter (NVML): a card at its power limit takes (energy / limit) seconds for a prefill, and joules
// per token is what a served token costs. Read with PowerMeter.MeasureSteady (the same work back to back, the power
// read between the counter's own steps, which come only every ~100 ms).
using PowerMeter? meter = PowerMeter.TryOpen(dev, out var openedMeter, out var meterReason) ? openedMeter : null;
Console.WriteLine(meter is null ? $"power meter: none ({meterReason})" : $"power meter: {meterReason}, limit {meter.PowerLimitWatts():F0} W");
if (meter is not null) results["power_limit_w"] = meter.PowerLimitWatts();
// Records a SteadyPower under key_joules (per unit, divided by perUnit: tokens of a step), key_watts and the unit's
// back-to-back duration.
void RecordEnergy(string key, SteadyPower p, int perUnit = 1, string unit = "")
{
    results[$"{key}_joules{unit}"] = p.JoulesPerUnit / perUnit;
    results[$"{key}_watts"] = p.Watts;
    Console.WriteLine($"  energy, {key}: {p.JoulesPerUnit / perUnit:F3} J{unit.Replace('_', '/')} at {p.Watts:F0} W " +
                      $"({p.Units} back to back, {p.SecondsPerUnit * 1e3:F2} ms each, power over {p.Seconds:F2} s)");
}

// Prefill of `tokens` tokens on pages [0, …) in chunks; returns the first generated token and the wall time.
(int Token, double Ms) Prefill(int tokens)
{
    var prompt = RandomTokens(tokens);
    var table = Pages(0, (tokens + decodeSteps + warmDecode) / PageSize + 1);
    var t = Stopwatch.StartNew();
    int[] next = [];
    for (int s = 0; s < tokens; s += chunk)
    {
        int n = Math.Min(chunk, tokens - s);
        bool last = s + n == tokens;
        // earlier chunks stay in flight on the stream; the last one waits for the first token (greedy, on the device)
        var ch = new ForwardChunk(prompt.AsMemory(s, n), s, table, tokens, last ? LogitsRows.Last : LogitsRows.None);
        if (last) next = runner.ForwardArgmax([ch]);
        else runner.ForwardBf16([ch], download: false);
    }
    double ms = t.Elapsed.TotalMilliseconds;
    Sample();
    return (next[0], ms);
}

// Greedy decode right after a prefill of `context` tokens (its first token given): median ms per token.
double Decode(int context, int token)
{
    var table = Pages(0, (context + decodeSteps + warmDecode) / PageSize + 1);
    var times = new List<double>();
    for (int i = 0; i < warmDecode + decodeSteps; i++)
    {
        var t = Stopwatch.StartNew();
        token = runner.ForwardArgmax([new ForwardChunk(new[] { token }, context + i, table, context + i + 1)])[0];
        if (i >= warmDecode) times.Add(t.Elapsed.TotalMilliseconds);
    }
    Sample();
    return Median(times);
}

// Warm-up: NVRTC/cuBLASLt plans for the shapes measured below. The runner tuned the prefill's GEMMs when it was created
// (CublasLtMatmul.Autotune: products back to back for about a second at the card's power limit, once per process, as a
// server does when it starts). So after a tuning the card rests and takes one more warm-up prefill, to start the
// measurements in the state hf_baseline.py starts its own in (right after a warm-up prefill), not on a card the tuning
// just heated.
Decode(64, Prefill(64).Token);
Prefill(Math.Min(chunk, shortCtx));
if (runner.Matmul.Tunings.Count > 0)
{
    Thread.Sleep(3000);
    Prefill(Math.Min(chunk, shortCtx));
}
if (meter is not null)
{
    results["energy_counter_step_ms"] = meter.CounterStepMilliseconds(TimeSpan.FromMilliseconds(500));
    Console.WriteLine($"energy counter step: {results["energy_counter_step_ms"]:F2} ms");
}

Case("prefill and decode", () =>
{
foreach (int ctx in new[] { shortCtx, longCtx })
{
    // best of two at the short context, one at the long one: as hf_baseline.py measures transformers
    var (token, ms) = Prefill(ctx);
    if (ctx == shortCtx)
    {
        var again = Prefill(ctx);
        (token, ms) = (again.Token, Math.Min(ms, again.Ms));
    }
    results[$"prefill_{ctx}_ms"] = ms;
    double dms = Decode(ctx, token);
    results[$"decode_after_{ctx}_ms_per_token"] = dms;
    Console.WriteLine($"prefill {ctx}: {ms:F1} ms; decode after it: {dms:F2} ms/token");
    if (meter is not null)
    {
        // prefills back to back (a second to reach a steady draw, then 3 s), then greedy decode steps back to back at
        // positions ctx .. ctx + 63 over and over (the same work as the timed decode, on the pages it already has)
        RecordEnergy($"prefill_{ctx}", meter.MeasureSteady(() => Prefill(ctx), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)));
        var table = Pages(0, (ctx + 64) / PageSize + 1);
        int step = 0;
        RecordEnergy($"decode_after_{ctx}", meter.MeasureSteady(() =>
        {
            int pos = ctx + step++ % 64;
            token = runner.ForwardArgmax([new ForwardChunk(new[] { token }, pos, table, pos + 1)])[0];
        }, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(3)), unit: "_per_token");
    }
}
});

// The residual adds in the cuBLASLt epilogue (the default) against separate add + norm kernels, 8K prefill best of two.
Case("prefill without the residual in the GEMM epilogue", () =>
{
    runner.ResidualInGemm = false;
    try
    {
        double ms = Math.Min(Prefill(shortCtx).Ms, Prefill(shortCtx).Ms);
        results[$"separate_residual_prefill_{shortCtx}_ms"] = ms;
        Console.WriteLine($"prefill {shortCtx} with separate residual adds: {ms:F1} ms");
    }
    finally { runner.ResidualInGemm = true; }
});

// Where prefill time goes: GPU time per stage of one prefill at each context (a timing event between stages).
using var profile = new StepProfile(dev);
string Key(string label) => new string(label.Select(ch => char.IsLetterOrDigit(ch) ? ch : '_').ToArray()).Replace("__", "_").Trim('_');
void ProfiledPrefill(string tag, bool withDecode = false)
{
    foreach (int ctx in new[] { shortCtx, longCtx })
    {
        profile.Reset();
        runner.Profile = profile;
        (int Token, double Ms) r;
        try { r = Prefill(ctx); }
        finally { runner.Profile = null; }
        results[$"prefill_{ctx}_{tag}_profiled_ms"] = r.Ms;
        Report($"prefill_{ctx}_{tag}", $"prefill {ctx} ({tag} GEMM algorithms), profiled: {r.Ms:F1} ms wall", 1);
        if (!withDecode) continue;
        profile.Reset();
        runner.Profile = profile;
        runner.UseDecodeGraphs = false; // a replayed graph records no stage events
        double dms;
        try { dms = Decode(ctx, r.Token); }
        finally { runner.Profile = null; runner.UseDecodeGraphs = true; }
        results[$"decode_after_{ctx}_profiled_ms_per_token"] = dms;
        Report($"decode_after_{ctx}", $"decode after {ctx} without graphs, profiled: {dms:F2} ms/token wall (median), per step", warmDecode + decodeSteps);
    }
}
// Prints (and records per step) the GPU time per stage of the profile; `steps` profiled steps are averaged.
void Report(string key, string title, int steps)
{
    var totals = profile.Totals();
    double sum = totals.Sum(t => t.Ms) / steps;
    Console.WriteLine($"{title}: {sum:F2} ms of GPU time in stages");
    foreach (var (label, sms, count) in totals)
    {
        double ms = sms / steps;
        results[$"{key}_{Key(label)}_ms"] = ms;
        Console.WriteLine($"  {label,-30} {ms,9:F3} ms {ms / sum,7:P1}  ({count / steps} intervals)");
    }
}
string GemmTag() => runner.Matmul.Autotune ? "tuned" : "heuristic";
Case("prefill profile", () => ProfiledPrefill(GemmTag(), withDecode: true));
// The hot-tuned cuBLASLt algorithms the engine takes by default (CublasLtMatmul.Autotune; ACTORS_CUBLASLT_AUTOTUNE=0
// turns it off) against cuBLASLt's first heuristic picks, alternating in this process (three rounds, 8K best of two and
// 32K once each), then both profiled. Each prefill also reports its GPU span (an event before and after it on the
// stream), so host time outside the GPU's work shows as wall - span.
Case("prefill with heuristic GEMMs", () =>
{
    foreach (var t in runner.Matmul.Tunings)
    {
        double flop = 2.0 * t.Rows * t.K * t.N;
        Console.WriteLine($"GEMM ({t.Rows}, {t.K}, {t.N}) tuned hot: heuristic pick {t.HeuristicMs:F3} ms ({flop / (t.HeuristicMs * 1e-3) / 1e12:F0} TFLOP/s), " +
            $"best of {t.Candidates} #{t.Chosen} {t.ChosenMs:F3} ms ({flop / (t.ChosenMs * 1e-3) / 1e12:F0} TFLOP/s)");
        results[$"gemm_{t.Rows}x{t.K}x{t.N}_hot_heuristic_tflops"] = flop / (t.HeuristicMs * 1e-3) / 1e12;
        results[$"gemm_{t.Rows}x{t.K}x{t.N}_hot_tuned_tflops"] = flop / (t.ChosenMs * 1e-3) / 1e12;
    }
    try
    {
        Alternate(tuned => runner.UseTunedProducts = tuned, "heuristic", "tuned");
        runner.UseTunedProducts = false;
        ProfiledPrefill("heuristic");
    }
    finally { runner.UseTunedProducts = true; }
});

// The gate/up product with SwiGLU in its epilogue (gemm_hopper.cu, CudaModelRunner.UseFusedSwiGlu, the default on
// compute capability 9.0) against cuBLASLt's product followed by the SwiGLU kernel, alternating as above, then the
// unfused pair profiled.
Case("prefill with unfused SwiGLU", () =>
{
    if (runner.FusedSwiGluUnavailableReason is { } why)
    {
        Console.WriteLine($"fused gate/up + SwiGLU not available: {why}");
        return;
    }
    samplePeak = false; // the unfused product's output buffer exists only while this case runs
    try
    {
        Alternate(fused => runner.UseFusedSwiGlu = fused, "unfused_swiglu", "fused_swiglu");
        runner.UseFusedSwiGlu = false;
        ProfiledPrefill("unfused SwiGLU");
    }
    finally { runner.UseFusedSwiGlu = true; samplePeak = true; }
});

// add_rmsnorm8 with 4 pieces of 16 bytes per thread (128 threads a row of 4096, the default) against 1 (512 threads):
// the kernel alone on shortCtx rows (3 rounds, pieces 1 / 2 / 4), then prefills alternating as above, then profiled.
Case("prefill norm threads", () =>
{
    int rows = shortCtx, dim = config.HiddenSize;
    var ew = new ElementwiseKernels(compiler);
    using var res = dev.Allocate<ushort>((long)rows * dim);
    using var x = dev.Allocate<ushort>((long)rows * dim);
    using var y = dev.Allocate<ushort>((long)rows * dim);
    using var w = dev.Allocate<ushort>(dim);
    ek.RandomInit(stream, res, 11, 1f, 0f);
    ek.RandomInit(stream, x, 12, 1f, 0f);
    ek.RandomInit(stream, w, 13, 1f, 1f);
    int before = ElementwiseKernels.NormPiecesPerThread;
    try
    {
        for (int round = 0; round < 3; round++)
            foreach (int pieces in new[] { 1, 2, 4 })
            {
                ElementwiseKernels.NormPiecesPerThread = pieces;
                double norm = Time(20, () => ew.RmsNorm(stream, res, w, y, rows, dim, 1e-5f), warm: 3);
                double add = Time(20, () => ew.AddRmsNorm(stream, res, x, w, y, rows, dim, 1e-5f), warm: 3);
                double normTbs = 2.0 * rows * dim * 2 / (norm * 1e-3) / 1e12, addTbs = 3.0 * rows * dim * 2 / (add * 1e-3) / 1e12;
                results[$"rmsnorm_{rows}x{dim}_{pieces}_pieces_us"] = norm * 1000;
                results[$"add_rmsnorm_{rows}x{dim}_{pieces}_pieces_us"] = add * 1000;
                Console.WriteLine($"rmsnorm ({rows}, {dim}), {pieces} piece(s) of 16 bytes per thread: {norm * 1000:F1} µs ({normTbs:F2} TB/s); " +
                    $"with the residual add {add * 1000:F1} µs ({addTbs:F2} TB/s)");
            }
        Alternate(on => ElementwiseKernels.NormPiecesPerThread = on ? 4 : 1, "norm_1_piece", "norm_4_pieces");
        ElementwiseKernels.NormPiecesPerThread = 1;
        ProfiledPrefill("norm 1 piece");
    }
    finally { ElementwiseKernels.NormPiecesPerThread = before; }
});

// The last layer on the logits rows alone (CudaModelRunner.TrimLastLayer, the default) against the whole last layer:
// prefills alternating as above (the earlier chunks ask for no logits, the last for one row).
Case("prefill last layer", () =>
{
    try { Alternate(on => runner.TrimLastLayer = on, "whole_last_layer", "trimmed_last_layer"); }
    finally { runner.TrimLastLayer = true; }
});

// Three rounds of prefills with a switch off, then on (8K best of two and 32K once each), each prefill's GPU span (an
// event before and after it on the stream) beside its wall time; the means go into the results under each tag.
void Alternate(Action<bool> set, string offTag, string onTag)
{
    using var e0 = new CudaEvent(dev);
    using var e1 = new CudaEvent(dev);
    (double Wall, double Span) Spanned(int ctx)
    {
        e0.Record(stream);
        double wall = Prefill(ctx).Ms;
        e1.Record(stream);
        e1.Synchronize();
        return (wall, CudaEvent.ElapsedMilliseconds(e0, e1));
    }
    var sums = new Dictionary<string, (double Sum, int N)>();
    for (int round = 0; round < 3; round++)
        foreach (bool on in new[] { false, true })
        {
            set(on);
            string tag = on ? onTag : offTag;
            var a = Spanned(shortCtx);
            var b = Spanned(shortCtx);
            var best = a.Wall <= b.Wall ? a : b;
            var l = Spanned(longCtx);
            Console.WriteLine($"round {round} {tag,-14}: prefill {shortCtx} {best.Wall:F1} ms (GPU span {best.Span:F1}), {longCtx} {l.Wall:F1} ms (GPU span {l.Span:F1})");
            foreach (var (key, v) in new[] { ($"{tag}_prefill_{shortCtx}_ms", best.Wall), ($"{tag}_prefill_{longCtx}_ms", l.Wall) })
            {
                var (sum, n) = sums.GetValueOrDefault(key);
                sums[key] = (sum + v, n + 1);
            }
        }
    foreach (var (key, (sum, n)) in sums) results[$"{key}_mean_of_3"] = sum / n;
}

// Median ms of one decode step of `sessions` sequences at shortCtx, over KV filled with random values (seed).
double SessionsStepMs(ulong seed)
{
    ek.RandomInit(stream, runner.Pool, seed, 1f, 0f);
    var tables = Enumerable.Range(0, sessions).Select(s => Pages(s * pagesPerSession, pagesPerSession)).ToArray();
    var tokens = Enumerable.Range(0, sessions).Select(_ => rng.Next(config.VocabSize)).ToArray();
    var times = new List<double>();
    for (int i = 0; i < warmDecode + decodeSteps; i++)
    {
        var batch = Enumerable.Range(0, sessions)
            .Select(s => new ForwardChunk(new[] { tokens[s] }, shortCtx + i, tables[s], shortCtx + i + 1)).ToArray();
        var t = Stopwatch.StartNew();
        tokens = runner.ForwardArgmax(batch);
        if (i >= warmDecode) times.Add(t.Elapsed.TotalMilliseconds);
    }
    return Median(times);
}

// The TMA decode's early key loads (before its wait for the qkv kernel) against none, and with the qkv product letting
// the attention start at its own wait (GemvKernels.EarlyQkvLaunch), alternating (3 rounds): decode after shortCtx and
// 32 sessions at shortCtx.
Case("decode launch overlaps", () =>
{
    bool loadsBefore = runner.EarlyTmaDecodeLoads, launchBefore = runner.EarlyQkvLaunch;
    try
    {
        var (token, _) = Prefill(shortCtx);
        for (int round = 0; round < 3; round++)
            foreach (var (loads, launch) in new[] { (false, false), (true, false), (true, true) })
            {
                runner.EarlyTmaDecodeLoads = loads;
                runner.EarlyQkvLaunch = launch;
                double dms = Decode(shortCtx, token), step = SessionsStepMs(99);
                string tag = loads ? launch ? "early_loads_early_qkv_launch" : "early_loads" : "late_loads";
                results[$"tma_{tag}_decode_after_{shortCtx}_ms_per_token"] = dms;
                results[$"tma_{tag}_sessions_{sessions}_at_{shortCtx}_step_ms"] = step;
                Console.WriteLine($"TMA decode, early loads {(loads ? "on" : "off")}, qkv early launch {(launch ? "on" : "off")}: " +
                    $"decode after {shortCtx} {dms:F2} ms/token; {sessions} sessions {step:F2} ms/step");
            }
    }
    finally { runner.EarlyTmaDecodeLoads = loadsBefore; runner.EarlyQkvLaunch = launchBefore; }
});

// The decode's split merge by a warp per (sequence, head) (the default) against paged_decode_reduce's block per head,
// alternating (3 rounds): decode after shortCtx and 32 sessions at shortCtx.
Case("decode reduce", () =>
{
    bool before = runner.WarpSplitMerge;
    try
    {
        var (token, _) = Prefill(shortCtx);
        for (int round = 0; round < 3; round++)
            foreach (bool warp in new[] { false, true })
            {
                runner.WarpSplitMerge = warp;
                double dms = Decode(shortCtx, token), step = SessionsStepMs(99);
                string tag = warp ? "warp" : "block";
                results[$"reduce_{tag}_decode_after_{shortCtx}_ms_per_token"] = dms;
                results[$"reduce_{tag}_sessions_{sessions}_at_{shortCtx}_step_ms"] = step;
                Console.WriteLine($"decode split merge by a {tag} per head: decode after {shortCtx} {dms:F2} ms/token; {sessions} sessions {step:F2} ms/step");
            }
    }
    finally { runner.WarpSplitMerge = before; }
});

// The same decode with every product through cuBLASLt (gemv.cu off): what the decode kernels are worth.
Case("decode, cuBLASLt only", () =>
{
    runner.UseGemv = false;
    try
    {
        var (token, _) = Prefill(shortCtx);
        double dms = Decode(shortCtx, token);
        results[$"cublaslt_decode_after_{shortCtx}_ms_per_token"] = dms;
        Console.WriteLine($"decode after {shortCtx} with cuBLASLt for every product: {dms:F2} ms/token");
    }
    finally { runner.UseGemv = true; }
});

// Sessions decoding together at shortCtx context. Their KV is random (filled on the device): decode time does not
// depend on the values, and 32 real prefills of 8K would add ~10 s without changing the measurement.
Case("sessions", () =>
{
    double step = SessionsStepMs(99);
    results[$"sessions_{sessions}_at_{shortCtx}_step_ms"] = step;
    results[$"sessions_{sessions}_at_{shortCtx}_tokens_per_s"] = sessions * 1000.0 / step;
    Console.WriteLine($"{sessions} sessions at {shortCtx}: {step:F2} ms/step, {sessions * 1000.0 / step:F0} tokens/s");
    if (meter is not null)
    {
        // the sessions' steps back to back at positions shortCtx .. shortCtx + 63 over and over
        var tables = Enumerable.Range(0, sessions).Select(s => Pages(s * pagesPerSession, pagesPerSession)).ToArray();
        var tokens = Enumerable.Range(0, sessions).Select(_ => rng.Next(config.VocabSize)).ToArray();
        int i = 0;
        RecordEnergy($"sessions_{sessions}_at_{shortCtx}", meter.MeasureSteady(() =>
        {
            int pos = shortCtx + i++ % 64;
            tokens = runner.ForwardArgmax(Enumerable.Range(0, sessions).Select(s => new ForwardChunk(new[] { tokens[s] }, pos, tables[s], pos + 1)).ToArray());
        }, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(3)), sessions, "_per_token");
    }
    Sample();
});

// Kernel level, timed with CUDA events over several launches.
// Mean ms of `reps` launches after `warm` untimed ones (CUDA events).
double Time(int reps, Action launch, int warm = 1)
{
    for (int i = 0; i < warm; i++) launch();
    using var a = new CudaEvent(dev);
    using var b = new CudaEvent(dev);
    a.Record(stream);
    for (int i = 0; i < reps; i++) launch();
    b.Record(stream);
    return CudaEvent.ElapsedMilliseconds(a, b) / reps;
}
Case("gemm", () =>
{
    using var product = new BenchProduct(dev, ek, stream);
    // the first call tunes the shape (about a second of products at the power limit): rest before timing as
    // hf_baseline.py times torch's product (one warm-up launch, then 20), and time the heuristic's first pick the same way
    product.Run();
    stream.Synchronize();
    foreach (bool tuned in new[] { true, false })
    {
        product.Matmul.UseTunedAlgorithms = tuned;
        Thread.Sleep(3000);
        double ms = Time(20, product.Run);
        string key = tuned ? "gemm_8192x4096x14336_tflops" : "gemm_8192x4096x14336_heuristic_tflops";
        results[key] = product.Flops / (ms * 1e-3) / 1e12;
        Console.WriteLine($"GEMM (8192, 4096, 14336){(tuned ? "" : ", cuBLASLt's first heuristic pick")}: {ms:F3} ms, {results[key]:F0} TFLOP/s");
    }
    Sample();
});
var attention = new AttentionKernels(compiler);
Console.WriteLine(attention.PrefillUsesWgmma(config.HeadDim, config.NumHeads, config.NumKvHeads, PageSize)
    ? "prefill attention kernel: paged_prefill_wgmma (wgmma + TMA, warp-specialised)"
    : $"prefill attention kernel: mma.sync ({attention.WgmmaUnavailableReason ?? "wgmma off"})");
// Over the runner's pool (pages of PageSize tokens), then over a one-layer pool of 16-token pages (vLLM's default
// block size) to show what the page size costs the kernel.
void PrefillAttention(DeviceSpan<ushort> pool, KvLayout kv, string suffix)
{
foreach (int T in new[] { shortCtx, longCtx })
{
    int heads = config.NumHeads, d = config.HeadDim;
    using var q = dev.Allocate<ushort>((long)T * heads * d);
    using var o = dev.Allocate<ushort>((long)T * heads * d);
    using var table = dev.Allocate<int>((T + kv.PageSize - 1) / kv.PageSize);
    table.Upload(Pages(0, (int)table.Length));
    ek.RandomInit(stream, q, 3, 1f, 0f);
    // 3 untimed launches first: the kernel module was just loaded and the card idled meanwhile, and 5 launches of
    // ~1 ms right after an idle spell measured 536-630 TFLOP/s for the same code (hf_baseline.py times SDPA the same way)
    double ms = Time(T > 16384 ? 5 : 20, () => attention.Prefill(stream, q, T, heads, 0, pool, kv, 0, table, 1f / MathF.Sqrt(d), o), warm: 3);
    double flops = 2.0 * 2 * T * (double)T * heads * d / 2;
    string key = $"prefill_attention_{T}{suffix}_tflops";
    results[key] = flops / (ms * 1e-3) / 1e12;
    Console.WriteLine($"prefill attention {T}, pages of {kv.PageSize} tokens: {ms:F2} ms, {results[key]:F1} TFLOP/s");
    Sample();
}
}
Case("prefill attention", () => PrefillAttention(runner.Pool, layout, ""));
Case("prefill attention, 16-token pages", () =>
{
    var small = new KvLayout(16, 1, config.NumKvHeads, config.HeadDim);
    using var pool = dev.Allocate<ushort>((long)(longCtx / 16 + 1) * small.PageStride);
    ek.RandomInit(stream, pool, 6, 1f, 0f);
    PrefillAttention(pool, small, "_page16");
});
// Energy per FLOP at the power limit, for the two kinds of work a prefill spends its time in: the bf16 product of a
// chunk's gate/up size (cuBLASLt) and the causal attention at shortCtx over the runner's pool. Each runs back to back
// for a second to heat the card to its limit, then for 2 s measured (PowerMeter.MeasureSteady). A prefill at
// the limit takes its energy over the limit, so these say what its FLOPs cost. hf_baseline.py measures torch's product
// and SDPA the same way.
Case("energy per flop", () =>
{
    if (meter is null) { Console.WriteLine($"energy per flop: no power meter ({meterReason})"); return; }
    void Measure(string name, double flops, Action launch, int batch)
    {
        var p = meter.MeasureSteady(() => { for (int i = 0; i < batch; i++) launch(); stream.Synchronize(); },
            TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
        int mhz = meter.SmClockMhz();
        double perSecond = flops * batch / p.SecondsPerUnit;
        results[$"{name}_pj_per_flop"] = p.Watts / perSecond * 1e12;
        results[$"{name}_hot_tflops"] = perSecond / 1e12;
        results[$"{name}_hot_watts"] = p.Watts;
        Console.WriteLine($"{name}: {p.Watts / perSecond * 1e12:F3} pJ/FLOP, {perSecond / 1e12:F0} TFLOP/s at {p.Watts:F0} W " +
                          $"(power over {p.Seconds:F2} s), SM clock {mhz} MHz at the end");
    }
    using (var product = new BenchProduct(dev, ek, stream))
        Measure("gemm_8192x4096x14336", product.Flops, product.Run, 10);
    int T = shortCtx, heads = config.NumHeads, d = config.HeadDim;
    using var q = dev.Allocate<ushort>((long)T * heads * d);
    using var o = dev.Allocate<ushort>((long)T * heads * d);
    using var table = dev.Allocate<int>((T + PageSize - 1) / PageSize);
    table.Upload(Pages(0, (int)table.Length));
    ek.RandomInit(stream, q, 3, 1f, 0f);
    ek.RandomInit(stream, runner.Pool, 6, 1f, 0f);
    Measure($"prefill_attention_{T}", 2.0 * 2 * T * (double)T * heads * d / 2,
        () => attention.Prefill(stream, q, T, heads, 0, runner.Pool, layout, 0, table, 1f / MathF.Sqrt(d), o), 10);
    Sample();
    // The prefills' energy from their FLOPs at these rates: every layer's products and causal attention, the last
    // layer only its qkv product when it is trimmed (one logits row; its other work is a decode's). What the model
    // leaves out (norms, the qkv prologue, the logits) is the difference to the measured joules.
    foreach (int ctx in new[] { shortCtx, longCtx })
    {
        if (!results.TryGetValue($"prefill_{ctx}_joules", out var measured)) continue;
        int h = config.HiddenSize, qkvN = (config.NumHeads + 2 * config.NumKvHeads) * d, layers = config.NumLayers;
        int full = runner.TrimLastLayer ? layers - 1 : layers;
        double products = full * 2.0 * ctx * h * (qkvN + h + 3.0 * config.IntermediateSize) + (layers - full) * 2.0 * ctx * h * qkvN;
        double attentionFlops = full * 2.0 * 2 * d * heads * (ctx * (ctx + 1.0) / 2);
        double jProducts = products * (double)results["gemm_8192x4096x14336_pj_per_flop"] * 1e-12;
        double jAttention = attentionFlops * (double)results[$"prefill_attention_{T}_pj_per_flop"] * 1e-12;
        results[$"prefill_{ctx}_modelled_joules"] = jProducts + jAttention;
        Console.WriteLine($"prefill {ctx} from its FLOPs: {products / 1e12:F1} TFLOP of products ({jProducts:F1} J) + {attentionFlops / 1e12:F1} TFLOP " +
                          $"of attention ({jAttention:F1} J) = {jProducts + jAttention:F1} J; measured {(double)measured:F1} J " +
                          $"({(jProducts + jAttention) / (double)measured:P1})");
    }
});
// A new turn's attention over a long cached prefix (19 new tokens after longCtx - 19: the split-KV prefill), its splits
// merged by a warp per (row, head) (the default) or prefill_split_reduce's block, alternating (3 rounds), each launch on
// the next layer.
Case("turn prefill merge", () =>
{
    int heads = config.NumHeads, d = config.HeadDim, queries = 19, first = longCtx - queries;
    using var q = dev.Allocate<ushort>((long)queries * heads * d);
    using var o = dev.Allocate<ushort>((long)queries * heads * d);
    using var table = dev.Allocate<int>(longCtx / PageSize + 1);
    table.Upload(Pages(0, (int)table.Length));
    ek.RandomInit(stream, q, 5, 1f, 0f);
    bool before = attention.UseWarpSplitMerge;
    for (int round = 0; round < 3; round++)
        foreach (bool warp in new[] { false, true })
        {
            attention.UseWarpSplitMerge = warp;
            int layer = 0;
            double ms = Time(20, () => attention.Prefill(stream, q, queries, heads, first, runner.Pool, layout, layer++ % layout.Layers, table, 1f / MathF.Sqrt(d), o), warm: 3);
            results[$"turn_prefill_attention_{queries}_after_{first}_{(warp ? "warp" : "block")}_merge_us"] = ms * 1000;
            Console.WriteLine($"turn prefill attention, {queries} rows after {first}, splits merged by a {(warp ? "warp" : "block")}: {ms * 1000:F1} µs per layer");
        }
    attention.UseWarpSplitMerge = before;
});
Case("decode attention", () =>
{
// 12 sequences: a mid-size batch (96 pairs), where one wave of long blocks would leave a quarter of the SMs idle
foreach (var (seqs, ctx) in new[] { (sessions, shortCtx), (12, shortCtx), (1, shortCtx), (1, longCtx) })
{
    int heads = config.NumHeads, d = config.HeadDim, stride = (ctx + PageSize - 1) / PageSize;
    if ((long)seqs * stride > kvPages) stride = kvPages / seqs;
    int context = Math.Min(ctx, stride * PageSize);
    using var q = dev.Allocate<ushort>((long)seqs * heads * d);
    using var o = dev.Allocate<ushort>((long)seqs * heads * d);
    using var tables = dev.Allocate<int>((long)seqs * stride);
    tables.Upload(Pages(0, seqs * stride));
    using var lens = dev.Allocate<int>(seqs);
    lens.Upload(Enumerable.Repeat(context, seqs).ToArray());
    using var ws = dev.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(seqs, heads, config.NumKvHeads, d, context));
    ek.RandomInit(stream, q, 4, 1f, 0f);
    double bytes = (double)seqs * context * layout.TokenStride * 2 * sizeof(ushort);
    // the TMA kernel is compared on batches past its default pair limit too (which the engine keeps)
    long maxPairs = attention.TmaDecodeMaxPairs;
    attention.TmaDecodeMaxPairs = long.MaxValue;
    bool tma = attention.DecodeUsesTma(d, heads / config.NumKvHeads, PageSize, seqs, config.NumKvHeads);
    bool tmaByDefault = tma && (long)seqs * config.NumKvHeads <= maxPairs;
    // where the TMA kernel serves, the register kernel and the TMA kernel with paged_decode_reduce's block-per-head merge
    // alternate with the default (TMA, a warp per head merging; 3 rounds) for the comparison. Each is timed twice:
    // launched one by one from here (what the figures before e310e09 were: the gaps between launches count) and replayed
    // from a CUDA graph of one launch per layer (as the engine's decode steps run).
    var variants = tma ? new[] { (Tma: false, Warp: true), (Tma: true, Warp: false), (Tma: true, Warp: true) } : new[] { (Tma: false, Warp: true) };
    bool warpBefore = attention.UseWarpSplitMerge;
    for (int round = 0; round < (tma ? 3 : 1); round++)
        foreach (var (useTma, warp) in variants)
        {
            attention.UseTmaDecode = useTma;
            attention.UseWarpSplitMerge = warp;
            // each launch reads the next layer's pages, as a decode step does: one layer of one sequence at 8K (33.5 MB)
            // fits the L2 of an H100 or H200, so repeating one layer would time the cache for the single-sequence cases
            int layer = 0;
            void Launch(CudaStream st) => attention.Decode(st, q, seqs, heads, runner.Pool, layout, layer++ % layout.Layers, tables, stride, lens, context, 1f / MathF.Sqrt(d), ws, o);
            double ms = Time(20, () => Launch(stream));
            layer = 0;
            using var graph = CudaGraph.Capture(stream, st => { for (int l = 0; l < layout.Layers; l++) Launch(st); });
            double graphMs = Time(5, () => graph.Launch(stream)) / layout.Layers;
            double tbs = bytes / (ms * 1e-3) / 1e12, graphTbs = bytes / (graphMs * 1e-3) / 1e12;
            string kernel = useTma ? warp ? "TMA kernel" : "TMA kernel, block-per-head merge" : "register kernel";
            string tag = useTma ? warp ? "tma" : "tma_block_reduce" : "register";
            if (useTma == tmaByDefault && warp == warpBefore)
            {
                results[$"decode_attention_{seqs}x{context}_tb_per_s"] = tbs; // the last round's
                results[$"decode_attention_{seqs}x{context}_fraction_of_3tbs"] = tbs / 3.0;
                results[$"decode_attention_{seqs}x{context}_graph_tb_per_s"] = graphTbs;
                results[$"decode_attention_{seqs}x{context}_graph_fraction_of_3tbs"] = graphTbs / 3.0;
            }
            else
            {
                results[$"decode_attention_{seqs}x{context}_{tag}_kernel_tb_per_s"] = tbs;
                results[$"decode_attention_{seqs}x{context}_{tag}_kernel_graph_tb_per_s"] = graphTbs;
            }
            Console.WriteLine($"decode attention {seqs} x {context} ({kernel}): launched {ms * 1000:F1} µs, {tbs:F2} TB/s ({tbs / 3.0:P0} of 3.0 TB/s); " +
                $"graph {graphMs * 1000:F1} µs, {graphTbs:F2} TB/s ({graphTbs / 3.0:P0})");
        }
    attention.UseWarpSplitMerge = warpBefore;
    attention.UseTmaDecode = tmaByDefault;
    // the warp-per-head merge with 1 and 4 warps per block (the default picks 1 up to 512 (sequence, head) rows), graph
    // replay, 2 rounds
    if (attention.DecodeUsesWarpReduce(d, ws.Span.Pointer))
        for (int round = 0; round < 2; round++)
            foreach (int warps in new[] { 1, 4 })
            {
                attention.DecodeReduceWarps = warps;
                int layer = 0;
                using var graph = CudaGraph.Capture(stream, st => { for (int l = 0; l < layout.Layers; l++) attention.Decode(st, q, seqs, heads, runner.Pool, layout, layer++ % layout.Layers, tables, stride, lens, context, 1f / MathF.Sqrt(d), ws, o); });
                double graphMs = Time(5, () => graph.Launch(stream)) / layout.Layers;
                double graphTbs = bytes / (graphMs * 1e-3) / 1e12;
                results[$"decode_attention_{seqs}x{context}_reduce_{warps}_warps_graph_tb_per_s"] = graphTbs;
                Console.WriteLine($"decode attention {seqs} x {context}, merge with {warps} warp(s) per block: graph {graphMs * 1000:F1} µs, {graphTbs:F2} TB/s");
            }
    attention.DecodeReduceWarps = 0;
    attention.UseTmaDecode = true;
    attention.TmaDecodeMaxPairs = maxPairs;
}
// A decode graph's grid covers its context bucket: one sequence at shortCtx in a graph of the 2 x shortCtx bucket that
// was captured at shortCtx / 2 + 4 tokens. Balanced splits (the default) cut the keys evenly over the bucket's grid;
// fixed ones keep the split size chosen at the capture (more than one wave once the sequence grew). 3 rounds.
if (attention.DecodeUsesTma(config.HeadDim, config.NumHeads / config.NumKvHeads, PageSize, 1, config.NumKvHeads))
{
    int heads = config.NumHeads, d = config.HeadDim, bucket = 2 * shortCtx, stride = bucket / PageSize, captured = shortCtx / 2 + 4;
    using var q = dev.Allocate<ushort>(heads * d);
    using var o = dev.Allocate<ushort>(heads * d);
    using var tables = dev.Allocate<int>(stride);
    tables.Upload(Pages(0, stride));
    using var lens = dev.Allocate<int>(1);
    lens.Upload([shortCtx]);
    using var ws = dev.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(1, heads, config.NumKvHeads, d, bucket, captured));
    ek.RandomInit(stream, q, 4, 1f, 0f);
    double bytes = (double)shortCtx * layout.TokenStride * 2 * sizeof(ushort);
    for (int round = 0; round < 3; round++)
        foreach (bool balanced in new[] { false, true })
        {
            attention.BalanceTmaSplits = balanced;
            int layer = 0;
            double ms = Time(20, () => attention.Decode(stream, q, 1, heads, runner.Pool, layout, layer++ % layout.Layers, tables, stride, lens, bucket, 1f / MathF.Sqrt(d), ws, o, captured));
            double tbs = bytes / (ms * 1e-3) / 1e12;
            results[$"decode_attention_1x{shortCtx}_in_{bucket}_bucket_{(balanced ? "balanced" : "fixed")}_splits_tb_per_s"] = tbs;
            Console.WriteLine($"decode attention 1 x {shortCtx} in a {bucket} graph captured at {captured} ({(balanced ? "balanced" : "fixed")} splits): {ms * 1000:F1} µs, {tbs:F2} TB/s");
        }
    attention.BalanceTmaSplits = true;
}
// The Qwen2-7B shape's heads (28 query heads on 4 KV heads: 7 per KV head), one sequence at shortCtx, on a pool of
// its own: the register kernel does not take 7 heads per KV head, so without the TMA kernel the simple one runs.
{
    var qLayout = new KvLayout(PageSize, Layers: 1, KvHeads: 4, HeadDim: 128);
    int heads = 28, d = 128, ctx = shortCtx, stride = ctx / PageSize + 1;
    using var pool = dev.Allocate<ushort>(stride * qLayout.PageStride);
    using var q = dev.Allocate<ushort>(heads * d);
    using var o = dev.Allocate<ushort>(heads * d);
    using var tables = dev.Allocate<int>(stride);
    tables.Upload(Pages(0, stride));
    using var lens = dev.Allocate<int>(1);
    lens.Upload([ctx]);
    using var ws = dev.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(1, heads, qLayout.KvHeads, d, ctx));
    ek.RandomInit(stream, pool, 9, 1f, 0f);
    ek.RandomInit(stream, q, 10, 1f, 0f);
    double bytes = (double)ctx * qLayout.TokenStride * 2 * sizeof(ushort);
    bool tma = attention.DecodeUsesTma(d, heads / qLayout.KvHeads, PageSize, 1, qLayout.KvHeads);
    for (int round = 0; round < (tma ? 3 : 1); round++)
        foreach (bool useTma in tma ? new[] { false, true } : new[] { false })
        {
            attention.UseTmaDecode = useTma;
            double ms = Time(20, () => attention.Decode(stream, q, 1, heads, pool, qLayout, 0, tables, stride, lens, ctx, 1f / MathF.Sqrt(d), ws, o));
            double tbs = bytes / (ms * 1e-3) / 1e12;
            results[$"decode_attention_group7_1x{ctx}_{(useTma ? "tma" : "simple")}_kernel_tb_per_s"] = tbs;
            Console.WriteLine($"decode attention, 7 heads per KV head, 1 x {ctx} ({(useTma ? "TMA" : "simple")} kernel): {ms * 1000:F1} µs, {tbs:F2} TB/s");
        }
    attention.UseTmaDecode = true;
}
});
// What programmatic dependent launch and the norms folded into the decode products are worth: decode after shortCtx
// with each turned off (graphs on, as in the engine).
Case("decode without programmatic launch or folded kernels", () =>
{
    foreach (var (name, set) in new (string, Action<bool>)[] { ("programmatic_launch", v => runner.ProgrammaticLaunch = v), ("folded_norms", v => runner.FoldNorms = v) })
    {
        bool was = name == "programmatic_launch" ? runner.ProgrammaticLaunch : runner.FoldNorms;
        set(!was);
        try
        {
            var (token, _) = Prefill(shortCtx);
            double dms = Decode(shortCtx, token);
            results[$"{(was ? "no" : "with")}_{name}_decode_after_{shortCtx}_ms_per_token"] = dms;
            Console.WriteLine($"{(was ? "without" : "with")} {name.Replace('_', ' ')}: decode after {shortCtx} {dms:F2} ms/token");
        }
        finally { set(was); }
    }
});
// The decode step's weight products over 8 layers of random weights (3.5 GB, far past the 50 MB L2): the qkv product
// (with the input norm), o (with the residual add), gate/up with SwiGLU (with the norm), down (with the residual add).
const int ProductLayers = 8;
int hidden = config.HiddenSize, inter = config.IntermediateSize, qkvWidth = (config.NumHeads + 2 * config.NumKvHeads) * config.HeadDim;
string[] productNames = ["qkv", "o", "gate_up", "down"];
double[] productBytes = [2.0 * qkvWidth * hidden, 2.0 * hidden * hidden, 4.0 * inter * hidden, 2.0 * hidden * inter];
void WithDecodeProducts(Action<Action<CudaStream, GemvKernels, int>> body)
{
    var bufs = new List<DeviceBuffer<ushort>>();
    DeviceBuffer<ushort> Buf(long n, ulong seed) { var b = dev.Allocate<ushort>(n); ek.RandomInit(stream, b, seed, 0.02f, 0f); bufs.Add(b); return b; }
    try
    {
        var ws = Enumerable.Range(0, ProductLayers).Select(l => (Qkv: Buf((long)qkvWidth * hidden, 50 + (ulong)l), O: Buf((long)hidden * hidden, 60 + (ulong)l),
            Gu: Buf(2L * inter * hidden, 70 + (ulong)l), Down: Buf((long)hidden * inter, 80 + (ulong)l))).ToArray();
        var norm = Buf(hidden, 90);
        var x = Buf(hidden, 91);
        var qkv = Buf(qkvWidth, 92);
        var act = Buf(inter, 93);
        // product p (0..3; -1: all four) of every layer
        body((st, gemv, product) =>
        {
            foreach (var w in ws)
            {
                if (product is -1 or 0) gemv.Matmul(st, x, w.Qkv, qkv, 1, hidden, qkvWidth, norm: norm, eps: 1e-5f);
                if (product is -1 or 1) gemv.Matmul(st, qkv.Span.Slice(0, hidden), w.O, x, 1, hidden, hidden, residual: x);
                if (product is -1 or 2) gemv.SwiGlu(st, x, w.Gu, act, 1, hidden, inter, norm: norm, eps: 1e-5f);
                if (product is -1 or 3) gemv.Matmul(st, act, w.Down, x, 1, inter, hidden, residual: x);
            }
        });
    }
    finally { stream.Synchronize(); foreach (var b in bufs) b.Dispose(); }
}
// The chain of all four as one CUDA graph: how close the chain of gemv.cu launches gets to the memory bandwidth, with
// and without programmatic launch. What a decode step takes beyond this (per layer) is attention and launch gaps.
Case("decode products chain", () => WithDecodeProducts(run =>
{
    var gemv = new GemvKernels(compiler);
    double bytes = ProductLayers * productBytes.Sum();
    bool before = stream.ProgrammaticLaunch;
    foreach (bool pdl in new[] { true, false })
    {
        stream.ProgrammaticLaunch = pdl;
        using var graph = CudaGraph.Capture(stream, st => run(st, gemv, -1));
        double ms = Time(10, () => graph.Launch(stream));
        double eager = Time(10, () => run(stream, gemv, -1));
        string tag = pdl ? "programmatic" : "plain";
        results[$"decode_products_chain_{tag}_tb_per_s"] = bytes / (ms * 1e-3) / 1e12;
        results[$"decode_products_chain_{tag}_eager_tb_per_s"] = bytes / (eager * 1e-3) / 1e12;
        Console.WriteLine($"decode products, {ProductLayers} layers ({bytes / 1e9:F2} GB), {tag} launches: graph {ms * 1000 / ProductLayers:F1} us per layer " +
            $"({bytes / (ms * 1e-3) / 1e12:F2} TB/s), eager {eager * 1000 / ProductLayers:F1} us per layer ({bytes / (eager * 1e-3) / 1e12:F2} TB/s)");
    }
    stream.ProgrammaticLaunch = before;
}));
// Optional (--only "gemv configurations"): each product alone (8 layers in one graph, programmatic launch) for
// gemv.cu's columns per warp / warps per block / pieces per step, to choose a configuration per product shape.
OptionalCase("gemv configurations", () => WithDecodeProducts(run =>
{
    (int Cols, int Warps, int Step)[] configs = [(2, 8, 4), (2, 8, 8), (2, 8, 16), (2, 4, 8), (2, 4, 16), (2, 16, 4), (1, 8, 8), (1, 8, 16), (1, 16, 8), (4, 8, 4)];
    foreach (var c in configs)
    {
        var gemv = new GemvKernels(compiler, c.Cols, c.Warps, c.Step);
        var line = new List<string>();
        for (int product = -1; product < 4; product++)
        {
            using var graph = CudaGraph.Capture(stream, st => run(st, gemv, product));
            double ms = Time(10, () => graph.Launch(stream));
            double bytes = ProductLayers * (product < 0 ? productBytes.Sum() : productBytes[product]);
            string name = product < 0 ? "chain" : productNames[product];
            results[$"gemv_{c.Cols}x{c.Warps}x{c.Step}_{name}_tb_per_s"] = bytes / (ms * 1e-3) / 1e12;
            line.Add($"{name} {ms * 1000 / ProductLayers:F1} us ({bytes / (ms * 1e-3) / 1e12:F2} TB/s)");
        }
        Console.WriteLine($"gemv {c.Cols} columns x {c.Warps} warps x {c.Step} pieces: {string.Join(", ", line)}");
    }
}));
// The decode cases above replay steps from CUDA graphs (the engine's default); the same without them.
Case("decode without graphs", () =>
{
    runner.UseDecodeGraphs = false;
    try
    {
        var (token, _) = Prefill(shortCtx);
        double dms = Decode(shortCtx, token);
        results[$"eager_decode_after_{shortCtx}_ms_per_token"] = dms;
        double step = SessionsStepMs(98);
        results[$"eager_sessions_{sessions}_at_{shortCtx}_tokens_per_s"] = sessions * 1000.0 / step;
        Console.WriteLine($"without CUDA graphs: decode after {shortCtx} {dms:F2} ms/token; {sessions} sessions {sessions * 1000.0 / step:F0} tokens/s");
    }
    finally { runner.UseDecodeGraphs = true; }
});
Sample();
var (_, total) = dev.MemoryInfo();
results["peak_device_memory_gb"] = (total - minFree) / 1e9;
results["weights_gb"] = weights.Bytes / 1e9;
results["kv_pool_gb"] = (double)runner.KvPages * layout.PageStride * 2 / 1e9;

Console.WriteLine();
Console.WriteLine($"{"metric",-44} {"value",12}");
foreach (var (k, v) in results.Where(r => r.Value is double))
    Console.WriteLine($"{k,-44} {(double)v,12:F2}");
results["errors"] = errors;
if (outPath != null)
{
    File.WriteAllText(outPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"wrote {outPath}");
}
return errors.Count == 0 ? 0 : 1;

// One measurement: a failure is recorded and printed, and the remaining cases still run.
void Case(string name, Action body)
{
    if (skip.Contains(name) || (only.Length > 0 && !only.Contains(name))) { Console.WriteLine($"{name}: skipped ({(skip.Contains(name) ? "--skip" : "--only")})"); return; }
    try { body(); }
    catch (Exception e)
    {
        errors[name] = $"{e.GetType().Name}: {e.Message}";
        Console.WriteLine($"{name}: FAILED {e.GetType().Name}: {e.Message}");
        try { stream.Synchronize(); } catch (Exception) { /* a faulted context fails the next cases too, each recorded */ }
    }
}

// A case that runs only when --only names it.
void OptionalCase(string name, Action body)
{
    if (only.Contains(name)) Case(name, body);
}

static double Median(List<double> v)
{
    v.Sort();
    return v.Count == 0 ? double.NaN : v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
}

int Int(string name, int fallback) => Str(name) is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : fallback;

string? Str(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

// The bench's reference product, y (8192, 14336) = x (8192, 4096) w^T in bf16 (the Llama-3-8B MLP's shape at an 8K
// chunk): operands drawn on the device (x in [-1, 1], w in [-0.02, 0.02]), on a cuBLASLt instance of its own.
sealed class BenchProduct : IDisposable
{
    public const int M = 8192, K = 4096, N = 14336;
    private readonly CudaStream _stream;
    private readonly DeviceBuffer<ushort> _x, _w, _y;

    public BenchProduct(CudaDevice dev, EngineKernels ek, CudaStream stream)
    {
        _stream = stream;
        Matmul = new CublasLtMatmul(dev);
        _x = dev.Allocate<ushort>((long)M * K);
        _w = dev.Allocate<ushort>((long)N * K);
        _y = dev.Allocate<ushort>((long)M * N);
        ek.RandomInit(stream, _x, 1, 1f, 0f);
        ek.RandomInit(stream, _w, 2, 0.02f, 0f);
    }

    public CublasLtMatmul Matmul { get; }
    public double Flops => 2.0 * M * N * K;
    public void Run() => Matmul.Bf16(_stream, _x, _w, _y, M, K, N);

    public void Dispose()
    {
        _stream.Synchronize();
        _x.Dispose();
        _w.Dispose();
        _y.Dispose();
        Matmul.Dispose();
    }
}
