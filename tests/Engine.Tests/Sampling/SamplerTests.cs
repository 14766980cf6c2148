using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Sampling;

public class SamplerTests
{
    private static float[] RandomLogits(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
    }

    private static double[] Softmax(float[] logits, double temperature)
    {
        var z = logits.Select(l => l / temperature).ToArray();
        double m = z.Max();
        var e = z.Select(x => Math.Exp(x - m)).ToArray();
        double s = e.Sum();
        return e.Select(x => x / s).ToArray();
    }

    [Fact]
    public void Greedy_is_argmax_with_the_lowest_index_on_ties()
    {
        Assert.Equal(2, Sampler.Argmax([1f, 3f, 5f, 5f, -1f]));
        Assert.Equal(0, Sampler.Argmax([7f, 7f]));
        var s = new Sampler(SamplingParams.Greedy());
        for (int seed = 0; seed < 50; seed++)
        {
            var logits = RandomLogits(97, seed);
            int expected = 0;
            for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[expected]) expected = i;
            Assert.Equal(expected, s.Sample(logits));
        }
    }

    [Fact]
    public void Top_k_one_is_greedy_at_any_temperature()
    {
        for (int seed = 0; seed < 50; seed++)
        {
            var logits = RandomLogits(50, seed);
            var s = new Sampler(new SamplingParams(Temperature: 1.7f, TopK: 1, Seed: (ulong)seed));
            Assert.Equal(Sampler.Argmax(logits), s.Sample(logits));
        }
    }

    [Fact]
    public void Temperature_sampling_over_many_seeds_follows_the_softmax()
    {
        float[] logits = [1.0f, 2.0f, 0.5f, -1.0f, 1.5f];
        const float temperature = 0.8f;
        var expected = Softmax(logits, temperature);
        var counts = new int[logits.Length];
        const int draws = 40_000;
        for (int seed = 0; seed < draws; seed++)
            counts[new Sampler(new SamplingParams(Temperature: temperature, Seed: (ulong)seed)).Sample(logits)]++;
        for (int i = 0; i < logits.Length; i++)
        {
            double p = expected[i], sd = Math.Sqrt(p * (1 - p) / draws);
            Assert.True(Math.Abs(counts[i] / (double)draws - p) < 5 * sd + 1e-4, $"token {i}: {counts[i] / (double)draws:F4} vs {p:F4}");
        }
        // And one generator drawing many times follows it too.
        var one = new Sampler(new SamplingParams(Temperature: temperature, Seed: 42));
        Array.Clear(counts);
        for (int i = 0; i < draws; i++) counts[one.Sample(logits)]++;
        for (int i = 0; i < logits.Length; i++)
            Assert.True(Math.Abs(counts[i] / (double)draws - expected[i]) < 5 * Math.Sqrt(expected[i] * (1 - expected[i]) / draws) + 1e-4);
    }

    [Fact]
    public void Top_p_removes_exactly_the_tail_beyond_p()
    {
        // Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits are their logs), hand-placed out of order.
        float[] logits = [MathF.Log(0.125f), MathF.Log(0.5f), MathF.Log(0.0625f), MathF.Log(0.25f), MathF.Log(0.0625f)];
        // p = 0.7: 0.5 < 0.7, 0.5 + 0.25 = 0.75 ≥ 0.7 → keep {1, 3}.
        var d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopP: 0.7f));
        Assert.Equal([0, 2.0 / 3, 0, 1.0 / 3, 0], d, new RoundedComparer());
        // p = 0.8: need 0.5 + 0.25 + 0.125 → keep {1, 3, 0}.
        d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopP: 0.8f));
        Assert.Equal([0.125 / 0.875, 0.5 / 0.875, 0, 0.25 / 0.875, 0], d, new RoundedComparer());
        // p tiny: the top token always stays.
        d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopP: 0.01f));
        Assert.Equal([0, 1, 0, 0, 0], d);
        // Sampling never leaves the kept set.
        var s = new Sampler(new SamplingParams(Temperature: 1f, TopP: 0.7f, Seed: 5));
        for (int i = 0; i < 2000; i++) Assert.Contains(s.Sample(logits), new[] { 1, 3 });
    }

    [Fact]
    public void Top_k_keeps_the_k_largest_and_ties_with_the_kth()
    {
        float[] logits = [0f, 3f, 1f, 2f, 2f, -1f];
        var d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopK: 2));
        // 2nd largest is 2: tokens 1, 3, 4 kept (ties stay, as transformers' TopKLogitsWarper).
        var kept = Softmax([3f, 2f, 2f], 1);
        Assert.Equal([0, kept[0], 0, kept[1], kept[2], 0], d, new RoundedComparer());
        d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopK: 1));
        Assert.Equal([0, 1, 0, 0, 0, 0], d);
    }

    [Fact]
    public void Top_k_then_top_p_applies_p_to_the_renormalised_top_k()
    {
        float[] logits = [MathF.Log(0.4f), MathF.Log(0.3f), MathF.Log(0.2f), MathF.Log(0.1f)];
        // top-k 2 → {0.4, 0.3} renormalised to {4/7, 3/7}; top-p 0.5 keeps only the first (4/7 ≥ 0.5).
        var d = Sampler.Distribution(logits, new SamplingParams(Temperature: 1f, TopK: 2, TopP: 0.5f));
        Assert.Equal([1, 0, 0, 0], d, new RoundedComparer());
    }

    [Fact]
    public void Distribution_matches_a_brute_force_warper_chain_on_random_logits_with_ties()
    {
        var rng = new Random(9);
        for (int trial = 0; trial < 300; trial++)
        {
            int n = rng.Next(1, 40);
            // Logits on a coarse grid so that ties are common.
            var logits = Enumerable.Range(0, n).Select(_ => (float)(Math.Round(rng.NextDouble() * 6, 0) / 2)).ToArray();
            var p = new SamplingParams(Temperature: 0.5f + (float)rng.NextDouble(), TopK: rng.Next(0, n + 2), TopP: rng.Next(3) == 0 ? 1f : (float)(0.05 + 0.95 * rng.NextDouble()));
            if (p.TopK == 1) continue;
            // Brute force: temperature; top-k by threshold on the fully sorted list; softmax; top-p on the sorted kept list.
            var z = logits.Select(l => l / (double)p.Temperature).ToArray();
            var sorted = Enumerable.Range(0, n).OrderByDescending(i => z[i]).ThenBy(i => i).ToList();
            var keep = p.TopK > 0 && p.TopK < n ? sorted.Where(i => z[i] >= z[sorted[p.TopK - 1]]).ToList() : sorted;
            double m = keep.Max(i => z[i]);
            var e = new double[n];
            foreach (int i in keep) e[i] = Math.Exp(z[i] - m);
            double total = e.Sum();
            for (int i = 0; i < n; i++) e[i] /= total;
            if (p.TopP < 1f)
            {
                double cum = 0;
                var nucleus = new List<int>();
                foreach (int i in keep)
                {
                    if (nucleus.Count > 0 && cum >= p.TopP) break;
                    nucleus.Add(i);
                    cum += e[i];
                }
                for (int i = 0; i < n; i++) e[i] = nucleus.Contains(i) ? e[i] / cum : 0;
            }
            Assert.Equal(e, Sampler.Distribution(logits, p), new RoundedComparer());
        }
    }

    [Fact]
    public void Same_seed_gives_the_same_tokens_and_different_seeds_differ()
    {
        var logits = RandomLogits(97, 1);
        int[] Run(ulong seed)
        {
            var s = new Sampler(new SamplingParams(Temperature: 1.2f, TopK: 40, TopP: 0.95f, Seed: seed));
            return Enumerable.Range(0, 64).Select(_ => s.Sample(logits)).ToArray();
        }
        Assert.Equal(Run(7), Run(7));
        Assert.NotEqual(Run(7), Run(8));
    }

    [Fact]
    public void Bad_parameters_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingParams(Temperature: -1f)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingParams(TopK: -2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingParams(TopP: 0f)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingParams(TopP: 1.5f)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(new SamplingParams(MaxNewTokens: 0)));
    }

    private sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 1e-6;
        public int GetHashCode(double obj) => 0;
    }
}
