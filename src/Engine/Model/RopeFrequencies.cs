namespace Actors.Engine.Model;

/// <summary>
/// RoPE inverse frequencies and cos/sin tables, computed the way Hugging Face transformers 5 does
/// (src/transformers/modeling_rope_utils.py and LlamaRotaryEmbedding), step by step in the same precision:
/// torch builds inv_freq as float32 tensors (`torch.arange(0, dim, 2, dtype=int64).float() / dim`, then
/// `base ** that`, then `1.0 / that`), while scalar bookkeeping (YaRN's correction range, llama3's wavelength
/// bounds, mscale) is Python float64. Every float32 tensor step below is one float operation here, with each
/// Python scalar operand rounded to float32 first, as torch does when it mixes a scalar into a float32 tensor.
/// <para>
/// Where torch's devices differ we follow torch on CPU (which is where inv_freq is built at model init):
/// `tensor / scalar` is a true division on CPU but a multiplication by the reciprocal on CUDA (identical when
/// the divisor is a power of two), and float32 `pow`/`cos` are vendor approximations within an ulp or two; we
/// evaluate pow and cos in float64 and round once, the correctly rounded value those approximations aim at.
/// Checked against PyTorch on CPU running transformers' formulas: inv_freq and the attention factor match bit for
/// bit for every type (tests keep some of those bit patterns); cos/sin differ from torch's vectorized cos/sin by at
/// most one ulp in about 5% of entries.
/// </para>
/// <para>
/// Dynamic NTK and the sequence length: transformers' `dynamic_rope_update` takes
/// `seq_len = max(position_ids) + 1` of the current forward call. If it exceeds `max_seq_len_cached`
/// (initially max_position_embeddings) inv_freq is recomputed for that seq_len and the cache grows; if it falls
/// below max_position_embeddings while the cache had grown, inv_freq is reset to the original. So during
/// generation (prefill of T tokens, then one token per step) every decode step past max_position_embeddings
/// recomputes inv_freq with seq_len = position + 1, and the keys already in the KV cache keep the rotation of
/// the step that wrote them. To mirror it, the engine passes <c>seqLen</c> = max(position) + 1 of each forward
/// call to <see cref="Compute"/> (the result equals the default RoPE whenever seqLen &lt;= max_position_embeddings).
/// In that update path seq_len is a tensor, so the new base is computed in float32 tensor arithmetic, which
/// <see cref="Compute"/> mirrors.
/// </para>
/// </summary>
public static class RopeFrequencies
{
    /// <summary>
    /// inv_freq, length headDim / 2, and the factor by which cos and sin are multiplied (YaRN's attention factor,
    /// 1 otherwise). <paramref name="seqLen"/> matters only for dynamic NTK (see the class comment).
    /// </summary>
    public static (float[] InvFreq, float AttentionScaling) Compute(ModelConfig config, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(config);
        int dim = config.HeadDim;
        if (dim <= 0 || dim % 2 != 0)
            throw new ArgumentException($"head_dim must be positive and even, got {dim}", nameof(config));
        double theta = config.RopeTheta;
        RopeScaling? s = config.RopeScaling;
        string type = s?.Type ?? "default";
        switch (type)
        {
            case "default":
                return (Default(dim, theta), 1f);
            case "linear":
            {
                float[] inv = Default(dim, theta);
                float f = (float)s!.Factor; // `inv_freq /= factor`
                for (int i = 0; i < inv.Length; i++) inv[i] /= f;
                return (inv, 1f);
            }
            case "dynamic":
                return (DynamicNtk(dim, theta, s!.Factor, config.MaxPositionEmbeddings, seqLen), 1f);
            case "yarn":
                return Yarn(dim, theta, s!, config.MaxPositionEmbeddings);
            case "llama3":
                return (Llama3(dim, theta, s!, config.MaxPositionEmbeddings), 1f);
            default:
                throw new ModelFormatException(config.Source, "rope_type",
                    $"unsupported RoPE type '{type}'; supported: {string.Join(", ", ModelConfig.SupportedRopeTypes)}");
        }
    }

    /// <summary>
    /// cos and sin tables, each (positions.Length, invFreq.Length) row-major: freq = (float)position * inv_freq in
    /// float32, then cos(freq) * attentionScaling in float32. transformers concatenates (freqs, freqs) to a full
    /// head_dim; both halves are equal, so only one is stored.
    /// </summary>
    public static void CosSin(float[] invFreq, float attentionScaling, ReadOnlySpan<int> positions, Span<float> cos, Span<float> sin)
    {
        ArgumentNullException.ThrowIfNull(invFreq);
        int half = invFreq.Length;
        long need = (long)positions.Length * half;
        if (cos.Length < need) throw new ArgumentException($"cos has {cos.Length} elements, need {need} (tokens {positions.Length} x {half})", nameof(cos));
        if (sin.Length < need) throw new ArgumentException($"sin has {sin.Length} elements, need {need} (tokens {positions.Length} x {half})", nameof(sin));
        for (int t = 0; t < positions.Length; t++)
        {
            float p = positions[t]; // position_ids.float()
            Span<float> c = cos.Slice(t * half, half), sn = sin.Slice(t * half, half);
            for (int i = 0; i < half; i++)
            {
                float freq = p * invFreq[i]; // matmul with inner size 1: one float32 product
                c[i] = (float)Math.Cos(freq) * attentionScaling;
                sn[i] = (float)Math.Sin(freq) * attentionScaling;
            }
        }
    }

