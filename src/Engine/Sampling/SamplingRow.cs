namespace Actors.Engine.Sampling;

/// <summary>
/// One logits row's sampling decision, detached from its sequence: the warper parameters and the uniform in [0, 1) the
/// draw uses, taken from the sequence's own generator by <see cref="Sampler.NextRow"/>. A backend turns it into a
/// token with <see cref="Sampler.Sample(ReadOnlySpan{float}, SamplingRow)"/> (CPU) or the device sampling kernel
/// (CUDA), so both consume each sequence's generator identically. Greedy rows carry uniform 0 and draw nothing.
/// </summary>
public readonly record struct SamplingRow(float Temperature, int TopK, float TopP, double Uniform)
{
    public static SamplingRow Greedy => new(0f, 0, 1f, 0);

    /// <summary>Temperature 0 or top-k 1: the argmax, lowest index on ties.</summary>
    public bool IsGreedy => Temperature <= 0f || TopK == 1;
}
