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
        var probs = _probs.AsSpan(0, logits.Length);
        Fill(logits, Params, probs, _order);
        double u = _rng.NextDouble();
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
        Fill(logits, parameters, probs, new int[logits.Length]);
        return probs;
    }

    private static void Fill(ReadOnlySpan<float> logits, SamplingParams p, Span<double> probs, int[] order)
    {
        int n = logits.Length;
        for (int i = 0; i < n; i++) probs[i] = logits[i] / (double)p.Temperature; // scaled logits for now
        if ((p.TopK <= 0 || p.TopK >= n) && p.TopP >= 1f)
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
        if (p.TopK > 0 && p.TopK < n)
        {
            var heap = new PriorityQueue<int, double>(p.TopK);
            for (int i = 0; i < n; i++)
            {
                if (heap.Count < p.TopK) heap.Enqueue(i, scaled[i]);
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

        if (p.TopP < 1f)
        {
            // Keep a token while the mass ranked above it is still below p: the smallest prefix reaching p.
            double before = 0;
            int keep = 0;
            while (keep < kept && (keep == 0 || before < p.TopP)) { before += probs[idx[keep]]; keep++; }
            for (int r = keep; r < kept; r++) probs[idx[r]] = 0;
            for (int r = 0; r < keep; r++) probs[idx[r]] /= before;
        }
    }

    private static void Validate(SamplingParams p)
    {
        if (float.IsNaN(p.Temperature) || p.Temperature < 0) throw new ArgumentOutOfRangeException(nameof(p.Temperature), p.Temperature, "temperature must be ≥ 0 (0 = greedy)");
        if (p.TopK < 0) throw new ArgumentOutOfRangeException(nameof(p.TopK), p.TopK, "top-k must be ≥ 0 (0 = off)");
        if (float.IsNaN(p.TopP) || p.TopP <= 0 || p.TopP > 1) throw new ArgumentOutOfRangeException(nameof(p.TopP), p.TopP, "top-p must be in (0, 1] (1 = off)");
        if (p.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(p.MaxNewTokens), p.MaxNewTokens, "max new tokens must be ≥ 1");
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