    /// <summary>float32 `arange(0, dim, 2).float() / dim`, element k.</summary>
    static float Exponent(int k, int dim) => (float)(2 * k) / (float)dim;

    /// <summary>float32 `base ** e` with the scalar base rounded to float32 (torch's type promotion).</summary>
    static float Pow(float b, float e) => (float)Math.Pow(b, e);

    /// <summary>`1.0 / (base ** (arange(0, dim, 2).float() / dim))` in float32.</summary>
    static float[] Default(int dim, double theta)
    {
        var inv = new float[dim / 2];
        float b = (float)theta;
        for (int k = 0; k < inv.Length; k++) inv[k] = 1f / Pow(b, Exponent(k, dim));
        return inv;
    }

    /// <summary>
    /// _compute_dynamic_ntk_parameters. At seqLen &lt;= max_position_embeddings the base is unchanged (in Python
    /// float64, base * 1.0 ** x == base). Beyond it, mirrors the forward-time path where seq_len is an int64
    /// tensor: `base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))` in float32.
    /// </summary>
    static float[] DynamicNtk(int dim, double theta, double factor, int maxPos, int seqLen)
    {
        if (seqLen <= maxPos) return Default(dim, theta);
        float x = (float)factor * (float)seqLen;        // factor * seq_len
        x /= (float)maxPos;                              // / max_position_embeddings
        x -= (float)(factor - 1);                        // - (factor - 1), a Python float
        // ** (dim / (dim - 2)): torch on CPU keeps the Python float exponent in float64 (checked against torch)
        x = (float)Math.Pow(x, (double)dim / (dim - 2));
        float b = (float)theta * x;                      // base * ..., a 0-dim float32 tensor
        var inv = new float[dim / 2];
        for (int k = 0; k < inv.Length; k++) inv[k] = 1f / Pow(b, Exponent(k, dim));
        return inv;
    }

    /// <summary>get_mscale of _compute_yarn_parameters (float64).</summary>
    static double GetMScale(double scale, double mscale = 1)
    {
        if (scale <= 1) return 1.0;
        return 0.1 * mscale * Math.Log(scale) + 1.0;
    }

    /// <summary>_compute_yarn_parameters.</summary>
    static (float[] InvFreq, float AttentionScaling) Yarn(int dim, double theta, RopeScaling s, int maxPos)
    {
        int orig = s.OriginalMaxPositionEmbeddings ?? maxPos;
        double factor = s.Factor;

        double attention;
        if (s.AttentionFactor is double af) attention = af;
        else if (s.MScale is double m && m != 0 && s.MScaleAllDim is double mad && mad != 0)
            attention = GetMScale(factor, m) / GetMScale(factor, mad);
        else attention = GetMScale(factor);

        // `beta_fast or 32`, `beta_slow or 1`: zero also falls back to the default
        double betaFast = s.BetaFast is double bf && bf != 0 ? bf : 32;
        double betaSlow = s.BetaSlow is double bs && bs != 0 ? bs : 1;

        double CorrectionDim(double rotations) =>
            (dim * Math.Log(orig / (rotations * 2 * Math.PI))) / (2 * Math.Log(theta));
        double low = CorrectionDim(betaFast), high = CorrectionDim(betaSlow);
        if (s.Truncate ?? true)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }
        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high) high += 0.001; // linear_ramp_factor: prevent singularity

        int half = dim / 2;
        var inv = new float[half];
        float b = (float)theta, f = (float)factor;
        float lowF = (float)low, span = (float)(high - low);
        for (int k = 0; k < half; k++)
        {
            float pos = Pow(b, Exponent(k, dim));
            float extrapolation = 1f / pos;
            float interpolation = 1f / (f * pos);
            float ramp = ((float)k - lowF) / span;   // (arange(dim // 2, float32) - min) / (max - min)
            ramp = Math.Clamp(ramp, 0f, 1f);
            float extrapolationFactor = 1f - ramp;
            inv[k] = interpolation * (1f - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return (inv, (float)attention);
    }

    /// <summary>_compute_llama3_parameters.</summary>
    static float[] Llama3(int dim, double theta, RopeScaling s, int maxPos)
    {
        float[] inv = Default(dim, theta);
        double factor = s.Factor;
        double lowFreqFactor = s.LowFreqFactor ?? throw new ArgumentException("llama3 RoPE needs low_freq_factor");
        double highFreqFactor = s.HighFreqFactor ?? throw new ArgumentException("llama3 RoPE needs high_freq_factor");
        int oldContext = s.OriginalMaxPositionEmbeddings ?? maxPos;

        // Python float64 scalars, rounded to float32 where they meet a tensor
        float lowFreqWavelen = (float)(oldContext / lowFreqFactor);
        float highFreqWavelen = (float)(oldContext / highFreqFactor);
        float twoPi = (float)(2 * Math.PI);
        float f = (float)factor, lowF = (float)lowFreqFactor, oldF = oldContext;
        float smoothSpan = (float)(highFreqFactor - lowFreqFactor);

        for (int k = 0; k < inv.Length; k++)
        {
            float wavelen = (1f / inv[k]) * twoPi;             // `2 * math.pi / inv_freq` = reciprocal * scalar
            float scaled = wavelen > lowFreqWavelen ? inv[k] / f : inv[k];
            float smooth = ((1f / wavelen) * oldF - lowF) / smoothSpan;
            float smoothed = (1f - smooth) * scaled / f + smooth * scaled;
            bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            inv[k] = medium ? smoothed : scaled;
        }
        return inv;
    }
}
