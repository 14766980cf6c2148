namespace Actors.Abstractions;

/// <summary>
/// How the next token is chosen, as clients send it (the Engine's SamplingParams mirrored here because Abstractions
/// may not reference the Engine). Temperature 0 means greedy; TopK 0 means no top-k cut; TopP 1 means no nucleus cut.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SamplingOptions(
    [property: Id(0)] float Temperature = 0f,
    [property: Id(1)] int TopK = 0,
    [property: Id(2)] float TopP = 1f,
    [property: Id(3)] ulong Seed = 0,
    [property: Id(4)] int MaxNewTokens = 512)
{
    /// <summary>Default cap on generated tokens per turn.</summary>
    public const int DefaultMaxNewTokens = 512; // equals the MaxNewTokens default above

    public static SamplingOptions Greedy(int maxNewTokens = DefaultMaxNewTokens) => new(MaxNewTokens: maxNewTokens);
}
