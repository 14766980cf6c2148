using Actors.Engine.Model;
using Actors.Engine.Runtime;

namespace Actors.Engine.Tests.Runtime;

public class EngineParityTests
{
    // CPU explicitly: these tests hold the f32 path to 1e-4, which bf16 on a GPU box (Backend.Auto) would not meet.
    internal static InferenceEngine NewEngine(ModelConfig config, EngineOptions? options = null, int seed = 1234) =>
        new(config, TestModels.Weights(config, seed), "test/" + config.ModelType,
            (options ?? new EngineOptions { PageSize = 4, KvPages = 64 }) with { Backend = Backend.Cpu });

    internal static void AssertClose(ReadOnlySpan<float> actual, double[] expected, double relTol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxRef = expected.Max(Math.Abs), maxDiff = 0;
        for (int i = 0; i < expected.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i]));
        Assert.True(maxDiff <= relTol * Math.Max(maxRef, 1e-6), $"{what}: max |diff| {maxDiff:E3} vs max |ref| {maxRef:E3}");
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Logits_match_the_dense_reference_at_every_position(string family)
    {
        var config = TestModels.ByName(family);
        var tokens = TestModels.Tokens(21, seed: 7);
        var expected = new ReferenceForward(config, TestModels.Weights(config)).Logits(tokens);
        using var engine = NewEngine(config);
        var logits = engine.ComputeLogits(tokens, tokens.Length);
        int v = config.VocabSize;
        for (int t = 0; t < tokens.Length; t++)
            AssertClose(logits.AsSpan(t * v, v), expected[t], 1e-4, $"{family} position {t}");
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Chunked_prefill_equals_one_pass(string family)
    {
        var config = TestModels.ByName(family);
        var tokens = TestModels.Tokens(19, seed: 11);
        using var engine = NewEngine(config);
        var whole = engine.ComputeLogits(tokens, tokens.Length);
        foreach (int chunk in new[] { 1, 3, 7 })
        {
            var chunked = engine.ComputeLogits(tokens, chunk);
            for (int i = 0; i < whole.Length; i++)
                Assert.True(Math.Abs(whole[i] - chunked[i]) <= 1e-5 * (1 + Math.Abs(whole[i])), $"chunk {chunk}, index {i}: {chunked[i]} vs {whole[i]}");
        }
        Assert.Equal(engine.TotalPages, engine.Metrics.FreePages);
    }

    [Fact]
    public void A_different_model_gives_different_logits()
    {
        // Guards the parity test against a reference that would agree with anything.
        var config = TestModels.Llama;
        var tokens = TestModels.Tokens(9, seed: 3);
        var expected = new ReferenceForward(config, TestModels.Weights(config, seed: 99)).Logits(tokens);
        using var engine = NewEngine(config);
        var logits = engine.ComputeLogits(tokens, 4);
        int v = config.VocabSize;
        Assert.ThrowsAny<Exception>(() => AssertClose(logits.AsSpan((tokens.Length - 1) * v, v), expected[^1], 1e-4, "other weights"));
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public async Task Greedy_generation_equals_the_reference_greedy(string family)
    {
        var config = TestModels.ByName(family);
        var prompt = TestModels.Tokens(10, seed: 5);
        var expected = new ReferenceForward(config, TestModels.Weights(config)).Greedy(prompt, 12);
        using var engine = NewEngine(config);
        var got = await Collect(engine.GenerateAsync(prompt, Actors.Engine.Sampling.SamplingParams.Greedy(12), new HashSet<int>(), TestContext.Current.CancellationToken));
        Assert.Equal(expected, got);
    }

    [Fact]
    public void Incremental_decode_logits_equal_full_forward_logits()
    {
        // Decode one token at a time through the model's paged path and compare with a one-pass prefill.
        var config = TestModels.Qwen3;
        var weights = TestModels.Weights(config);
        var model = new Transformer(config, weights);
        var layout = model.KvLayout(4);
        var cache = new Actors.Engine.Paging.KvCache(layout, 16);
        var tokens = TestModels.Tokens(13, seed: 17);
        int v = config.VocabSize, prefill = 5;
        int[] pages = [3, 0, 9, 12]; // deliberately scattered pages
        var full = model.Forward([new ForwardChunk(tokens, 0, pages, tokens.Length, LogitsRows.All)], cache);
        model.Forward([new ForwardChunk(tokens.AsMemory(0, prefill), 0, pages, prefill, LogitsRows.Last)], cache);
        for (int pos = prefill; pos < tokens.Length; pos++)
        {
            var step = model.Forward([new ForwardChunk(tokens.AsMemory(pos, 1), pos, pages, pos + 1, LogitsRows.Last)], cache);
            for (int j = 0; j < v; j++)
                Assert.True(Math.Abs(step[j] - full[pos * v + j]) <= 1e-5 * (1 + Math.Abs(full[pos * v + j])), $"position {pos}, token {j}");
        }
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Trimmed_last_layer_gives_the_whole_layers_logits(string family)
    {
        // The steps of the CUDA test (chunks without logits, chunks over cached prefixes, decodes): the trimmed steps
        // write the last layer's K and V that the later steps read.
        var config = Cuda.FusedQkvCudaTests.Config(family, "default") with { MaxPositionEmbeddings = 64 };
        var steps = new List<float[]>[2];
        var trimmed = new long[2];
        for (int path = 0; path < 2; path++)
        {
            using var runner = new CpuModelRunner(config, TestModels.Weights(config), 5, _ => 40) { TrimLastLayer = path == 0 };
            steps[path] = Cuda.TrimLastLayerCudaTests.Steps(runner);
            trimmed[path] = runner.TrimmedSteps;
        }
        Assert.Equal(4, trimmed[0]);
        Assert.Equal(0, trimmed[1]);
        // f32 throughout, and each row's products and attention do not depend on the other rows of the step
        Cuda.TrimLastLayerCudaTests.AssertSameLogits(steps[0], steps[1], config.VocabSize, 1e-5, family);
    }

    internal static async Task<List<int>> Collect(IAsyncEnumerable<int> stream)
    {
        var list = new List<int>();
        await foreach (int t in stream) list.Add(t);
        return list;
    }
}
