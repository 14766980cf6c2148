using Actors.Engine.Chat;
using Actors.Engine.Sampling;

namespace Actors.Engine;

/// <summary>
/// What the actors need of a loaded model on one device: text in and out, the chat template, and token generation
/// driven by the engine's own loop (continuous batching; calls from many threads are fine).
/// </summary>
public interface ITextGenerator : IDisposable
{
    /// <summary>Identity of the model (directory or hf id); part of KV page identity.</summary>
    string ModelId { get; }

    /// <summary>Most tokens (prompt + generated) one sequence may hold.</summary>
    int ContextLength { get; }

    /// <summary>Token ids of plain text, without special tokens added.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Text of token ids, special tokens skipped.</summary>
    string Decode(IReadOnlyList<int> tokens);

    /// <summary>Renders messages through the model's chat template and encodes the result.</summary>
    IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

    /// <summary>A decoder that turns a stream of token ids into text pieces, holding back incomplete UTF-8.</summary>
    IStreamDecoder CreateStreamDecoder();

    /// <summary>
    /// Generates after <paramref name="prompt"/> until an end-of-sequence token (not yielded), MaxNewTokens, or the
    /// context is full. Throws ArgumentException when the prompt is empty or longer than the context.
    /// </summary>
    IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="GenerateAsync(IReadOnlyList{int}, SamplingParams, CancellationToken)"/>, and calls
    /// <paramref name="onAdmitted"/> once, when the engine admits the request, with how its prompt's KV was found
    /// (device prefix hit, host swap-in, prefill). Implementations without KV tiers never call it.
    /// </summary>
    IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, Action<KvAdmission>? onAdmitted, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, sampling, cancellationToken);

    /// <summary>The KV tiers of the engine behind this generator; null when it has none (test doubles).</summary>
    IKvTiers? KvTiers => null;
}

/// <summary>Incremental detokenizer for streaming.</summary>
public interface IStreamDecoder
{
    /// <summary>Adds a token and returns the newly complete text (possibly empty).</summary>
    string Push(int token);

    /// <summary>Returns whatever is held back at the end of the stream.</summary>
    string Flush();
}
