using System.Text.Json;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Runtime;

/// <summary>
/// The engine against PyTorch/transformers: logits at every prompt position and the greedy continuation stored in
/// tests/fixtures/models/&lt;name&gt;/expected.json, loaded through the product's own readers (config.json,
/// safetensors single or sharded, f32/f16/bf16, generation_config.json).
/// </summary>
public class FixtureParityTests
{
    public static TheoryData<string> Names => new(
        "llama-default", "llama-linear", "llama-dynamic", "llama-yarn", "llama-llama3", "mistral", "qwen2", "qwen3",
        "llama-bf16", "llama-f16", "llama-sharded");

    [Theory]
    [MemberData(nameof(Names))]
    public async Task Engine_matches_transformers(string name)
    {
        var dir = FixtureModel.Find(name) ?? throw new DirectoryNotFoundException(
            $"tests/fixtures/models/{name} is missing; make it with tools/reference/make_fixtures.py");
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        var root = expected.RootElement;
        var prompt = root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var greedy = root.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var shape = root.GetProperty("logits_shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var raw = File.ReadAllBytes(Path.Combine(dir, root.GetProperty("logits_file").GetString()!));
        var reference = new float[raw.Length / 4];
        Buffer.BlockCopy(raw, 0, reference, 0, raw.Length);
        Assert.Equal(prompt.Length, shape[0]);
        Assert.Equal(shape[0] * shape[1], reference.Length);

        var config = ModelConfig.Load(Path.Combine(dir, "config.json"));
        var generation = GenerationConfig.Load(dir);
        // The prompts run past max_position_embeddings on purpose (so RoPE scaling matters): lift the limit.
        var options = new EngineOptions { Backend = Backend.Cpu, PageSize = 16, KvPages = 64, ContextLength = prompt.Length + greedy.Count + 1 };
        using var engine = new InferenceEngine(config, SafeTensorsModel.Open(dir), name, options);
        int v = shape[1];
        foreach (int chunk in new[] { prompt.Length, 16 })
        {
            var logits = engine.ComputeLogits(prompt, chunk);
            for (int t = 0; t < prompt.Length; t++)
            {
                var expectedRow = reference.AsSpan(t * v, v).ToArray().Select(x => (double)x).ToArray();
                EngineParityTests.AssertClose(logits.AsSpan(t * v, v), expectedRow, 1e-4, $"{name} chunk {chunk} position {t}");
            }
        }
        // transformers may end its continuation with an end-of-sequence id; the engine never yields stop ids.
        var stops = new HashSet<int>([.. generation.EosTokenIds, .. config.EosTokenIds]);
        int firstStop = greedy.FindIndex(stops.Contains);
        int maxNew = greedy.Count;
        if (firstStop >= 0) greedy = greedy.Take(firstStop).ToList();
        var got = new List<int>();
        await foreach (int token in engine.GenerateAsync(prompt, SamplingParams.Greedy(maxNew), stops, TestContext.Current.CancellationToken))
            got.Add(token);
        Assert.Equal(greedy, got);
    }
}
