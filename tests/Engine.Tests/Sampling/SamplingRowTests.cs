using Actors.Engine.Sampling;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Tests.Sampling;

/// <summary>
/// The Sampler split into NextRow (the generator's draw) and the static Sample (the pick), and the device kernel's
/// algorithm (SamplingKernels.Reference: order-key histogram, per-key masses) against the Sampler on bf16 logits with
/// many ties, odd vocabularies and mixed parameters. These run on the CPU; the kernel itself is checked against both
/// on a GPU (tests/Kernels.Tests/Cuda/SamplingCudaTests, tests/Engine.Tests/Cuda/SamplingCudaEngineTests).
/// </summary>
public class SamplingRowTests
{
    /// <summary>
    /// Random bf16-exact logits: a spread of normal-ish values (many exact ties once rounded to bf16), a few peaked
    /// tokens, and some −inf, −0 and +0 entries.
    /// </summary>
    internal static float[] Logits(int n, int seed, float spread = 3f)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            double g = rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5;
            a[i] = (float)(g * spread);
        }
        for (int j = 0; j < 5; j++) a[rng.Next(n)] = spread * (3 + j);
        a[rng.Next(n)] = float.NegativeInfinity;
        a[rng.Next(n)] = -0f;
        a[rng.Next(n)] = 0f;
        Bf16.Round(a);
        return a;
    }

    internal static SamplingRow RandomRow(Random rng, int n)
    {
        float[] temps = [0f, 0.25f, 0.7f, 1f, 1.3f, 2.5f];
        int[] ks = [0, 0, 1, 2, 7, 50, 1000, n - 1, n, n + 5];
        float[] ps = [1f, 1f, 0.9f, 0.5f, 0.95f, 0.1f, 0.999f];
        return new SamplingRow(temps[rng.Next(temps.Length)], ks[rng.Next(ks.Length)], ps[rng.Next(ps.Length)], rng.NextDouble());
    }

    /// <summary>
    /// Asserts <paramref name="actual"/> is the Sampler's pick, or (a sum-order rounding difference) the pick of the same
    /// row with its uniform moved by 1e-9.
    /// </summary>
    internal static void SamePick(float[] logits, SamplingRow row, int actual, string what)
    {
        int expected = Sampler.Sample(logits, row);
        if (expected == actual) return;
        foreach (double d in new[] { -1e-9, 1e-9 })
        {
            double u = Math.Clamp(row.Uniform + d, 0, Math.BitDecrement(1.0));
            if (Sampler.Sample(logits, row with { Uniform = u }) == actual) return;
        }
        Assert.Fail($"{what}: {row} picks {expected} on the host, got {actual} (logit {logits[expected]} vs {logits[Math.Clamp(actual, 0, logits.Length - 1)]})");
    }

    [Fact]
    public void NextRow_then_static_Sample_repeats_the_instance_Sample()
    {
        var logits = Logits(503, 3);
        foreach (var p in new[] { new SamplingParams(0.8f, 20, 0.9f, Seed: 5), new SamplingParams(1.2f, Seed: 6), new SamplingParams(0.5f, 0, 0.6f, Seed: 7), SamplingParams.Greedy() })
        {
            var a = new Sampler(p);
            var b = new Sampler(p);
            for (int step = 0; step < 40; step++)
            {
                var row = b.NextRow();
                Assert.Equal(b.IsGreedy, row.IsGreedy);
                if (row.IsGreedy) Assert.Equal(0, row.Uniform);
                Assert.Equal(a.Sample(logits), Sampler.Sample(logits, row));
            }
        }
    }

    [Fact]
    public void Static_Sample_is_the_inverse_cdf_of_Distribution()
    {
        var logits = Logits(211, 9);
        var rng = new Random(2);
        for (int trial = 0; trial < 300; trial++)
        {
            var row = RandomRow(rng, logits.Length);
            if (row.IsGreedy) { Assert.Equal(Sampler.Argmax(logits), Sampler.Sample(logits, row)); continue; }
            var dist = Sampler.Distribution(logits, new SamplingParams(row.Temperature, row.TopK, row.TopP));
            int token = Sampler.Sample(logits, row);
            Assert.True(dist[token] > 0, $"{row}: picked token {token} has probability 0");
            double below = dist.Take(token).Sum();
            Assert.True(below <= row.Uniform + 1e-12 && row.Uniform < below + dist[token] + 1e-12,
                $"{row}: token {token} covers [{below}, {below + dist[token]}), not the uniform");
        }
    }

    [Fact]
    public void Bad_rows_are_rejected_naming_the_field()
    {
        float[] logits = [1f, 2f];
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Sample(logits, new SamplingRow(-1f, 0, 1f, 0.5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Sample(logits, new SamplingRow(1f, -2, 1f, 0.5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Sample(logits, new SamplingRow(1f, 0, 0f, 0.5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Sample(logits, new SamplingRow(1f, 0, 1f, 1.0)));
        Assert.Throws<ArgumentException>(() => Sampler.Sample([], new SamplingRow(1f, 0, 1f, 0.5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => SamplingKernels.Validate([new SamplingKernels.SampleRow(0.5, 1f, 0, 1.5f)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SamplingKernels.Validate([new SamplingKernels.SampleRow(-0.1, 1f, 0, 1f)]));
        SamplingKernels.Validate([new SamplingKernels.SampleRow(7, 0f, 0, 1f)]); // greedy: the uniform is unused
    }

    [Fact]
    public void Order_keys_sort_like_the_values_and_merge_signed_zeros()
    {
        float[] values = [float.NegativeInfinity, -3e38f, -2.5f, -1f, -1e-30f, -0f, 0f, 1e-30f, 0.5f, 1f, 3e38f, float.PositiveInfinity];
        var bits = Bf16.FromSingles(values);
        for (int i = 1; i < values.Length; i++)
        {
            int a = SamplingKernels.OrderKey(bits[i - 1]), b = SamplingKernels.OrderKey(bits[i]);
            float va = Bf16.ToSingles([bits[i - 1]])[0], vb = Bf16.ToSingles([bits[i]])[0];
            Assert.Equal(va.CompareTo(vb) == 0 || va == vb, a == b);
            Assert.True(a <= b, $"{values[i - 1]} → {a}, {values[i]} → {b}");
            Assert.Equal(vb, SamplingKernels.KeyValue(b));
        }
        Assert.Equal(0, SamplingKernels.OrderKey(0x7fc0)); // NaN
        Assert.Equal(0, SamplingKernels.OrderKey(0xffc1));
    }

    [Theory]
    [InlineData(1000, 11)]
    [InlineData(32003, 12)]
    [InlineData(151936, 13)]
    [InlineData(7, 14)]
    public void Kernel_algorithm_picks_what_the_Sampler_picks(int vocab, int seed)
    {
        var rng = new Random(seed);
        int rows = vocab > 100_000 ? 12 : 60;
        for (int r = 0; r < rows; r++)
        {
            var logits = Logits(vocab, seed * 1000 + r, spread: (float)(0.5 + 4 * rng.NextDouble()));
            var bits = Bf16.FromSingles(logits);
            var row = RandomRow(rng, vocab);
            int got = SamplingKernels.Reference(bits, new SamplingKernels.SampleRow(row.Uniform, row.Temperature, row.TopK, row.TopP));
            SamePick(logits, row, got, $"vocab {vocab}, row {r}");
        }
    }

    [Theory]
    [InlineData(1000, 1024, 21)]
    [InlineData(32003, 1024, 22)]
    [InlineData(151936, 1024, 23)]
    [InlineData(4099, 64, 24)]   // many tokens per thread segment, 1024 keys per thread
    [InlineData(97, 1024, 25)]   // fewer tokens than threads: most segments are empty
    public void Kernel_thread_structure_picks_what_the_Sampler_picks(int vocab, int threads, int seed)
    {
        var rng = new Random(seed);
        int rows = vocab > 100_000 ? 6 : 40;
        for (int r = 0; r < rows; r++)
        {
            var logits = Logits(vocab, seed * 1000 + r, spread: (float)(0.5 + 4 * rng.NextDouble()));
            var row = RandomRow(rng, vocab);
            int got = SamplingKernelSimulation.Run(Bf16.FromSingles(logits), new SamplingKernels.SampleRow(row.Uniform, row.Temperature, row.TopK, row.TopP), threads);
            SamePick(logits, row, got, $"vocab {vocab}, {threads} threads, row {r}");
        }
        // all-equal logits: the top-p cut falls inside the one tie group, whose ranks span every thread segment
        var flat = new float[vocab];
        foreach (float p in new[] { 0.5f, 0.1f, 0.9f })
            for (int i = 0; i < 10; i++)
            {
                var row = new SamplingRow(1f, 0, p, rng.NextDouble());
                int got = SamplingKernelSimulation.Run(Bf16.FromSingles(flat), new SamplingKernels.SampleRow(row.Uniform, 1f, 0, p), threads);
                SamePick(flat, row, got, $"flat vocab {vocab}, p {p}");
            }
    }

    [Fact]
    public void Kernel_algorithm_handles_ties_straddling_the_top_p_cut()
    {
        // 40 equal logits: top-p 0.5 keeps the first 20 by index; top-k 3 keeps all ties with the 3rd largest.
        var logits = new float[40];
        logits[39] = 0.5f; logits[17] = 0.5f;
        var bits = Bf16.FromSingles(logits);
        var rng = new Random(4);
        foreach (var (k, p) in new[] { (0, 0.5f), (0, 0.25f), (3, 1f), (3, 0.6f), (0, 0.999f), (45, 0.3f) })
            for (int i = 0; i < 200; i++)
            {
                var row = new SamplingRow(1f, k, p, rng.NextDouble());
                int got = SamplingKernels.Reference(bits, new SamplingKernels.SampleRow(row.Uniform, row.Temperature, row.TopK, row.TopP));
                SamePick(logits, row, got, $"k {k}, p {p}");
            }
    }
}
