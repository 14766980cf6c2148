using Actors.Abstractions;
using Actors.Engine.Sampling;

namespace Actors.Grains;

internal static class Sampling
{
    public static SamplingParams ToEngine(this SamplingOptions o) =>
        new(o.Temperature, o.TopK, o.TopP, o.Seed, o.MaxNewTokens);
}
