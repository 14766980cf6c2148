using System.Text.Json;

namespace Actors.Engine.Model;

public sealed partial record ModelConfig
{
    /// <summary>model_type values this engine runs.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = ["llama", "mistral", "qwen2", "qwen3"];

    /// <summary>RoPE types this engine computes (transformers' names).</summary>
    public static IReadOnlyList<string> SupportedRopeTypes { get; } = ["default", "linear", "dynamic", "yarn", "llama3"];

    /// <summary>Reads a Hugging Face config.json.</summary>
    public static ModelConfig Load(string configJsonPath)
    {
        string json;
        try
        {
            json = File.ReadAllText(configJsonPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(configJsonPath, "(file)", $"cannot read: {e.Message}");
        }
        return Parse(json, configJsonPath);
    }

    /// <summary>
    /// Parses config.json text. <paramref name="sourceName"/> names the file in errors. Defaults follow the
    /// transformers config classes (num_key_value_heads = heads, rope_theta = 10000, head_dim = hidden / heads,
    /// Qwen3's head_dim = 128); sizes, layer count, vocab, rms_norm_eps and max_position_embeddings are required.
    /// </summary>
    public static ModelConfig Parse(string json, string sourceName)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(sourceName, "(json)", $"not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var r = new JsonFields(doc.RootElement, sourceName, "");
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(sourceName, "(root)", $"expected a JSON object, got {doc.RootElement.ValueKind}");

            string modelType = r.RequiredString("model_type");
            ModelFamily family = modelType switch
            {
                "llama" => ModelFamily.Llama,
                "mistral" => ModelFamily.Mistral,
                "qwen2" => ModelFamily.Qwen2,
                "qwen3" => ModelFamily.Qwen3,
                _ => throw new ModelFormatException(sourceName, "model_type",
                    $"unsupported value '{modelType}'; supported: {string.Join(", ", SupportedModelTypes)}"),
            };

            int hidden = r.RequiredPositiveInt("hidden_size");
            int intermediate = r.RequiredPositiveInt("intermediate_size");
            int layers = r.RequiredPositiveInt("num_hidden_layers");
            int heads = r.RequiredPositiveInt("num_attention_heads");
            int kvHeads = r.OptionalPositiveInt("num_key_value_heads") ?? heads;
            if (heads % kvHeads != 0)
                throw new ModelFormatException(sourceName, "num_key_value_heads",
                    $"num_attention_heads ({heads}) is not divisible by num_key_value_heads ({kvHeads})");
            int? headDimField = r.OptionalPositiveInt("head_dim");
            int headDim;
            if (headDimField is int hd) headDim = hd;
            else if (family == ModelFamily.Qwen3) headDim = 128; // Qwen3Config's default; real checkpoints set it
            else
            {
                if (hidden % heads != 0)
                    throw new ModelFormatException(sourceName, "hidden_size",
                        $"hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) and head_dim is not given");
                headDim = hidden / heads;
            }
            if (headDim % 2 != 0)
                throw new ModelFormatException(sourceName, "head_dim", $"RoPE needs an even head dimension, got {headDim}");

            int vocab = r.RequiredPositiveInt("vocab_size");
            double eps = r.RequiredDouble("rms_norm_eps");
            if (!(eps > 0) || double.IsInfinity(eps))
                throw new ModelFormatException(sourceName, "rms_norm_eps", $"must be positive, got {eps}");
            int maxPos = r.RequiredPositiveInt("max_position_embeddings");
            bool tie = r.OptionalBool("tie_word_embeddings") ?? false;

            if (r.OptionalBool("mlp_bias") == true)
                throw new ModelFormatException(sourceName, "mlp_bias", "MLP biases are not supported");
            double? partial = r.OptionalDouble("partial_rotary_factor");
            if (partial is double p && p != 1.0)
                throw new ModelFormatException(sourceName, "partial_rotary_factor", $"only 1.0 is supported, got {p}");

            bool attentionBias = r.OptionalBool("attention_bias") ?? false;
            (bool qkvBias, bool oBias) = family switch
            {
                // Qwen2Attention: q/k/v Linear(bias=True), o_proj Linear(bias=False), whatever the config says.
                ModelFamily.Qwen2 => (true, false),
                // MistralAttention has no biases.
                ModelFamily.Mistral => (false, false),
                // LlamaAttention / Qwen3Attention: attention_bias applies to q, k, v and o.
                _ => (attentionBias, attentionBias),
            };

            (double theta, RopeScaling? scaling) = ParseRope(r, doc.RootElement, sourceName, maxPos);
            int? slidingWindow = ParseSlidingWindow(r, doc.RootElement, family, sourceName);

            int? bos = r.OptionalInt("bos_token_id");
            IReadOnlyList<int> eos = r.OptionalIntOrIntList("eos_token_id") ?? [];

            return new ModelConfig
            {
                ModelType = modelType,
                Family = family,
                HiddenSize = hidden,
                IntermediateSize = intermediate,
                NumLayers = layers,
                NumHeads = heads,
                NumKvHeads = kvHeads,
                HeadDim = headDim,
                VocabSize = vocab,
                RmsNormEps = (float)eps,
                RopeTheta = theta,
                MaxPositionEmbeddings = maxPos,
                TieWordEmbeddings = tie,
                AttentionBias = qkvBias,
                OutputBias = oBias,
                QkNorm = family == ModelFamily.Qwen3,
                RopeScaling = scaling,
                SlidingWindow = slidingWindow,
                BosTokenId = bos,
                EosTokenIds = eos,
                Source = sourceName,
            };
        }
    }

