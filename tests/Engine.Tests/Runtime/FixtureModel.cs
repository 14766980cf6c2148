using System.Buffers.Binary;
using System.Text.Json;
using Actors.Engine.Model;

namespace Actors.Engine.Tests.Runtime;

/// <summary>
/// Test-only reader of a tiny Hugging Face model directory (config.json + safetensors, single or sharded; f32, f16,
/// bf16), just enough to run the parity fixtures made by tools/reference/make_fixtures.py against the engine.
/// The product's own loader lives elsewhere; this one keeps the engine's parity test independent of it.
/// </summary>
internal static class FixtureModel
{
    public static string? Find(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "models", name);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        return null;
    }

    public static ModelConfig Config(string dir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json")));
        var r = doc.RootElement;
        int Int(string n) => r.GetProperty(n).GetInt32();
        int? OptInt(JsonElement e, string n) => e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        double? OptDouble(JsonElement e, string n) => e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        bool Bool(string n) => r.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.True;
        string type = r.GetProperty("model_type").GetString()!;
        int hidden = Int("hidden_size"), heads = Int("num_attention_heads");
        JsonElement rope = default;
        bool hasRope = (r.TryGetProperty("rope_parameters", out rope) || r.TryGetProperty("rope_scaling", out rope)) && rope.ValueKind == JsonValueKind.Object;
        double theta = OptDouble(r, "rope_theta") ?? (hasRope ? OptDouble(rope, "rope_theta") : null) ?? 10000;
        RopeScaling? scaling = null;
        if (hasRope)
        {
            string ropeType = (rope.TryGetProperty("rope_type", out var t) ? t.GetString() : rope.TryGetProperty("type", out t) ? t.GetString() : null) ?? "default";
            if (ropeType != "default")
                scaling = new RopeScaling(ropeType, OptDouble(rope, "factor") ?? 1, OptInt(rope, "original_max_position_embeddings"),
                    OptDouble(rope, "low_freq_factor"), OptDouble(rope, "high_freq_factor"), OptDouble(rope, "beta_fast"), OptDouble(rope, "beta_slow"),
                    OptDouble(rope, "attention_factor"), OptDouble(rope, "mscale"), OptDouble(rope, "mscale_all_dim"),
                    rope.TryGetProperty("truncate", out var tr) && tr.ValueKind is JsonValueKind.True or JsonValueKind.False ? tr.GetBoolean() : null);
        }
        return new ModelConfig
        {
            ModelType = type,
            Family = type switch { "qwen2" => ModelFamily.Qwen2, "qwen3" => ModelFamily.Qwen3, "mistral" => ModelFamily.Mistral, _ => ModelFamily.Llama },
            HiddenSize = hidden, IntermediateSize = Int("intermediate_size"), NumLayers = Int("num_hidden_layers"),
            NumHeads = heads, NumKvHeads = OptInt(r, "num_key_value_heads") ?? heads, HeadDim = OptInt(r, "head_dim") ?? hidden / heads,
            VocabSize = Int("vocab_size"), RmsNormEps = (float)r.GetProperty("rms_norm_eps").GetDouble(), RopeTheta = theta,
            MaxPositionEmbeddings = Int("max_position_embeddings"), TieWordEmbeddings = Bool("tie_word_embeddings"),
            AttentionBias = type == "qwen2" || Bool("attention_bias"), OutputBias = type != "qwen2" && Bool("attention_bias"),
            QkNorm = type == "qwen3", RopeScaling = scaling, Source = Path.Combine(dir, "config.json"),
            EosTokenIds = EosIds(dir, r),
        };
    }

    /// <summary>eos_token_id of generation_config.json, else of config.json (a number or a list).</summary>
    private static int[] EosIds(string dir, JsonElement config)
    {
        static int[]? Read(JsonElement e) =>
            !e.TryGetProperty("eos_token_id", out var v) ? null
            : v.ValueKind == JsonValueKind.Number ? [v.GetInt32()]
            : v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(x => x.GetInt32()).ToArray()
            : null;
        var path = Path.Combine(dir, "generation_config.json");
        if (File.Exists(path))
        {
            using var gen = JsonDocument.Parse(File.ReadAllText(path));
            if (Read(gen.RootElement) is { } ids) return ids;
        }
        return Read(config) ?? [];
    }

    public static IWeightSource Weights(string dir)
    {
        var files = File.Exists(Path.Combine(dir, "model.safetensors.index.json"))
            ? JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "model.safetensors.index.json"))).RootElement.GetProperty("weight_map")
                .EnumerateObject().Select(p => p.Value.GetString()!).Distinct()
            : ["model.safetensors"];
        var tensors = new Dictionary<string, (long[], float[])>();
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, file));
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
            using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
            foreach (var t in header.RootElement.EnumerateObject())
            {
                if (t.Name == "__metadata__") continue;
                var shape = t.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offsets = t.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var data = bytes.AsSpan((int)(8 + headerLength + offsets[0]), (int)(offsets[1] - offsets[0]));
                string dtype = t.Value.GetProperty("dtype").GetString()!;
                int width = dtype == "F32" ? 4 : 2;
                var values = new float[data.Length / width];
                for (int i = 0; i < values.Length; i++)
                    values[i] = dtype switch
                    {
                        "F32" => BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]),
                        "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(data[(2 * i)..]),
                        "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16),
                        _ => throw new NotSupportedException($"{file}: {t.Name}: dtype {dtype}"),
                    };
                tensors[t.Name] = (shape, values);
            }
        }
        return new InMemoryWeights(tensors);
    }
}
