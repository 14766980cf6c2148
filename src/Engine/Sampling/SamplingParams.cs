namespace Actors.Engine.Sampling;

/// <summary>
/// How the next token is chosen. Temperature 0 means greedy. TopK 0 means no top-k cut; TopP 1 means no nucleus cut.
/// The same seed, prompt and params give the same tokens.
/// </summary>
public sealed record SamplingParams(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong Seed = 0, int MaxNewTokens = 256)
{
    public static SamplingParams Greedy(int maxNewTokens = 256) => new(MaxNewTokens: maxNewTokens);
}