    /// <summary>
    /// Reads RoPE settings the way transformers 5 standardizes them (RotaryEmbeddingConfigMixin):
    /// `rope_scaling` (transformers 4) wins over `rope_parameters` (transformers 5); `type` is the old name of
    /// `rope_type`; rope_theta inside the dict wins over the top-level one (default 10000); for yarn and llama3 a
    /// top-level `original_max_position_embeddings` wins over the dict's, which defaults to max_position_embeddings.
    /// </summary>
    static (double Theta, RopeScaling? Scaling) ParseRope(JsonFields r, JsonElement root, string source, int maxPos)
    {
        double? topTheta = r.OptionalDouble("rope_theta");
        string? dictName = null;
        JsonElement dict = default;
        foreach (string name in new[] { "rope_scaling", "rope_parameters" })
        {
            if (!root.TryGetProperty(name, out JsonElement e) || e.ValueKind == JsonValueKind.Null) continue;
            if (e.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(source, name, $"expected an object, got {e.ValueKind}");
            if (!e.EnumerateObject().Any()) continue; // `{}` counts as absent, as in transformers
            dictName = name;
            dict = e;
            break;
        }

        if (dictName is null)
        {
            double t = topTheta ?? 10000.0;
            CheckTheta(source, "rope_theta", t);
            return (t, null);
        }

        var d = new JsonFields(dict, source, dictName + ".");
        string type = d.OptionalString("rope_type") ?? d.OptionalString("type") ?? "default";
        double theta = d.OptionalDouble("rope_theta") ?? topTheta ?? 10000.0;
        CheckTheta(source, dictName + ".rope_theta", theta);
        if (d.OptionalDouble("partial_rotary_factor") is double p && p != 1.0)
            throw new ModelFormatException(source, dictName + ".partial_rotary_factor", $"only 1.0 is supported, got {p}");

        switch (type)
        {
            case "default":
                return (theta, null);
            case "linear":
            case "dynamic":
            {
                double factor = d.RequiredDouble("factor");
                CheckFactor(source, dictName, factor);
                return (theta, new RopeScaling(type, factor));
            }
            case "yarn":
            {
                int orig = r.OptionalPositiveInt("original_max_position_embeddings")
                           ?? d.OptionalPositiveInt("original_max_position_embeddings") ?? maxPos;
                // transformers: factor None => max_position_embeddings / original_max_position_embeddings
                double factor = d.OptionalDouble("factor") ?? (double)maxPos / orig;
                CheckFactor(source, dictName, factor);
                return (theta, new RopeScaling(type, factor,
                    OriginalMaxPositionEmbeddings: orig,
                    BetaFast: d.OptionalDouble("beta_fast"),
                    BetaSlow: d.OptionalDouble("beta_slow"),
                    AttentionFactor: d.OptionalDouble("attention_factor"),
                    MScale: d.OptionalDouble("mscale"),
                    MScaleAllDim: d.OptionalDouble("mscale_all_dim"),
                    Truncate: d.OptionalBool("truncate")));
            }
            case "llama3":
            {
                int orig = r.OptionalPositiveInt("original_max_position_embeddings")
                           ?? d.OptionalPositiveInt("original_max_position_embeddings") ?? maxPos;
                double factor = d.RequiredDouble("factor");
                CheckFactor(source, dictName, factor);
                double low = d.RequiredDouble("low_freq_factor");
                double high = d.RequiredDouble("high_freq_factor");
                if (!(low > 0) || !(high > low))
                    throw new ModelFormatException(source, dictName + ".high_freq_factor",
                        $"need 0 < low_freq_factor < high_freq_factor, got low={low}, high={high}");
                return (theta, new RopeScaling(type, factor, OriginalMaxPositionEmbeddings: orig,
                    LowFreqFactor: low, HighFreqFactor: high));
            }
            default:
                throw new ModelFormatException(source, dictName + ".rope_type",
                    $"unsupported RoPE type '{type}'; supported: {string.Join(", ", SupportedRopeTypes)}");
        }
    }

    /// <summary>
    /// Mistral's `sliding_window` applies to every layer (null: full attention). Qwen2/Qwen3 apply a window only
    /// with `use_sliding_window` (and then only to some layers); their released checkpoints leave it off, and a
    /// config that turns it on, or whose `layer_types` name anything but full attention, is refused rather than
    /// run with the wrong attention.
    /// </summary>
    static int? ParseSlidingWindow(JsonFields r, JsonElement root, ModelFamily family, string source)
    {
        if (root.TryGetProperty("layer_types", out var lt) && lt.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var t in lt.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.String || t.GetString() != "full_attention")
                    throw new ModelFormatException(source, $"layer_types[{i}]",
                        $"only full_attention layers are supported, got {t.GetRawText()}");
                i++;
            }
        }
        if (family == ModelFamily.Mistral)
            return r.OptionalPositiveInt("sliding_window");
        if (r.OptionalBool("use_sliding_window") == true)
            throw new ModelFormatException(source, "use_sliding_window", "sliding-window attention is not supported for this model type");
        return null;
    }

    static void CheckTheta(string source, string field, double theta)
    {
        if (!(theta > 1) || double.IsInfinity(theta))
            throw new ModelFormatException(source, field, $"must be a finite number > 1, got {theta}");
    }

    static void CheckFactor(string source, string dictName, double factor)
    {
        if (!(factor > 0) || double.IsInfinity(factor))
            throw new ModelFormatException(source, dictName + ".factor", $"must be a positive number, got {factor}");
    }
}

