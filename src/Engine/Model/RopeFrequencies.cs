namespace Actors.Engine.Model;

/// <summary>
/// TEMPORARY: default RoPE only, so the engine can be built and tested; replaced on merge by the full version
/// (linear, dynamic, yarn, llama3) with these same two signatures.
/// </summary>
public static class RopeFrequencies
{
    /// <summary>inv_freq (headDim/2) and the attention scaling for a forward whose longest sequence is seqLen.</summary>
    public static (float[] InvFreq, float AttentionScaling) Compute(ModelConfig config, int seqLen)
    {
        var type = config.RopeScaling?.Type ?? "default";
        if (!string.Equals(type, "default", StringComparison.OrdinalIgnoreCase))
            throw new NotSupportedException($"{config.Source}: rope_scaling.type '{type}' is not supported by this build");
        int dim = config.HeadDim;
        var invFreq = new float[dim / 2];
        // As torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
        for (int i = 0; i < invFreq.Length; i++)
            invFreq[i] = 1f / MathF.Pow((float)config.RopeTheta, (float)(2 * i) / dim);
        return (invFreq, 1f);
    }

    /// <summary>cos, sin: (tokens, headDim/2), angle = position · inv_freq in float32, times the attention scaling.</summary>
    public static void CosSin(float[] invFreq, float attentionScaling, ReadOnlySpan<int> positions, Span<float> cos, Span<float> sin)
    {
        int half = invFreq.Length;
        if (cos.Length < positions.Length * half) throw new ArgumentException("cos is shorter than tokens * headDim/2", nameof(cos));
        if (sin.Length < positions.Length * half) throw new ArgumentException("sin is shorter than tokens * headDim/2", nameof(sin));
        for (int t = 0; t < positions.Length; t++)
        for (int i = 0; i < half; i++)
        {
            float angle = positions[t] * invFreq[i];
            cos[t * half + i] = (float)Math.Cos(angle) * attentionScaling;
            sin[t * half + i] = (float)Math.Sin(angle) * attentionScaling;
        }
    }
}
