using Actors.Abstractions;

namespace Actors.Grains;

/// <summary>Persisted state of one session (grain storage <see cref="ActorsStorage.SessionStore"/>).</summary>
[GenerateSerializer]
public sealed class DocumentState
{
    /// <summary>Model directory; null until the session is opened.</summary>
    [Id(0)] public string? ModelRef { get; set; }
    [Id(1)] public string? SystemPrompt { get; set; }
    [Id(2)] public SamplingOptions Sampling { get; set; } = SamplingOptions.Greedy();
    /// <summary>User and assistant turns in order (the system prompt is not a turn).</summary>
    [Id(3)] public List<Turn> Turns { get; set; } = [];
    /// <summary>
    /// Token ids of the conversation as last run: chat-template prompt of every turn up to the last user turn,
    /// then the generated answer. Empty after the model changes; rebuilt by the next turn.
    /// </summary>
    [Id(4)] public List<int> TokenIds { get; set; } = [];
    [Id(5)] public DateTimeOffset CreatedAt { get; set; }
    [Id(6)] public DateTimeOffset UpdatedAt { get; set; }
    /// <summary>
    /// Leading tokens of <see cref="TokenIds"/> whose KV the session's blob snapshot is known to hold (0: none or unknown).
    /// A deactivation stores a snapshot only when the engine holds more, so a shorter export never replaces a longer one.
    /// </summary>
    [Id(7)] public int SnapshotTokens { get; set; }
}

/// <summary>Names of the grain storages the grains use; the silo registers a provider under each.</summary>
public static class ActorsStorage
{
    public const string SessionStore = "sessions";
}
