using Actors.Engine.Model;

namespace Actors.Engine.Tests.Runtime;

/// <summary>Named f32 tensors in memory, with the shape checks IWeightSource promises.</summary>
internal sealed class InMemoryWeights(Dictionary<string, (long[] Shape, float[] Data)> tensors) : IWeightSource
{
    public IEnumerable<string> Names => tensors.Keys;
    public bool Contains(string name) => tensors.ContainsKey(name);
    public IReadOnlyList<long> Shape(string name) => tensors[name].Shape;
    public bool Disposed { get; private set; }

    public float[] ReadFloat32(string name, params long[] expectedShape)
    {
        if (!tensors.TryGetValue(name, out var t)) throw new ModelFormatException("memory", name, "missing tensor");
        if (!t.Shape.SequenceEqual(expectedShape))
            throw new ModelFormatException("memory", name, $"shape [{string.Join(",", t.Shape)}], expected [{string.Join(",", expectedShape)}]");
        return (float[])t.Data.Clone();
    }

    public float[] Get(string name) => tensors[name].Data;

    public void Dispose() => Disposed = true;
}

/// <summary>Tiny models of each family with seeded random weights.</summary>
internal static class TestModels
{
    public static ModelConfig Llama => new()
    {
        ModelType = "llama", Family = ModelFamily.Llama, HiddenSize = 48, IntermediateSize = 96, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 12, VocabSize = 97, RmsNormEps = 1e-5f, RopeTheta = 10000,
        MaxPositionEmbeddings = 128, EosTokenIds = [96],
    };

    public static ModelConfig Qwen2 => new()
    {
        ModelType = "qwen2", Family = ModelFamily.Qwen2, HiddenSize = 32, IntermediateSize = 64, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 97, RmsNormEps = 1e-6f, RopeTheta = 1_000_000,
        MaxPositionEmbeddings = 128, AttentionBias = true, TieWordEmbeddings = true,
    };

    public static ModelConfig Qwen3 => new()
    {
        ModelType = "qwen3", Family = ModelFamily.Qwen3, HiddenSize = 32, IntermediateSize = 80, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 97, RmsNormEps = 1e-6f, RopeTheta = 1_000_000,
        MaxPositionEmbeddings = 128, QkNorm = true,
    };

    public static TheoryData<string> Families => new("llama", "qwen2", "qwen3");

    public static ModelConfig ByName(string name) => name switch
    {
        "llama" => Llama,
        "qwen2" => Qwen2,
        "qwen3" => Qwen3,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    public static InMemoryWeights Weights(ModelConfig c, int seed = 1234)
    {
        var rng = new Random(seed);
        var t = new Dictionary<string, (long[], float[])>();
        void Add(string name, float scale, float offset, params long[] shape)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var data = new float[n];
            for (long i = 0; i < n; i++) data[i] = offset + scale * (float)(rng.NextDouble() * 2 - 1);
            t[name] = (shape, data);
        }
        void Matrix(string name, long rows, long cols) => Add(name, 1.5f / MathF.Sqrt(cols), 0, rows, cols);
        int h = c.HiddenSize, d = c.HeadDim, q = c.NumHeads * d, kv = c.NumKvHeads * d, inter = c.IntermediateSize;
        Add("model.embed_tokens.weight", 1f, 0, c.VocabSize, h);
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            Add(p + "input_layernorm.weight", 0.2f, 1, h);
            Matrix(p + "self_attn.q_proj.weight", q, h);
            Matrix(p + "self_attn.k_proj.weight", kv, h);
            Matrix(p + "self_attn.v_proj.weight", kv, h);
            Matrix(p + "self_attn.o_proj.weight", h, q);
            if (c.AttentionBias)
            {
                Add(p + "self_attn.q_proj.bias", 0.3f, 0, q);
                Add(p + "self_attn.k_proj.bias", 0.3f, 0, kv);
                Add(p + "self_attn.v_proj.bias", 0.3f, 0, kv);
            }
            if (c.QkNorm)
            {
                Add(p + "self_attn.q_norm.weight", 0.3f, 1, d);
                Add(p + "self_attn.k_norm.weight", 0.3f, 1, d);
            }
            Add(p + "post_attention_layernorm.weight", 0.2f, 1, h);
            Matrix(p + "mlp.gate_proj.weight", inter, h);
            Matrix(p + "mlp.up_proj.weight", inter, h);
            Matrix(p + "mlp.down_proj.weight", h, inter);
        }
        Add("model.norm.weight", 0.2f, 1, h);
        if (!c.TieWordEmbeddings) Matrix("lm_head.weight", c.VocabSize, h);
        return new InMemoryWeights(t);
    }

    public static int[] Tokens(int count, int seed, int vocab = 97)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }
}
