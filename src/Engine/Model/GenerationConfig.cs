using System.Text.Json;
using Actors.Engine.Sampling;

namespace Actors.Engine.Model;

/// <summary>
/// A model's generation_config.json. Defaults are transformers' GenerationConfig defaults (greedy, temperature 1,
/// top_k 50, top_p 1, repetition_penalty 1); they apply to fields the file omits and to a directory without the file.
/// </summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? BosTokenId { get; init; }
    public int? PadTokenId { get; init; }
    public bool DoSample { get; init; }
    public float Temperature { get; init; } = 1f;
    public int TopK { get; init; } = 50;
    public float TopP { get; init; } = 1f;
    /// <summary>max_new_tokens: tokens to generate after the prompt.</summary>
    public int? MaxNewTokens { get; init; }
    /// <summary>max_length: prompt plus generated tokens (used when max_new_tokens is absent).</summary>
    public int? MaxLength { get; init; }
    /// <summary>Read for completeness; the engine does not apply it.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Where the values came from, for error messages ("(defaults)" without a file).</summary>
    public string Source { get; init; } = "(defaults)";

    /// <summary>How many tokens to generate after a prompt: max_new_tokens, else max_length - prompt, else null.</summary>
    public int? MaxNewTokensFor(int promptLength) =>
        MaxNewTokens ?? (MaxLength is int total ? Math.Max(0, total - promptLength) : null);

    /// <summary>Sampling parameters as the model's authors suggest: greedy unless do_sample.</summary>
    public SamplingParams ToSamplingParams(int maxNewTokens, ulong seed = 0) =>
        DoSample
            ? new SamplingParams(Temperature, TopK, TopP, seed, maxNewTokens)
            : SamplingParams.Greedy(maxNewTokens) with { Seed = seed };

    /// <summary>Reads generation_config.json from a model directory; defaults when the file is absent.</summary>
    public static GenerationConfig Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, FileName);
        if (!File.Exists(path)) return new GenerationConfig();
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, "(file)", $"cannot read: {e.Message}");
        }
        return Parse(json, path);
    }

    public static GenerationConfig Parse(string json, string sourceName)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(sourceName, "(json)", $"not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(sourceName, "(root)", $"expected a JSON object, got {doc.RootElement.ValueKind}");
            var r = new JsonFields(doc.RootElement, sourceName, "");
            var d = new GenerationConfig();
            float temperature = (float)(r.OptionalDouble("temperature") ?? d.Temperature);
            if (!(temperature >= 0)) throw new ModelFormatException(sourceName, "temperature", $"must be >= 0, got {temperature}");
            int topK = r.OptionalInt("top_k") ?? d.TopK;
            if (topK < 0) throw new ModelFormatException(sourceName, "top_k", $"must be >= 0, got {topK}");
            float topP = (float)(r.OptionalDouble("top_p") ?? d.TopP);
            if (!(topP > 0 && topP <= 1)) throw new ModelFormatException(sourceName, "top_p", $"must be in (0, 1], got {topP}");
            return new GenerationConfig
            {
                EosTokenIds = r.OptionalIntOrIntList("eos_token_id") ?? [],
                BosTokenId = r.OptionalInt("bos_token_id"),
                PadTokenId = r.OptionalInt("pad_token_id"),
                DoSample = r.OptionalBool("do_sample") ?? false,
                Temperature = temperature,
                TopK = topK,
                TopP = topP,
                MaxNewTokens = r.OptionalPositiveInt("max_new_tokens"),
                MaxLength = r.OptionalPositiveInt("max_length"),
                RepetitionPenalty = (float)(r.OptionalDouble("repetition_penalty") ?? d.RepetitionPenalty),
                Source = sourceName,
            };
        }
    }
}
