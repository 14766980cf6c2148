using Actors.Engine.Model;

namespace Actors.Benchmarks;

/// <summary>
/// Seeded random weights under the Hugging Face names of a Llama-family model, made on demand: a model of a
/// real shape without a multi-gigabyte download. Values are N(0, 0.02)-like (uniform of the same variance);
/// norms are 1. Only speed is measured with them.
/// </summary>
internal sealed class RandomWeights : IWeightSource
{
    private readonly Dictionary<string, long[]> _shapes = new();
    private readonly int _seed;

    public RandomWeights(ModelConfig c, int seed)
    {
        _seed = seed;
        long h = c.HiddenSize, q = (long)c.NumHeads * c.HeadDim, kv = (long)c.NumKvHeads * c.HeadDim, f = c.IntermediateSize;
        _shapes["model.embed_tokens.weight"] = [c.VocabSize, h];
        _shapes["model.norm.weight"] = [h];
        if (!c.TieWordEmbeddings) _shapes["lm_head.weight"] = [c.VocabSize, h];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            _shapes[p + "input_layernorm.weight"] = [h];
            _shapes[p + "post_attention_layernorm.weight"] = [h];
            _shapes[p + "self_attn.q_proj.weight"] = [q, h];
            _shapes[p + "self_attn.k_proj.weight"] = [kv, h];
            _shapes[p + "self_attn.v_proj.weight"] = [kv, h];
            _shapes[p + "self_attn.o_proj.weight"] = [h, q];
            if (c.AttentionBias)
            {
                _shapes[p + "self_attn.q_proj.bias"] = [q];
                _shapes[p + "self_attn.k_proj.bias"] = [kv];
                _shapes[p + "self_attn.v_proj.bias"] = [kv];
            }
            if (c.QkNorm)
            {
                _shapes[p + "self_attn.q_norm.weight"] = [c.HeadDim];
                _shapes[p + "self_attn.k_norm.weight"] = [c.HeadDim];
            }
            _shapes[p + "mlp.gate_proj.weight"] = [f, h];
            _shapes[p + "mlp.up_proj.weight"] = [f, h];
            _shapes[p + "mlp.down_proj.weight"] = [h, f];
        }
    }

    public IEnumerable<string> Names => _shapes.Keys;
    public bool Contains(string name) => _shapes.ContainsKey(name);
    public IReadOnlyList<long> Shape(string name) => _shapes[name];

    public float[] ReadFloat32(string name, params long[] expectedShape)
    {
        var shape = _shapes.TryGetValue(name, out var s) ? s : throw new KeyNotFoundException(name);
        if (expectedShape.Length > 0 && !shape.SequenceEqual(expectedShape))
            throw new ArgumentException($"{name}: shape [{string.Join(",", shape)}] != [{string.Join(",", expectedShape)}]");
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var data = new float[n];
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) { Array.Fill(data, 1f); return data; }
        // SplitMix64 per tensor: deterministic, fast, seeded by the tensor's name.
        ulong state = (ulong)_seed * 0x9E3779B97F4A7C15UL ^ (ulong)name.GetHashCode(StringComparison.Ordinal);
        const float scale = 0.0346f; // uniform(-a, a) with a = 0.02 * sqrt(3)
        for (long i = 0; i < n; i++)
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            data[i] = ((z >> 40) * (1f / (1 << 24)) * 2f - 1f) * scale;
        }
        return data;
    }

    public void Dispose() { }
}
