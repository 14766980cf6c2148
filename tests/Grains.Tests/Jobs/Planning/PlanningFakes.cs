using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Grains.Tests.Jobs.Planning;

/// <summary>
/// A tokenizer-only model for exact counting: a token is a run of non-whitespace with the whitespace before it
/// (so counts add up exactly when texts are joined at whitespace), and the chat template adds 3 tokens per message
/// (role, start, end) and 2 for the generation prompt. It records how many characters it has encoded so tests can
/// see that planning is linear in the document.
/// </summary>
internal sealed partial class WordTokenModel(int contextLength) : ITextGenerator
{
    public const int PerMessage = 3, GenerationPrompt = 2;

    [GeneratedRegex(@"\s*\S+|\s+$")]
    private static partial Regex TokenPattern();

    public long EncodedChars;
    public int EncodeCalls;

    public string ModelId => "word-token-model";
    public int ContextLength { get; } = contextLength;

    public static int Count(string text) => TokenPattern().Count(text);

    public IReadOnlyList<int> Encode(string text)
    {
        Interlocked.Add(ref EncodedChars, text.Length);
        Interlocked.Increment(ref EncodeCalls);
        return TokenPattern().Matches(text).Select(m => m.Value.GetHashCode() & 0xFFFF).ToArray();
    }

    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var ids = new List<int>();
        foreach (var m in messages)
        {
            ids.AddRange([1, 2]);
            ids.AddRange(Encode(m.Content));
            ids.Add(3);
        }
        if (addGenerationPrompt) ids.AddRange([1, 4]);
        return ids;
    }

    public string Decode(IReadOnlyList<int> tokens) => throw new NotSupportedException("planning never decodes");
    public IStreamDecoder CreateStreamDecoder() => throw new NotSupportedException("planning never decodes");
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("planning never generates");
    public void Dispose() { }
}

/// <summary>Deterministic documents: sentences of made-up words in paragraphs, from a fixed seed.</summary>
internal static class SyntheticText
{
    private static readonly string[] Words =
    [
        "the", "cache", "page", "token", "attention", "layer", "model", "silo", "grain", "summary", "chunk", "device",
        "memory", "prefix", "request", "engine", "batch", "kernel", "reduce", "level", "plan", "document", "context",
        "reminder", "checkpoint", "cluster", "placement", "budget", "output", "prompt",
    ];

    /// <summary>Paragraphs of 2..5 sentences of 4..18 words, separated by blank lines; roughly <paramref name="words"/> words.</summary>
    public static string Document(int words, int seed = 42)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder();
        int written = 0;
        while (written < words)
        {
            if (sb.Length > 0) sb.Append("\n\n");
            int sentences = rng.Next(2, 6);
            for (int s = 0; s < sentences && written < words; s++)
            {
                if (s > 0) sb.Append(' ');
                int n = rng.Next(4, 19);
                for (int w = 0; w < n; w++)
                {
                    string word = Words[rng.Next(Words.Length)];
                    if (w == 0) word = char.ToUpperInvariant(word[0]) + word[1..];
                    else sb.Append(' ');
                    sb.Append(word);
                }
                sb.Append(rng.Next(10) == 0 ? '?' : '.');
                written += n;
            }
        }
        return sb.ToString();
    }
}

/// <summary>
/// Two copies of the tiny Qwen2 fixture (max_position_embeddings 512) in a temp folder, one with linear RoPE scaling
/// ×4 in config.json and one without, loaded on the CPU engine: the same model serving 2048 and 512 tokens.
/// </summary>
public sealed class Qwen2Variants : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-plan-" + Guid.NewGuid().ToString("N"));

    public Qwen2Variants()
    {
        string fixture = FixtureDirectory();
        Plain = TextGenerator.Load(Copy(fixture, "plain", null), new EngineOptions { Backend = Backend.Cpu, KvPages = 64 });
        var scaling = new JsonObject { ["rope_type"] = "linear", ["factor"] = 4.0, ["rope_theta"] = 1000000.0 };
        Scaled = TextGenerator.Load(Copy(fixture, "scaled", scaling), new EngineOptions { Backend = Backend.Cpu, KvPages = 64 });
    }

    /// <summary>No RoPE scaling: 512 tokens.</summary>
    public TextGenerator Plain { get; }

    /// <summary>rope_scaling linear ×4: 2048 tokens.</summary>
    public TextGenerator Scaled { get; }

    private string Copy(string fixture, string name, JsonObject? ropeScaling)
    {
        string dir = Path.Combine(_root, name);
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(fixture))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config.Remove("rope_scaling");
        if (ropeScaling is not null) config["rope_scaling"] = ropeScaling;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        return dir;
    }

    internal static string FixtureDirectory()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
                return Path.Combine(d.FullName, "tests", "fixtures", "models", "qwen2");
        throw new DirectoryNotFoundException("repository root (Actors.sln) not found above " + AppContext.BaseDirectory);
    }

    public void Dispose()
    {
        Plain.Dispose();
        Scaled.Dispose();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}