/// <summary>Typed, named access to the fields of one JSON object; every error names file and field.</summary>
internal readonly struct JsonFields(JsonElement obj, string source, string prefix)
{
    bool TryGet(string name, out JsonElement e)
    {
        if (obj.TryGetProperty(name, out e) && e.ValueKind != JsonValueKind.Null) return true;
        e = default;
        return false;
    }

    ModelFormatException Wrong(string name, string expected, JsonElement e) =>
        new(source, prefix + name, $"expected {expected}, got {e.ValueKind} {Excerpt(e)}");

    static string Excerpt(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length > 40 ? raw[..40] + "..." : raw;
    }

    ModelFormatException Missing(string name) => new(source, prefix + name, "required field is missing");

    public string RequiredString(string name) => OptionalString(name) ?? throw Missing(name);

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var e)) return null;
        return e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(name, "a string", e);
    }

    public int? OptionalInt(string name)
    {
        if (!TryGet(name, out var e)) return null;
        return AsInt(name, e);
    }

    int AsInt(string name, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Number) throw Wrong(name, "an integer", e);
        if (e.TryGetInt32(out int v)) return v;
        // 4096.0 is an integer too (some exporters write floats)
        if (e.TryGetDouble(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue) return (int)d;
        throw Wrong(name, "an integer in 32-bit range", e);
    }

    public int? OptionalPositiveInt(string name)
    {
        int? v = OptionalInt(name);
        if (v is int i && i <= 0) throw new ModelFormatException(source, prefix + name, $"must be positive, got {i}");
        return v;
    }

    public int RequiredPositiveInt(string name) => OptionalPositiveInt(name) ?? throw Missing(name);

    public double? OptionalDouble(string name)
    {
        if (!TryGet(name, out var e)) return null;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double d)) throw Wrong(name, "a number", e);
        return d;
    }

    public double RequiredDouble(string name) => OptionalDouble(name) ?? throw Missing(name);

    public bool? OptionalBool(string name)
    {
        if (!TryGet(name, out var e)) return null;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(name, "true or false", e),
        };
    }

    /// <summary>eos_token_id style: an integer or a list of integers.</summary>
    public IReadOnlyList<int>? OptionalIntOrIntList(string name)
    {
        if (!TryGet(name, out var e)) return null;
        if (e.ValueKind == JsonValueKind.Number) return [AsInt(name, e)];
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(name, "an integer or a list of integers", e);
        var list = new List<int>();
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number) throw Wrong($"{name}[{i}]", "an integer", item);
            list.Add(AsInt($"{name}[{i}]", item));
            i++;
        }
        return list;
    }
}
