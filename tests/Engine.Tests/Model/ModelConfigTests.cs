using Actors.Engine.Model;

namespace Actors.Engine.Tests.Model;

public class ModelConfigTests
{
    const string Src = "test/config.json";

    // Everything required, as a JSON body without braces, so tests can add or drop fields.
    static string Base(string modelType = "llama", string extra = "") =>
        "{" + $"\"model_type\":\"{modelType}\",\"hidden_size\":64,\"intermediate_size\":176,\"num_hidden_layers\":2," +
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":512,\"rms_norm_eps\":1e-5," +
        "\"max_position_embeddings\":64" + (extra.Length > 0 ? "," + extra : "") + "}";

    [Fact]
    public void Llama_defaults()
    {
        var c = ModelConfig.Parse(Base(), Src);
        Assert.Equal(ModelFamily.Llama, c.Family);
        Assert.Equal("llama", c.ModelType);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(176, c.IntermediateSize);
        Assert.Equal(2, c.NumLayers);
        Assert.Equal(4, c.NumHeads);
        Assert.Equal(2, c.NumKvHeads);
        Assert.Equal(16, c.HeadDim);
        Assert.Equal(512, c.VocabSize);
        Assert.Equal(1e-5f, c.RmsNormEps);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Equal(64, c.MaxPositionEmbeddings);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.False(c.OutputBias);
        Assert.False(c.QkNorm);
        Assert.Null(c.RopeScaling);
        Assert.Null(c.BosTokenId);
        Assert.Empty(c.EosTokenIds);
        Assert.Equal(Src, c.Source);
    }

    [Fact]
    public void Kv_heads_default_to_heads()
    {
        string json = Base().Replace("\"num_key_value_heads\":2,", "");
        Assert.Equal(4, ModelConfig.Parse(json, Src).NumKvHeads);
    }

    [Fact]
    public void Token_ids_int_or_list_and_flags()
    {
        var c = ModelConfig.Parse(Base(extra: "\"bos_token_id\":1,\"eos_token_id\":[2,7],\"tie_word_embeddings\":true,\"attention_bias\":true,\"rope_theta\":500000.0"), Src);
        Assert.Equal(1, c.BosTokenId);
        Assert.Equal([2, 7], c.EosTokenIds);
        Assert.True(c.TieWordEmbeddings);
        Assert.True(c.AttentionBias);
        Assert.True(c.OutputBias);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal([5], ModelConfig.Parse(Base(extra: "\"eos_token_id\":5"), Src).EosTokenIds);
    }

    [Fact]
    public void Qwen2_has_qkv_bias_without_o_bias_whatever_attention_bias_says()
    {
        var c = ModelConfig.Parse(Base("qwen2", "\"attention_bias\":false"), Src);
        Assert.Equal(ModelFamily.Qwen2, c.Family);
        Assert.True(c.AttentionBias);
        Assert.False(c.OutputBias);
        Assert.False(c.QkNorm);
    }

    [Fact]
    public void Qwen3_has_qk_norm_and_its_own_head_dim()
    {
        var c = ModelConfig.Parse(Base("qwen3", "\"head_dim\":32"), Src);
        Assert.Equal(ModelFamily.Qwen3, c.Family);
        Assert.True(c.QkNorm);
        Assert.Equal(32, c.HeadDim);
        Assert.False(c.AttentionBias);
        // Qwen3Config's default head_dim is 128, not hidden / heads
        Assert.Equal(128, ModelConfig.Parse(Base("qwen3"), Src).HeadDim);
    }

    [Fact]
    public void Mistral_has_no_biases()
    {
        var c = ModelConfig.Parse(Base("mistral", "\"attention_bias\":true"), Src);
        Assert.Equal(ModelFamily.Mistral, c.Family);
        Assert.False(c.AttentionBias);
        Assert.False(c.OutputBias);
    }

