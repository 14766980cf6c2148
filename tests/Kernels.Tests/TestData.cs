namespace Actors.Kernels.Tests;

/// <summary>Seeded random inputs and magnitude-scaled comparisons shared by the kernel tests.</summary>
internal static class TestData
{
    public static float[] Random(int length, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Asserts |actual − expected| ≤ relative · magnitude[i] + absolute for every element, naming the first bad index.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> magnitude,
        double relative, double absolute, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i].Equals(actual[i])) continue; // also equal infinities and NaNs
            double tol = relative * magnitude[i] + absolute;
            double err = Math.Abs((double)actual[i] - expected[i]);
            if (!(err <= tol))
                Assert.Fail($"{what}: element {i}: expected {expected[i]:R}, got {actual[i]:R} (error {err:E3} > tolerance {tol:E3})");
        }
    }

    /// <summary>Tolerance relative to each element's own size.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double relative, double absolute, string what)
    {
        var mag = new float[expected.Length];
        for (int i = 0; i < mag.Length; i++) mag[i] = Math.Abs(expected[i]);
        Close(expected, actual, mag, relative, absolute, what);
    }
}
