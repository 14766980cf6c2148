namespace Actors.Engine.Sampling;

/// <summary>
/// Picks the next token of one sequence from its logits, as transformers' warpers do, in their order:
/// temperature, top-k (keep logits ≥ the k-th largest), top-p (sort descending, keep the smallest prefix whose
/// probability reaches p, at least one token), then a draw from the renormalised distribution.
/// Temperature 0 (or top-k 1) is greedy: argmax, lowest index on ties. Each sampler has its own generator seeded
/// from <see cref="SamplingParams.Seed"/>, so a sequence's tokens do not depend on what it was batched with.
/// </summary>
public sealed class Sampler
{
    private readonly Xoshiro256 _rng;
    private double[] _probs = [];
    private int[] _order = [];

    public Sampler(SamplingParams parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate(parameters);
        Params = parameters;
        _rng = new Xoshiro256(parameters.Seed);
    }

    public SamplingParams Params { get; }

    public bool IsGreedy => Params.Temperature <= 0f || Params.TopK == 1;

    /// <summary>The next token for these logits (vocab); advances this sampler's generator unless greedy.</summary>
    public int Sample(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        if (IsGreedy) return Argmax(logits);
        if (_probs.Length < logits.Length) { _probs = new double[logits.Length]; _order = new int[logits.Length]; }
        return Draw(logits, NextRow(), _probs, _order);
    }

    /// <summary>
    /// This sampler's decision for its next row, for a backend that picks the token itself (the CUDA sampling
    /// kernel): the parameters and, unless greedy, the next uniform of the generator, exactly the one
    /// <see cref="Sample(ReadOnlySpan{float})"/> would have drawn.
    /// </summary>
    public SamplingRow NextRow() =>
        new(Params.Temperature, Params.TopK, Params.TopP, IsGreedy ? 0 : _rng.NextDouble());