    [Fact]
    public void Transformers4_rope_scaling_with_legacy_type_key()
    {
        var c = ModelConfig.Parse(Base(extra: "\"rope_theta\":20000,\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}"), Src);
        Assert.Equal(20000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("linear", 4.0), c.RopeScaling);
    }

    [Fact]
    public void Transformers4_rope_type_wins_over_type()
    {
        var c = ModelConfig.Parse(Base(extra: "\"rope_scaling\":{\"type\":\"linear\",\"rope_type\":\"dynamic\",\"factor\":2}"), Src);
        Assert.Equal("dynamic", c.RopeScaling!.Type);
        Assert.Equal(2.0, c.RopeScaling.Factor);
    }

    [Fact]
    public void Transformers5_rope_parameters_hold_theta_and_llama3_fields()
    {
        var c = ModelConfig.Parse(Base(extra:
            "\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":8.0,\"low_freq_factor\":1.0," +
            "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}"), Src);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("llama3", 8.0, OriginalMaxPositionEmbeddings: 16, LowFreqFactor: 1.0, HighFreqFactor: 4.0), c.RopeScaling);
    }

    [Fact]
    public void Transformers5_default_rope_parameters_mean_no_scaling()
    {
        var c = ModelConfig.Parse(Base(extra: "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1000000.0}"), Src);
        Assert.Null(c.RopeScaling);
        Assert.Equal(1000000.0, c.RopeTheta);
    }

    [Fact]
    public void Yarn_fields_and_defaults()
    {
        var c = ModelConfig.Parse(Base(extra:
            "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":16,\"beta_fast\":16," +
            "\"attention_factor\":1.5,\"mscale\":0.7,\"mscale_all_dim\":0.5,\"truncate\":false}"), Src);
        Assert.Equal(new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 16, BetaFast: 16, AttentionFactor: 1.5,
            MScale: 0.7, MScaleAllDim: 0.5, Truncate: false), c.RopeScaling);

        // No factor: max_position_embeddings / original_max_position_embeddings (transformers' DeepSeek rule);
        // a top-level original_max_position_embeddings wins over the dict's.
        var d = ModelConfig.Parse(Base(extra:
            "\"original_max_position_embeddings\":8,\"rope_parameters\":{\"rope_type\":\"yarn\",\"original_max_position_embeddings\":32}"), Src);
        Assert.Equal(8, d.RopeScaling!.OriginalMaxPositionEmbeddings);
        Assert.Equal(8.0, d.RopeScaling.Factor);

        // No original_max_position_embeddings anywhere: max_position_embeddings
        var e = ModelConfig.Parse(Base(extra: "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}"), Src);
        Assert.Equal(64, e.RopeScaling!.OriginalMaxPositionEmbeddings);
    }

    [Fact]
    public void Unknown_model_type_names_file_field_value_and_supported_list()
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base("gpt2"), Src));
        Assert.Equal(Src, e.File);
        Assert.Equal("model_type", e.Field);
        Assert.Contains("gpt2", e.Message);
        Assert.Contains("llama, mistral, qwen2, qwen3", e.Message);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    [InlineData("rms_norm_eps")]
    [InlineData("max_position_embeddings")]
    [InlineData("model_type")]
    public void Missing_required_field_is_named(string field)
    {
        var doc = System.Text.Json.Nodes.JsonNode.Parse(Base())!.AsObject();
        doc.Remove(field);
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(doc.ToJsonString(), Src));
        Assert.Equal(field, e.Field);
        Assert.Contains("missing", e.Message);
        Assert.Contains(Src, e.Message);
    }

    [Fact]
    public void Heads_not_divisible_by_kv_heads()
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base().Replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3"), Src));
        Assert.Equal("num_key_value_heads", e.Field);
        Assert.Contains("4", e.Message);
        Assert.Contains("3", e.Message);
    }

    [Theory]
    [InlineData("\"hidden_size\":64", "\"hidden_size\":\"64\"", "hidden_size")]
    [InlineData("\"hidden_size\":64", "\"hidden_size\":64.5", "hidden_size")]
    [InlineData("\"rms_norm_eps\":1e-5", "\"rms_norm_eps\":[1]", "rms_norm_eps")]
    [InlineData("\"num_hidden_layers\":2", "\"num_hidden_layers\":0", "num_hidden_layers")]
    [InlineData("\"vocab_size\":512", "\"vocab_size\":-1", "vocab_size")]
    [InlineData("\"model_type\":\"llama\"", "\"model_type\":3", "model_type")]
    public void Wrong_types_and_non_positive_sizes_are_named(string from, string to, string field)
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base().Replace(from, to), Src));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Wrong_types_inside_rope_dict_and_lists_are_named()
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base(extra: "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":\"x\"}"), Src));
        Assert.Equal("rope_scaling.factor", e.Field);
        e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base(extra: "\"eos_token_id\":[1,\"a\"]"), Src));
        Assert.Equal("eos_token_id[1]", e.Field);
        e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base(extra: "\"rope_scaling\":{\"rope_type\":\"linear\"}"), Src));
        Assert.Equal("rope_scaling.factor", e.Field);
        Assert.Contains("missing", e.Message);
        e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base(extra: "\"rope_parameters\":{\"rope_type\":\"llama3\",\"factor\":8}"), Src));
        Assert.Equal("rope_parameters.low_freq_factor", e.Field);
    }

    [Fact]
    public void Unsupported_rope_type_is_a_clear_error()
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(Base(extra: "\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":2}"), Src));
        Assert.Equal("rope_scaling.rope_type", e.Field);
        Assert.Contains("longrope", e.Message);
        Assert.Contains("default, linear, dynamic, yarn, llama3", e.Message);
    }

    [Fact]
    public void Not_json_and_not_object()
    {
        Assert.Equal("(json)", Assert.Throws<ModelFormatException>(() => ModelConfig.Parse("{oops", Src)).Field);
        Assert.Equal("(root)", Assert.Throws<ModelFormatException>(() => ModelConfig.Parse("[1]", Src)).Field);
    }

    [Fact]
    public void Load_reads_a_file_and_names_it()
    {
        using var dir = new TempDir();
        string path = dir.File("config.json");
        File.WriteAllText(path, Base("qwen2"));
        var c = ModelConfig.Load(path);
        Assert.Equal(ModelFamily.Qwen2, c.Family);
        Assert.Equal(path, c.Source);
        File.WriteAllText(path, Base("bert"));
        Assert.Equal(path, Assert.Throws<ModelFormatException>(() => ModelConfig.Load(path)).File);
        Assert.Throws<ModelFormatException>(() => ModelConfig.Load(dir.File("absent.json")));
    }

    [Fact]
    public void Sliding_window()
    {
        Assert.Equal(4096, ModelConfig.Parse(Base("mistral", "\"sliding_window\":4096"), Src).SlidingWindow);
        Assert.Null(ModelConfig.Parse(Base("mistral", "\"sliding_window\":null"), Src).SlidingWindow);
        // Qwen2 configs carry sliding_window even with the window off
        var q = ModelConfig.Parse(Base("qwen2", "\"sliding_window\":4096,\"use_sliding_window\":false,\"layer_types\":[\"full_attention\",\"full_attention\"]"), Src);
        Assert.Null(q.SlidingWindow);
        Assert.Equal("use_sliding_window", Assert.Throws<ModelFormatException>(() =>
            ModelConfig.Parse(Base("qwen2", "\"use_sliding_window\":true"), Src)).Field);
        Assert.Equal("layer_types[1]", Assert.Throws<ModelFormatException>(() =>
            ModelConfig.Parse(Base("qwen3", "\"layer_types\":[\"full_attention\",\"sliding_attention\"]"), Src)).Field);
    }
}
