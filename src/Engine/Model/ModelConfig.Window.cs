namespace Actors.Engine.Model;

public sealed partial record ModelConfig
{
    /// <summary>
    /// Mistral's sliding_window: each query attends to at most this many most recent keys (itself included),
    /// in every layer. Null: full causal attention.
    /// </summary>
    public int? SlidingWindow { get; init; }
}
