using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Sampling;

namespace Actors.Grains.Tests;

/// <summary>
/// A small deterministic stand-in for the engine with real logic: byte-level tokens (0..255) plus special tokens,
/// a chat template, a real context limit, and an answer computed from the prompt: "[n] " + the last user message
/// reversed, where n is how many user turns the prompt holds (so a test sees whether the whole history was sent).
/// Model directory: config.json {"model_id": "...", "context_length": N}.
/// </summary>
public sealed class CharModel : ITextGenerator
{
    public const int Bos = 256, Eos = 257, SystemTag = 258, UserTag = 259, AssistantTag = 260, EndTag = 261;

    private readonly CharModelHooks _hooks;

    public CharModel(string directory, CharModelHooks hooks)
    {
        _hooks = hooks;
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
            throw new InvalidDataException($"model directory '{directory}' has no config.json");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
        ModelId = doc.RootElement.GetProperty("model_id").GetString()!;
        ContextLength = doc.RootElement.GetProperty("context_length").GetInt32();
        Interlocked.Increment(ref hooks.Loads);
    }

    public string ModelId { get; }
    public int ContextLength { get; }

    public IReadOnlyList<int> Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    public string Decode(IReadOnlyList<int> tokens) =>
        Encoding.UTF8.GetString(tokens.Where(t => t < 256).Select(t => (byte)t).ToArray());

    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var ids = new List<int> { Bos };
        foreach (var m in messages)
        {
            ids.Add(m.Role switch
            {
                "system" => SystemTag,
                "user" => UserTag,
                "assistant" => AssistantTag,
                _ => throw new ArgumentException($"role '{m.Role}' is not in the chat template"),
            });
            ids.AddRange(Encode(m.Content));
            ids.Add(EndTag);
        }
        if (addGenerationPrompt) ids.Add(AssistantTag);
        return ids;
    }

    public IStreamDecoder CreateStreamDecoder() => new ByteStreamDecoder();

    /// <summary>The answer this model gives to a prompt (before token limits).</summary>
    public static string ExpectedAnswer(int userTurns, string lastUserMessage)
    {
        var elements = new List<string>();
        var e = StringInfo.GetTextElementEnumerator(lastUserMessage);
        while (e.MoveNext()) elements.Add((string)e.Current);
        elements.Reverse();
        return $"[{userTurns}] " + string.Concat(elements);
    }

    public async IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("prompt is empty");
        if (prompt.Count > ContextLength) throw new ArgumentException($"prompt of {prompt.Count} tokens exceeds the context of {ContextLength}");
        _hooks.OnGenerate?.Invoke(prompt);

        var lastUser = -1;
        var userTurns = 0;
        for (var i = 0; i < prompt.Count; i++)
            if (prompt[i] == UserTag) { lastUser = i; userTurns++; }
        if (lastUser < 0) throw new ArgumentException("prompt has no user turn");
        var end = lastUser + 1;
        while (end < prompt.Count && prompt[end] != EndTag) end++;
        var message = Decode(prompt.Skip(lastUser + 1).Take(end - lastUser - 1).ToArray());
        var answer = Encode(ExpectedAnswer(userTurns, message));

        var active = Interlocked.Increment(ref _hooks.Active);
        lock (_hooks) _hooks.MaxConcurrent = Math.Max(_hooks.MaxConcurrent, active);
        try
        {
            var produced = 0;
            foreach (var token in answer.Append(Eos))
            {
                if (produced >= sampling.MaxNewTokens || prompt.Count + produced >= ContextLength) yield break;
                if (_hooks.TokenDelay > TimeSpan.Zero) await Task.Delay(_hooks.TokenDelay, cancellationToken);
                else await Task.Yield();
                if (_hooks.FailAfterTokens is { } fail && produced >= fail)
                    throw new InvalidOperationException($"simulated device failure after {produced} tokens");
                if (token == Eos) yield break;
                produced++;
                yield return token;
            }
        }
        finally
        {
            Interlocked.Decrement(ref _hooks.Active);
        }
    }

    public void Dispose() { }

    private sealed class ByteStreamDecoder : IStreamDecoder
    {
        private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();

        public string Push(int token)
        {
            if (token >= 256) return "";
            Span<byte> one = [(byte)token];
            Span<char> chars = stackalloc char[4];
            var n = _decoder.GetChars(one, chars, flush: false);
            return new string(chars[..n]);
        }

        public string Flush()
        {
            Span<char> chars = stackalloc char[4];
            var n = _decoder.GetChars(ReadOnlySpan<byte>.Empty, chars, flush: true);
            return new string(chars[..n]);
        }
    }
}

/// <summary>What tests observe of and inject into the CharModels of a cluster.</summary>
public sealed class CharModelHooks
{
    public int Loads;
    public int Active; // generations running now, over every model of the cluster
    public int MaxConcurrent;
    public TimeSpan TokenDelay;
    public int? FailAfterTokens;
    public Action<IReadOnlyList<int>>? OnGenerate;

    public void Reset()
    {
        MaxConcurrent = 0;
        TokenDelay = TimeSpan.Zero;
        FailAfterTokens = null;
        OnGenerate = null;
    }
}