    /// <summary>
    /// The token <paramref name="row"/> picks from <paramref name="logits"/> (vocab): the argmax when greedy, else the
    /// first index whose cumulative probability under <see cref="Distribution(ReadOnlySpan{float}, SamplingParams)"/>
    /// exceeds row.Uniform (the last kept token when the uniform falls in the rounding gap above the final sum).
    /// The one definition both backends follow.
    /// </summary>
    public static int Sample(ReadOnlySpan<float> logits, SamplingRow row)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        Validate(row.Temperature, row.TopK, row.TopP);
        if (row.IsGreedy) return Argmax(logits);
        if (double.IsNaN(row.Uniform) || row.Uniform < 0 || row.Uniform >= 1)
            throw new ArgumentOutOfRangeException(nameof(row), row.Uniform, "the uniform must be in [0, 1)");
        var probs = System.Buffers.ArrayPool<double>.Shared.Rent(logits.Length);
        var order = System.Buffers.ArrayPool<int>.Shared.Rent(logits.Length);
        try { return Draw(logits, row, probs, order); }
        finally
        {
            System.Buffers.ArrayPool<double>.Shared.Return(probs);
            System.Buffers.ArrayPool<int>.Shared.Return(order);
        }
    }

    private static int Draw(ReadOnlySpan<float> logits, SamplingRow row, double[] buffer, int[] order)
    {
        var probs = buffer.AsSpan(0, logits.Length);
        Fill(logits, row.Temperature, row.TopK, row.TopP, probs, order);
        double u = row.Uniform;
        double cum = 0;
        int lastKept = -1;
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] <= 0) continue;
            lastKept = i;
            cum += probs[i];
            if (u < cum) return i;
        }
        return lastKept; // u fell in the rounding gap above the last cumulative sum
    }

    /// <summary>Index of the largest logit, lowest index on ties (NaN never wins).</summary>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best] || float.IsNaN(logits[best])) best = i;
        return best;
    }

    /// <summary>
    /// The distribution a sample is drawn from (vocab), after temperature, top-k and top-p; one-hot at the argmax
    /// when greedy.
    /// </summary>
    public static double[] Distribution(ReadOnlySpan<float> logits, SamplingParams parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate(parameters);
        var probs = new double[logits.Length];
        if (parameters.Temperature <= 0f || parameters.TopK == 1) { probs[Argmax(logits)] = 1; return probs; }
        Fill(logits, parameters.Temperature, parameters.TopK, parameters.TopP, probs, new int[logits.Length]);
        return probs;
    }

    private static void Fill(ReadOnlySpan<float> logits, float temperature, int topK, float topP, Span<double> probs, int[] order)
    {
        int n = logits.Length;
        for (int i = 0; i < n; i++) probs[i] = logits[i] / (double)temperature; // scaled logits for now
        if ((topK <= 0 || topK >= n) && topP >= 1f)
        {
            // Plain temperature: softmax over the whole vocabulary, no ordering needed.
            double m = double.NegativeInfinity;
            for (int i = 0; i < n; i++) m = Math.Max(m, probs[i]);
            double total = 0;
            for (int i = 0; i < n; i++) { probs[i] = Math.Exp(probs[i] - m); total += probs[i]; }
            for (int i = 0; i < n; i++) probs[i] /= total;
            return;
        }
        var scaled = probs.ToArray();
        // Candidates: with top-k, the tokens whose logit is ≥ the k-th largest (transformers' TopKLogitsWarper keeps
        // ties with it), found with a size-k heap so the full vocabulary is never sorted; else every token.
        int kept = 0;
        if (topK > 0 && topK < n)
        {
            var heap = new PriorityQueue<int, double>(topK);
            for (int i = 0; i < n; i++)
            {
                if (heap.Count < topK) heap.Enqueue(i, scaled[i]);
                else if (heap.TryPeek(out _, out double low) && scaled[i] > low) heap.DequeueEnqueue(i, scaled[i]);
            }
            heap.TryPeek(out _, out double kth);
            for (int i = 0; i < n; i++) if (scaled[i] >= kth) order[kept++] = i;
        }
        else
        {
            for (int i = 0; i < n; i++) order[i] = i;
            kept = n;
        }
        var idx = order.AsSpan(0, kept);
        // Descending by scaled logit, lower index first on ties (a stable order for top-p's cut).
        idx.Sort((a, b) => scaled[a] != scaled[b] ? scaled[b].CompareTo(scaled[a]) : a.CompareTo(b));

        // Softmax over the kept tokens (max-subtracted, double).
        double max = scaled[idx[0]];
        double sum = 0;
        probs.Clear();
        for (int r = 0; r < kept; r++) { int i = idx[r]; probs[i] = Math.Exp(scaled[i] - max); sum += probs[i]; }
        for (int r = 0; r < kept; r++) probs[idx[r]] /= sum;

        if (topP < 1f)
        {
            // Keep a token while the mass ranked above it is still below p: the smallest prefix reaching p.
            double before = 0;
            int keep = 0;
            while (keep < kept && (keep == 0 || before < topP)) { before += probs[idx[keep]]; keep++; }
            for (int r = keep; r < kept; r++) probs[idx[r]] = 0;
            for (int r = 0; r < keep; r++) probs[idx[r]] /= before;
        }
    }

    private static void Validate(SamplingParams p)
    {
        Validate(p.Temperature, p.TopK, p.TopP);
        if (p.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(p.MaxNewTokens), p.MaxNewTokens, "max new tokens must be ≥ 1");
    }

    private static void Validate(float temperature, int topK, float topP)
    {
        if (float.IsNaN(temperature) || temperature < 0) throw new ArgumentOutOfRangeException(nameof(SamplingParams.Temperature), temperature, "temperature must be ≥ 0 (0 = greedy)");
        if (topK < 0) throw new ArgumentOutOfRangeException(nameof(SamplingParams.TopK), topK, "top-k must be ≥ 0 (0 = off)");
        if (float.IsNaN(topP) || topP <= 0 || topP > 1) throw new ArgumentOutOfRangeException(nameof(SamplingParams.TopP), topP, "top-p must be in (0, 1] (1 = off)");
    }

    /// <summary>xoshiro256** seeded through SplitMix64: small, fast, and the same sequence on every platform.</summary>
    private sealed class Xoshiro256
    {
        private ulong _s0, _s1, _s2, _s3;

        public Xoshiro256(ulong seed)
        {
            ulong x = seed;
            _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
        }

        private static ulong SplitMix(ref ulong x)
        {
            ulong z = x += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public ulong Next()
        {
            ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
            ulong t = _s1 << 17;
            _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
            _s2 ^= t;
            _s3 = ulong.RotateLeft(_s3, 45);
            return result;
        }

        /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
    }
}
