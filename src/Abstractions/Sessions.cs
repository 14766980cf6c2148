namespace Actors.Abstractions;

/// <summary>
/// Opens (creates or re-opens) a session. <paramref name="ModelRef"/> is a model directory on the silo's machine
/// (the client resolves hf:ORG/NAME into a snapshot directory first); null keeps the model of an existing session.
/// <paramref name="SystemPrompt"/> null keeps the existing one. <paramref name="Sampling"/> null keeps the existing
/// defaults (or SamplingOptions.Greedy() for a new session).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record OpenSession(
    [property: Id(0)] string? ModelRef,
    [property: Id(1)] string? SystemPrompt = null,
    [property: Id(2)] SamplingOptions? Sampling = null);

/// <summary>What a session is: its model, defaults and size. ContextLength is 0 when no model is loaded.</summary>
[GenerateSerializer, Immutable]
public sealed record SessionInfo(
    [property: Id(0)] string SessionId,
    [property: Id(1)] bool IsOpen,
    [property: Id(2)] string? ModelRef,
    [property: Id(3)] string? SystemPrompt,
    [property: Id(4)] SamplingOptions Sampling,
    [property: Id(5)] int TurnCount,
    [property: Id(6)] int TokenCount,
    [property: Id(7)] int ContextLength);

/// <summary>One user turn. MaxNewTokens / Sampling, when set, override the session's defaults for this turn only.</summary>
[GenerateSerializer, Immutable]
public sealed record AskRequest(
    [property: Id(0)] string Message,
    [property: Id(1)] int? MaxNewTokens = null,
    [property: Id(2)] SamplingOptions? Sampling = null);

/// <summary>Why generation stopped.</summary>
[GenerateSerializer]
public enum FinishReason
{
    /// <summary>The model produced an end-of-sequence token.</summary>
    EndOfSequence = 0,
    /// <summary>MaxNewTokens were generated.</summary>
    MaxTokens = 1,
    /// <summary>Prompt + generated tokens filled the model's context.</summary>
    ContextFull = 2,
}

/// <summary>
/// Where the KV of a turn's prompt came from (ARCHITECTURE.md §3, resume order). Mirrors the Engine's KvTier because
/// Abstractions may not reference the Engine.
/// </summary>
[GenerateSerializer]
public enum KvResumeTier
{
    /// <summary>The prompt's leading pages were still in the device page pool (a prefix hit).</summary>
    Device = 0,
    /// <summary>Pages were swapped in from the host page pool.</summary>
    Host = 1,
    /// <summary>Pages came from the session's blob snapshot (imported into the host pool, then swapped in).</summary>
    Blob = 2,
    /// <summary>No tier held any page of the prompt: it was prefilled from the persisted tokens.</summary>
    Recompute = 3,
}

/// <summary>
/// Numbers of one answered turn, sent with the last chunk. <paramref name="KvTier"/> is the tier that served the
/// prompt's KV (null when the engine has no KV tiers, e.g. a test double); <paramref name="CachedPromptTokens"/> are
/// the prompt tokens whose KV was found (device + host), so PromptTokens − CachedPromptTokens were prefilled.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GenerationStats(
    [property: Id(0)] int PromptTokens,
    [property: Id(1)] int GeneratedTokens,
    [property: Id(2)] TimeSpan TimeToFirstToken,
    [property: Id(3)] TimeSpan Elapsed,
    [property: Id(4)] FinishReason FinishReason,
    [property: Id(5)] KvResumeTier? KvTier = null,
    [property: Id(6)] int CachedPromptTokens = 0);

/// <summary>
/// A piece of streamed answer text. The last chunk of a turn has <see cref="Stats"/> set (its Text may be empty);
/// by the time it is sent the assistant turn is persisted.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TokenChunk([property: Id(0)] string Text, [property: Id(1)] GenerationStats? Stats = null)
{
    public bool IsFinal => Stats is not null;
}
