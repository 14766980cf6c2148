namespace Actors.Kernels.Cpu;

public static partial class Rope
{
    /// <summary>
    /// Scalar specification of rotary embedding in transformers' rotate_half form (the Llama/Qwen/Mistral layout):
    /// for i &lt; half: out[i] = x[i]·cos[i] − x[i+half]·sin[i]; out[i+half] = x[i+half]·cos[i] + x[i]·sin[i].
    /// x: (tokens, heads, headDim) in place; cos, sin: (tokens, headDim/2), already multiplied by the RoPE
    /// attention scaling.
    /// </summary>
    public static void Reference(Span<float> x, int tokens, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = Validate(x, tokens, heads, headDim, cos, sin);
        for (int t = 0; t < tokens; t++)
        for (int h = 0; h < heads; h++)
        {
            var v = x.Slice((t * heads + h) * headDim, headDim);
            for (int i = 0; i < half; i++)
            {
                float c = cos[t * half + i], s = sin[t * half + i];
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }

    private static int Validate(Span<float> x, int tokens, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        Shapes.NonNegative(tokens, nameof(tokens));
        Shapes.NonNegative(heads, nameof(heads));
        Shapes.NonNegative(headDim, nameof(headDim));
        int half = headDim / 2;
        Shapes.Check(x.Length >= (long)tokens * heads * headDim, nameof(x), "tokens * heads * headDim");
        Shapes.Check(cos.Length >= (long)tokens * half, nameof(cos), "tokens * headDim / 2");
        Shapes.Check(sin.Length >= (long)tokens * half, nameof(sin), "tokens * headDim / 2");
        return half;
    }
}
