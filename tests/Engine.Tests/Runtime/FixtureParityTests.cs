using System.Text.Json;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Runtime;

/// <summary>
/// The engine against PyTorch/transformers: logits at every prompt position and the greedy continuation stored in
/// tests/fixtures/models/&lt;name&gt;/expected.json. Skipped where the fixtures are not in the tree.
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
        var dir = FixtureModel.Find(name);
        if (dir is null) Assert.Skip($"tests/fixtures/models/{name} is not present");
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

        var config = FixtureModel.Config(dir);
        // The prompts run past max_position_embeddings on purpose (so RoPE scaling matters): lift the limit.
        var options = new EngineOptions { PageSize = 16, KvPages = 64, ContextLength = prompt.Length + greedy.Count + 1 };
        using var engine = new InferenceEngine(config, FixtureModel.Weights(dir), name, options);
        int v = shape[1];
        foreach (int chunk in new[] { prompt.Length, 16 })
        {
            var logits = engine.ComputeLogits(prompt, chunk);
            for (int t = 0; t < prompt.Length; t++)
            {
                var expectedRow = reference.AsSpan(t * v, v).ToArray().Select(x => (double)x).ToArray();
                EngineParityTests.AssertClose(logits.AsSpan(t * v, v), expectedRow, 1e-3, $"{name} chunk {chunk} position {t}");
            }
        }
        // transformers may end its continuation with an end-of-sequence id; the engine never yields stop ids.
        var stops = new HashSet<int>(config.EosTokenIds);
        int firstStop = greedy.FindIndex(stops.Contains);
        int maxNew = greedy.Count;
        if (firstStop >= 0) greedy = greedy.Take(firstStop).ToList();
        var got = new List<int>();
        await foreach (int token in engine.GenerateAsync(prompt, SamplingParams.Greedy(maxNew), stops, TestContext.Current.CancellationToken))
            got.Add(token);
        Assert.Equal(greedy, got);
    }
}

/// <summary>Checks the test-only fixture reader on a model directory written here, so the parity test can be trusted.</summary>
public class FixtureModelReaderTests
{
    [Fact]
    public void A_written_model_directory_reads_back_as_the_same_model()
    {
        var config = TestModels.Qwen2;
        var weights = TestModels.Weights(config);
        var dir = Directory.CreateTempSubdirectory("actors-fixture-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), """
                {"model_type":"qwen2","hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,
                 "num_key_value_heads":2,"vocab_size":97,"rms_norm_eps":1e-6,"max_position_embeddings":128,
                 "tie_word_embeddings":true,"rope_parameters":{"rope_type":"default","rope_theta":1000000.0},"eos_token_id":5}
                """);
            // Two shards with an index; one tensor stored as bf16 (values chosen exactly representable).
            var names = weights.Names.OrderBy(n => n).ToList();
            var bf16Name = "model.norm.weight";
            var exact = weights.Get(bf16Name).Select(x => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) & unchecked((int)0xFFFF0000))).ToArray();
            Array.Copy(exact, weights.Get(bf16Name), exact.Length);
            var shards = new[] { names.Where((_, i) => i % 2 == 0).ToList(), names.Where((_, i) => i % 2 == 1).ToList() };
            var map = new Dictionary<string, string>();
            for (int s = 0; s < 2; s++)
            {
                string file = $"model-0000{s + 1}-of-00002.safetensors";
                WriteSafetensors(Path.Combine(dir, file), shards[s].ToDictionary(n => n, n => (weights.Shape(n).ToArray(), weights.Get(n))), bf16Name);
                foreach (var n in shards[s]) map[n] = file;
            }
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));

            var read = FixtureModel.Config(dir);
            Assert.Equal(config with { Source = read.Source, EosTokenIds = read.EosTokenIds }, read);
            Assert.Equal([5], read.EosTokenIds);
            var loaded = FixtureModel.Weights(dir);
            foreach (var n in names) Assert.Equal(weights.Get(n), loaded.ReadFloat32(n, [.. weights.Shape(n)]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void WriteSafetensors(string path, Dictionary<string, (long[] Shape, float[] Data)> tensors, string bf16Name)
    {
        var header = new Dictionary<string, object>();
        var body = new MemoryStream();
        foreach (var (name, (shape, data)) in tensors)
        {
            long start = body.Position;
            bool bf16 = name == bf16Name;
            foreach (float x in data)
            {
                if (bf16) body.Write(BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(x) >> 16)));
                else body.Write(BitConverter.GetBytes(x));
            }
            header[name] = new { dtype = bf16 ? "BF16" : "F32", shape, data_offsets = new[] { start, body.Position } };
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((long)json.Length));
        f.Write(json);
        body.Position = 0;
        body.CopyTo(f);
    }
}
