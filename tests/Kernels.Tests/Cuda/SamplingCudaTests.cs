using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;
using static Actors.Kernels.Cuda.Kernels.SamplingKernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// sampling.cu against <see cref="SamplingKernels.Reference"/> on random bf16 logits (many exact ties) of odd vocabulary
/// sizes with mixed greedy / temperature / top-k / top-p rows; the reference itself is checked against the Engine's
/// Sampler in tests/Engine.Tests/Sampling/SamplingRowTests.
/// </summary>
[Collection("cuda")]
public class SamplingCudaTests
{
    private static ushort[] Logits(int n, int seed, float spread)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * spread);
        for (int j = 0; j < 5; j++) a[rng.Next(n)] = spread * (3 + j);
        a[rng.Next(n)] = float.NegativeInfinity;
        a[rng.Next(n)] = -0f;
        a[rng.Next(n)] = 0f;
        return Bf16.FromSingles(a);
    }

    private static SampleRow RandomRow(Random rng, int n)
    {
        float[] temps = [0f, 0.25f, 0.7f, 1f, 1.3f, 2.5f];
        int[] ks = [0, 0, 1, 2, 7, 50, 1000, n - 1, n, n + 5];
        float[] ps = [1f, 1f, 0.9f, 0.5f, 0.95f, 0.1f, 0.999f];
        return new SampleRow(rng.NextDouble(), temps[rng.Next(temps.Length)], ks[rng.Next(ks.Length)], ps[rng.Next(ps.Length)]);
    }

    /// <summary>The reference's pick, or (sums in another order) its pick with the uniform moved by 1e-9.</summary>
    private static void SamePick(ReadOnlySpan<ushort> logits, SampleRow row, int actual, string what)
    {
        int expected = Reference(logits, row);
        if (expected == actual) return;
        foreach (double d in new[] { -1e-9, 1e-9 })
        {
            var moved = row;
            moved.Uniform = Math.Clamp(row.Uniform + d, 0, Math.BitDecrement(1.0));
            if (Reference(logits, moved) == actual) return;
        }
        Assert.Fail($"{what}: u {row.Uniform:R}, T {row.Temperature}, k {row.TopK}, p {row.TopP}: reference picks {expected}, kernel {actual}");
    }

    [Fact]
    public void Reference_matches_hand_derived_picks()
    {
        // logits [1, 1, 0, −inf], T 1: p = e/(2e+1) ≈ 0.4223 twice, 1/(2e+1) ≈ 0.1554, 0.
        var l = Bf16.FromSingles([1f, 1f, 0f, float.NegativeInfinity]);
        Assert.Equal(0, Reference(l, new SampleRow(0.3, 1f, 0, 1f)));
        Assert.Equal(1, Reference(l, new SampleRow(0.5, 1f, 0, 1f)));
        Assert.Equal(2, Reference(l, new SampleRow(0.9, 1f, 0, 1f)));
        Assert.Equal(2, Reference(l, new SampleRow(0.9999999, 1f, 0, 1f))); // −inf is never drawn
        Assert.Equal(1, Reference(l, new SampleRow(0.6, 1f, 2, 1f)));      // top-k 2: {0, 1}, each 0.5
        Assert.Equal(0, Reference(l, new SampleRow(0.99, 1f, 1, 1f)));     // top-k 1 is greedy: lowest index
        Assert.Equal(1, Reference(l, new SampleRow(0.6, 1f, 0, 0.5f)));    // mass above token 1 is 0.4223 < 0.5: kept
        Assert.Equal(0, Reference(l, new SampleRow(0.99, 1f, 0, 0.4f)));   // 0.4223 ≥ 0.4: only token 0
        Assert.Equal(0, Reference(l, new SampleRow(0.7, 0f, 0, 1f)));      // greedy ignores u: lowest index of the max
        Assert.Equal(1, Reference(Bf16.FromSingles([-0f, 0f]), new SampleRow(0.75, 1f, 0, 1f))); // −0 = +0: 0.5 each
    }

    [Theory]
    [InlineData(1000, 37, 64)]
    [InlineData(32003, 23, 5)]    // fewer histograms than rows: blocks loop over rows
    [InlineData(151936, 19, 64)]
    [InlineData(7, 9, 2)]
    public void Kernel_matches_reference(int vocab, int rows, int blocks)
    {
        var gpu = Gpu.Require();
        var rng = new Random(vocab + rows);
        var logits = new ushort[(long)rows * vocab];
        var rowParams = new SampleRow[rows];
        for (int r = 0; r < rows; r++)
        {
            Logits(vocab, vocab * 7 + r, (float)(0.5 + 4 * rng.NextDouble())).CopyTo(logits, (long)r * vocab);
            rowParams[r] = RandomRow(rng, vocab);
        }
        logits[5] = 0x7fc0; // a NaN is never picked
        using var dLogits = gpu.Upload<ushort>(logits);
        using var dRows = gpu.Upload<SampleRow>(rowParams);
        using var dWs = gpu.Device.Allocate<int>(WorkspaceLength(blocks));
        using var dOut = gpu.Device.Allocate<int>(rows);
        using var stream = gpu.Device.CreateStream();
        gpu.Sampling.Sample(stream, dLogits, rows, vocab, dRows, dWs, dOut);
        stream.Synchronize();
        var got = dOut.ToArray();
        for (int r = 0; r < rows; r++)
            SamePick(logits.AsSpan(r * vocab, vocab), rowParams[r], got[r], $"vocab {vocab}, row {r}");

        // Launching again gives the same tokens: integer histograms and fixed-order sums.
        gpu.Sampling.Sample(stream, dLogits, rows, vocab, dRows, dWs, dOut);
        stream.Synchronize();
        Assert.Equal(got, dOut.ToArray());
    }

    [Fact]
    public void Kernel_draws_follow_the_distribution()
    {
        // One row repeated with uniforms on a grid: the picks must be the reference's for every uniform, so the
        // kernel's cumulative distribution is the reference's at 4001 points (top-k 50, top-p 0.9, T 0.8).
        var gpu = Gpu.Require();
        const int vocab = 4099, rows = 4001;
        // spread 0.5: the planted spikes (1.5 .. 3.5) leave room in the top-p mass for the body's tokens, so the grid reaches many
        var row = Logits(vocab, 77, 0.5f);
        var logits = new ushort[(long)rows * vocab];
        var rowParams = new SampleRow[rows];
        for (int r = 0; r < rows; r++)
        {
            row.CopyTo(logits, (long)r * vocab);
            rowParams[r] = new SampleRow(r / (double)rows, 0.8f, 50, 0.9f);
        }
        using var dLogits = gpu.Upload<ushort>(logits);
        using var dRows = gpu.Upload<SampleRow>(rowParams);
        using var dWs = gpu.Device.Allocate<int>(WorkspaceLength(64));
        using var dOut = gpu.Device.Allocate<int>(rows);
        using var stream = gpu.Device.CreateStream();
        gpu.Sampling.Sample(stream, dLogits, rows, vocab, dRows, dWs, dOut);
        stream.Synchronize();
        var got = dOut.ToArray();
        for (int r = 0; r < rows; r++) SamePick(row, rowParams[r], got[r], $"u {r}/{rows}");
        Assert.True(got.Distinct().Count() > 5, "the grid of uniforms should reach several tokens");
    }

    [Fact]
    public void Launcher_checks_sizes()
    {
        var gpu = Gpu.Require();
        using var dLogits = gpu.Device.Allocate<ushort>(100);
        using var dRows = gpu.Device.Allocate<SampleRow>(2);
        using var dWs = gpu.Device.Allocate<int>(WorkspaceLength(1));
        using var dOut = gpu.Device.Allocate<int>(2);
        using var stream = gpu.Device.CreateStream();
        Assert.Throws<ArgumentException>(() => gpu.Sampling.Sample(stream, dLogits, 2, 51, dRows, dWs, dOut));
        Assert.Throws<ArgumentException>(() => gpu.Sampling.Sample(stream, dLogits, 2, 50, dRows, dWs.Span.Slice(0, 100), dOut));
    }
}
