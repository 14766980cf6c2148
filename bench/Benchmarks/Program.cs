using System.Diagnostics;
using Actors.Benchmarks;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

// CPU benchmark: prefill and decode tokens/s of a random-weight model of Qwen2.5-0.5B's real shape.
// Usage: actors-bench [--prompt N] [--decode N] [--chunk N] [--repeat N]
int promptTokens = Arg("--prompt", 256), decodeTokens = Arg("--decode", 32), chunk = Arg("--chunk", 256), repeat = Arg("--repeat", 2);

var config = new ModelConfig
{
    ModelType = "qwen2", Family = ModelFamily.Qwen2, HiddenSize = 896, IntermediateSize = 4864, NumLayers = 24,
    NumHeads = 14, NumKvHeads = 2, HeadDim = 64, VocabSize = 151936, RmsNormEps = 1e-6f, RopeTheta = 1000000,
    MaxPositionEmbeddings = 32768, TieWordEmbeddings = true, AttentionBias = true, Source = "Qwen2.5-0.5B shape",
};
Console.WriteLine($"model: Qwen2.5-0.5B shape (hidden {config.HiddenSize}, {config.NumLayers} layers, {config.NumHeads}/{config.NumKvHeads} heads, vocab {config.VocabSize}), random f32 weights");
Console.WriteLine($"machine: {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
var load = Stopwatch.StartNew();
using var weights = new RandomWeights(config, seed: 7);
using var engine = new InferenceEngine(config, weights, "bench/qwen2.5-0.5b-shape",
    new EngineOptions { Backend = Backend.Cpu, PrefillChunkTokens = chunk, ContextLength = promptTokens + decodeTokens + 16 });
Console.WriteLine($"load: {load.Elapsed.TotalSeconds:F1} s");

var rng = new Random(11);
for (int r = 0; r < repeat; r++)
{
    var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(config.VocabSize)).ToArray();
    var sw = Stopwatch.StartNew();
    double firstMs = 0;
    int n = 0;
    await foreach (var _ in engine.GenerateAsync(prompt, SamplingParams.Greedy(decodeTokens + 1), new HashSet<int>()))
    {
        if (n++ == 0) firstMs = sw.Elapsed.TotalMilliseconds;
    }
    double totalMs = sw.Elapsed.TotalMilliseconds;
    double prefillTps = promptTokens / (firstMs / 1000);
    double decodeTps = (n - 1) / ((totalMs - firstMs) / 1000);
    Console.WriteLine($"run {r + 1}: prefill {promptTokens} tokens in {firstMs:F0} ms = {prefillTps:F1} tokens/s; decode {n - 1} tokens in {totalMs - firstMs:F0} ms = {decodeTps:F2} tokens/s");
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
}
