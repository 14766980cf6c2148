using Actors.Engine.Chat;
using Actors.Engine.Model;
using Actors.Engine.Sampling;
using Actors.Engine.Tokenization;

namespace Actors.Engine.Runtime;

/// <summary>
/// A Hugging Face model directory loaded for serving: tokenizer, chat template, generation defaults and the
/// inference engine with its own loop. This is what the actors see of a model (ITextGenerator).
/// </summary>
public sealed class TextGenerator : ITextGenerator
{
    private readonly HfTokenizer _tokenizer;
    private readonly ChatTemplate? _template;
    private readonly InferenceEngine _engine;
    private readonly HashSet<int> _stopTokens;

    private TextGenerator(string modelId, ModelConfig config, HfTokenizer tokenizer, ChatTemplate? template,
        GenerationConfig generation, InferenceEngine engine)
    {
        ModelId = modelId;
        Config = config;
        _tokenizer = tokenizer;
        _template = template;
        Generation = generation;
        _engine = engine;
        _stopTokens = [.. generation.EosTokenIds, .. config.EosTokenIds];
    }

    public string ModelId { get; }
    public ModelConfig Config { get; }
    public GenerationConfig Generation { get; }
    public InferenceEngine Engine => _engine;
    public int ContextLength => _engine.ContextLength;
    public IReadOnlySet<int> StopTokenIds => _stopTokens;

    /// <summary>
    /// Loads a model directory (config.json, *.safetensors, tokenizer.json, optional tokenizer_config.json and
    /// generation_config.json). Errors name the file and field that is wrong; nothing stays loaded on failure.
    /// </summary>
    public static TextGenerator Load(string modelDirectory, EngineOptions? options = null, string? modelId = null)
    {
        if (!Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"model directory '{modelDirectory}' does not exist");
        var config = ModelConfig.Load(Path.Combine(modelDirectory, "config.json"));
        var tokenizerPath = Path.Combine(modelDirectory, "tokenizer.json");
        if (!File.Exists(tokenizerPath))
            throw new ModelFormatException(tokenizerPath, "tokenizer.json", "file is missing; a model directory needs its tokenizer");
        var tokenizer = HfTokenizer.Load(tokenizerPath);
        var templatePath = Path.Combine(modelDirectory, "tokenizer_config.json");
        ChatTemplate? template = File.Exists(templatePath) && HasChatTemplate(templatePath)
            ? ChatTemplate.FromTokenizerConfig(templatePath) : null;
        var generation = GenerationConfig.Load(modelDirectory);
        var weights = SafeTensorsModel.Open(modelDirectory);
        try
        {
            var id = modelId ?? Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar);
            var engine = new InferenceEngine(config, weights, id, options ?? new EngineOptions());
            return new TextGenerator(id, config, tokenizer, template, generation, engine);
        }
        finally
        {
            weights.Dispose(); // the engine keeps f32 copies; the memory maps are not needed after load
        }
    }

    private static bool HasChatTemplate(string tokenizerConfigPath)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(tokenizerConfigPath));
        return doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
            && doc.RootElement.TryGetProperty("chat_template", out var t)
            && t.ValueKind != System.Text.Json.JsonValueKind.Null;
    }

    public IReadOnlyList<int> Encode(string text) => _tokenizer.Encode(text, addSpecialTokens: false);

    public string Decode(IReadOnlyList<int> tokens) => _tokenizer.Decode(tokens, skipSpecialTokens: true);

    public string RenderChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        if (_template is null)
            throw new InvalidOperationException($"model '{ModelId}' has no chat_template in tokenizer_config.json");
        return _template.Render(messages, addGenerationPrompt);
    }

    // transformers' apply_chat_template(tokenize=True) encodes the rendering without adding special tokens:
    // the template itself writes BOS where the model wants it.
    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        _tokenizer.Encode(RenderChat(messages, addGenerationPrompt), addSpecialTokens: false);

    public IStreamDecoder CreateStreamDecoder() => _tokenizer.CreateStreamDecoder(skipSpecialTokens: true);

    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling,
        CancellationToken cancellationToken = default) =>
        _engine.GenerateAsync(prompt, sampling, _stopTokens, cancellationToken);

    /// <summary>Generates with this model's stop tokens and reports the admission (engine thread; must not block).</summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, Action<KvAdmission>? onAdmitted,
        CancellationToken cancellationToken = default) =>
        _engine.GenerateAsync(prompt, sampling, _stopTokens, onAdmitted, cancellationToken);

    /// <summary>The engine's KV tiers (device and host page pools).</summary>
    public IKvTiers KvTiers => _engine;

    public void Dispose() => _engine.Dispose();
}
