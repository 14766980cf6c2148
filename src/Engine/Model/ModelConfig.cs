namespace Actors.Engine.Model;

public enum ModelFamily { Llama, Mistral, Qwen2, Qwen3 }

/// <summary>
/// RoPE scaling as config.json states it (transformers' `rope_scaling`, or `rope_parameters` in transformers 5).
/// Type is one of: default, linear, dynamic, yarn, llama3. Fields a type does not use are null.
/// </summary>
public sealed record RopeScaling(
    string Type,
    double Factor = 1.0,
    int? OriginalMaxPositionEmbeddings = null,
    double? LowFreqFactor = null,
    double? HighFreqFactor = null,
    double? BetaFast = null,
    double? BetaSlow = null,
    double? AttentionFactor = null,
    double? MScale = null,
    double? MScaleAllDim = null,
    bool? Truncate = null);

/// <summary>The architecture of a Llama-family model, read from a Hugging Face config.json.</summary>
public sealed partial record ModelConfig
{
    public required string ModelType { get; init; }
    public required ModelFamily Family { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    /// <summary>head_dim where given (Qwen3 sets it), else hidden / heads.</summary>
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required float RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry a bias (Qwen2; `attention_bias` for Llama).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>o_proj carries a bias (rare; Llama's `attention_bias` also sets it).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Per-head RMSNorm of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    public RopeScaling? RopeScaling { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>Where the file came from, for error messages.</summary>
    public string Source { get; init; } = "config.json";
}
