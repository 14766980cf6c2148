using Actors.Engine.Model;

namespace Actors.Engine.Tests.Model;

/// <summary>
/// Reads every model directory under tests/fixtures/models (made by tools/reference/make_fixtures.py with
/// transformers) and checks that config.json, the weights and generation_config.json agree with each other:
/// the shapes a Llama-family model of that config must have, and the biases / norms its family implies.
/// Skipped while the fixtures are not in the tree.
/// </summary>
public class FixtureModelsTests
{
    static string? FixtureModelsDirectory()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
            {
                string models = Path.Combine(d.FullName, "tests", "fixtures", "models");
                return Directory.Exists(models) ? models : null;
            }
        return null;
    }

    [Fact]
    public void Every_fixture_model_reads_consistently()
    {
        string? root = FixtureModelsDirectory();
        Assert.True(root is not null, "tests/fixtures/models is missing; make it with tools/reference/make_fixtures.py");
        var dirs = Directory.GetDirectories(root!);
        Assert.NotEmpty(dirs);
        foreach (string dir in dirs) CheckModelDirectory(dir);
    }

    static void CheckModelDirectory(string dir)
    {
        var c = ModelConfig.Load(Path.Combine(dir, "config.json"));
        var g = GenerationConfig.Load(dir);
        Assert.True(g.EosTokenIds.Count > 0 || c.EosTokenIds.Count > 0, $"{dir}: no eos token anywhere");
        using var w = SafeTensorsModel.Open(dir);
        long h = c.HiddenSize, q = (long)c.NumHeads * c.HeadDim, kv = (long)c.NumKvHeads * c.HeadDim;
        w.ReadFloat32("model.embed_tokens.weight", c.VocabSize, h);
        w.ReadFloat32("model.norm.weight", h);
        // tied models normally omit lm_head (save_pretrained drops tied copies); untied ones must have it
        if (!c.TieWordEmbeddings) w.ReadFloat32("lm_head.weight", c.VocabSize, h);
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            w.ReadFloat32(p + "self_attn.q_proj.weight", q, h);
            w.ReadFloat32(p + "self_attn.k_proj.weight", kv, h);
            w.ReadFloat32(p + "self_attn.v_proj.weight", kv, h);
            w.ReadFloat32(p + "self_attn.o_proj.weight", h, q);
            w.ReadFloat32(p + "mlp.gate_proj.weight", c.IntermediateSize, h);
            w.ReadFloat32(p + "mlp.up_proj.weight", c.IntermediateSize, h);
            w.ReadFloat32(p + "mlp.down_proj.weight", h, c.IntermediateSize);
            w.ReadFloat32(p + "input_layernorm.weight", h);
            w.ReadFloat32(p + "post_attention_layernorm.weight", h);
            Assert.Equal(c.AttentionBias, w.Contains(p + "self_attn.q_proj.bias"));
            if (c.AttentionBias) w.ReadFloat32(p + "self_attn.k_proj.bias", kv);
            Assert.Equal(c.OutputBias, w.Contains(p + "self_attn.o_proj.bias"));
            Assert.Equal(c.QkNorm, w.Contains(p + "self_attn.q_norm.weight"));
            if (c.QkNorm) w.ReadFloat32(p + "self_attn.k_norm.weight", c.HeadDim);
        }
        var (inv, att) = RopeFrequencies.Compute(c, 128);
        Assert.Equal(c.HeadDim / 2, inv.Length);
        Assert.True(att > 0);
    }

    /// <summary>The same check on random-weight directories made here, so the checker itself is exercised.</summary>
    [Theory]
    [InlineData("qwen2", true)]
    [InlineData("qwen3", false)]
    [InlineData("llama", false)]
    public void Checker_accepts_a_consistent_synthetic_model_and_rejects_a_broken_one(string modelType, bool tied)
    {
        using var tmp = new TempDir();
        int hidden = 16, heads = 4, kvHeads = 2, headDim = modelType == "qwen3" ? 8 : 4, inter = 24, vocab = 32, layers = 2;
        File.WriteAllText(tmp.File("config.json"),
            $"{{\"model_type\":\"{modelType}\",\"hidden_size\":{hidden},\"intermediate_size\":{inter},\"num_hidden_layers\":{layers}," +
            $"\"num_attention_heads\":{heads},\"num_key_value_heads\":{kvHeads},\"head_dim\":{headDim},\"vocab_size\":{vocab}," +
            $"\"rms_norm_eps\":1e-6,\"max_position_embeddings\":64,\"tie_word_embeddings\":{(tied ? "true" : "false")},\"eos_token_id\":2}}");
        var rng = new Random(5);
        var tensors = new List<(string, SafeTensorsDType, long[], float[])>();
        void Add(string name, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)rng.NextDouble() - 0.5f;
            tensors.Add((name, SafeTensorsDType.BF16, shape, data));
        }
        int q = heads * headDim, kv = kvHeads * headDim;
        Add("model.embed_tokens.weight", vocab, hidden);
        Add("model.norm.weight", hidden);
        if (!tied) Add("lm_head.weight", vocab, hidden);
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "self_attn.q_proj.weight", q, hidden);
            Add(p + "self_attn.k_proj.weight", kv, hidden);
            Add(p + "self_attn.v_proj.weight", kv, hidden);
            Add(p + "self_attn.o_proj.weight", hidden, q);
            Add(p + "mlp.gate_proj.weight", inter, hidden);
            Add(p + "mlp.up_proj.weight", inter, hidden);
            Add(p + "mlp.down_proj.weight", hidden, inter);
            Add(p + "input_layernorm.weight", hidden);
            Add(p + "post_attention_layernorm.weight", hidden);
            if (modelType == "qwen2")
            {
                Add(p + "self_attn.q_proj.bias", q);
                Add(p + "self_attn.k_proj.bias", kv);
                Add(p + "self_attn.v_proj.bias", kv);
            }
            if (modelType == "qwen3")
            {
                Add(p + "self_attn.q_norm.weight", headDim);
                Add(p + "self_attn.k_norm.weight", headDim);
            }
        }
        SafeTensorsWriter.Write(tmp.File("model.safetensors"), tensors);
        CheckModelDirectory(tmp.Path);

        // Drop one layer's k_proj: the check must notice.
        SafeTensorsWriter.Write(tmp.File("model.safetensors"), tensors.Where(t => t.Item1 != "model.layers.1.self_attn.k_proj.weight"));
        var e = Assert.Throws<ModelFormatException>(() => CheckModelDirectory(tmp.Path));
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", e.Message);
    }
}
