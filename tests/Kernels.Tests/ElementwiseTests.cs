using Actors.Kernels.Cpu;

namespace Actors.Kernels.Tests;

/// <summary>RmsNorm, Rope, SwiGlu, Softmax and Argmax fast paths against their references over every length 0..67.</summary>
public class ElementwiseTests
{
    public static TheoryData<int> Lengths()
    {
        var data = new TheoryData<int>();
        for (int n = 0; n <= 67; n++) data.Add(n);
        data.Add(896);
        data.Add(1031);
        return data;
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNorm_matches_reference(int dim)
    {
        const int rows = 3;
        float[] x = TestData.Random(rows * dim, dim, scale: 3f), weight = TestData.Random(dim, dim + 1);
        float[] expected = new float[rows * dim], actual = new float[rows * dim];
        RmsNorm.Reference(x, weight, expected, rows, dim, 1e-6f);
        RmsNorm.Compute(x, weight, actual, rows, dim, 1e-6f);
        TestData.Close(expected, actual, 2e-6, 1e-7, $"dim {dim}");

        // y may alias x.
        float[] inPlace = (float[])x.Clone();
        RmsNorm.Compute(inPlace, weight, inPlace, rows, dim, 1e-6f);
        Assert.Equal(actual, inPlace);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNorm_AddAndCompute_matches_reference(int dim)
    {
        const int rows = 2;
        float[] residual = TestData.Random(rows * dim, 3 * dim, scale: 2f), x = TestData.Random(rows * dim, 3 * dim + 1);
        float[] weight = TestData.Random(dim, 3 * dim + 2);
        float[] expectedResidual = (float[])residual.Clone(), expected = new float[rows * dim];
        RmsNorm.AddAndReference(expectedResidual, x, weight, expected, rows, dim, 1e-5f);
        float[] actual = new float[rows * dim];
        RmsNorm.AddAndCompute(residual, x, weight, actual, rows, dim, 1e-5f);
        Assert.Equal(expectedResidual, residual); // the add is one f32 rounding either way: exact
        TestData.Close(expected, actual, 2e-6, 1e-7, $"dim {dim}");
        Assert.Equal(TestData.Random(rows * dim, 3 * dim + 1), x); // x is input only
    }

    [Fact]
    public void RmsNorm_AddAndCompute_may_write_y_over_x()
    {
        int rows = 2, dim = 37;
        float[] residual = TestData.Random(rows * dim, 1), x = TestData.Random(rows * dim, 2), weight = TestData.Random(dim, 3);
        float[] r2 = (float[])residual.Clone(), expected = new float[rows * dim];
        RmsNorm.AddAndCompute(r2, x, weight, expected, rows, dim, 1e-6f);
        RmsNorm.AddAndCompute(residual, x, weight, x, rows, dim, 1e-6f);
        Assert.Equal(r2, residual);
        Assert.Equal(expected, x);
    }

    [Fact]
    public void RmsNorm_matches_hand_computation()
    {
        // x = [3, 4]: mean(x²) = 12.5, 1/sqrt(12.5) = 0.28284271; weight [1, 2].
        float[] y = new float[2];
        RmsNorm.Compute([3, 4], [1, 2], y, rows: 1, dim: 2, eps: 0);
        Assert.Equal(3 * 0.28284271f, y[0], 6);
        Assert.Equal(8 * 0.28284271f, y[1], 6);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Rope_is_bit_identical_to_reference(int headDim)
    {
        const int tokens = 3, heads = 2;
        int half = headDim / 2;
        float[] x = TestData.Random(tokens * heads * headDim, headDim), cos = TestData.Random(tokens * half, headDim + 7);
        float[] sin = TestData.Random(tokens * half, headDim + 8);
        float[] expected = (float[])x.Clone(), actual = (float[])x.Clone();
        Rope.Reference(expected, tokens, heads, headDim, cos, sin);
        Rope.Compute(actual, tokens, heads, headDim, cos, sin);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Rope_rotates_a_pair_by_the_given_angle()
    {
        // headDim 2: (a, b) → (a cos − b sin, b cos + a sin); a quarter turn takes (1, 0) to (0, 1).
        float[] x = [1, 0];
        Rope.Compute(x, 1, 1, 2, [0f], [1f]);
        Assert.Equal([0f, 1f], x);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SwiGlu_matches_reference(int n)
    {
        float[] gate = TestData.Random(n, n, scale: 12f), up = TestData.Random(n, n + 1, scale: 3f);
        if (n > 2) { gate[0] = -200f; gate[1] = 200f; } // exp overflow on both sides
        float[] expected = new float[n], actual = new float[n];
        SwiGlu.Reference(gate, up, expected);
        SwiGlu.Compute(gate, up, actual);
        TestData.Close(expected, actual, 4e-6, 1e-30, $"n {n}");

        SwiGlu.Compute(gate, up, gate); // y may alias gate
        Assert.Equal(actual, gate);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Softmax_matches_reference(int n)
    {
        float[] x = TestData.Random(n, n, scale: 20f);
        if (n > 3) { x[1] = 80f; x[2] = float.NegativeInfinity; } // large logit must not overflow; −∞ gets 0
        float[] expected = (float[])x.Clone(), actual = (float[])x.Clone();
        Softmax.Reference(expected);
        Softmax.Compute(actual);
        TestData.Close(expected, actual, 1e-5, 1e-12, $"n {n}");
        if (n > 0) Assert.Equal(1.0, actual.Sum(v => (double)v), 5);
        if (n > 3) Assert.Equal(0f, actual[2]);
    }

    [Fact]
    public void Softmax_of_all_negative_infinity_is_NaN_like_PyTorch_and_one_hot_for_a_lone_finite_value()
    {
        float[] x = new float[37], r = new float[37];
        Array.Fill(x, float.NegativeInfinity);
        Array.Fill(r, float.NegativeInfinity);
        Softmax.Compute(x);
        Softmax.Reference(r);
        Assert.All(x, v => Assert.True(float.IsNaN(v)));
        Assert.All(r, v => Assert.True(float.IsNaN(v)));

        Array.Fill(x, float.NegativeInfinity);
        x[33] = -5f; // masked logits (e.g. after top-k) leave one survivor
        Softmax.Compute(x);
        Assert.Equal(1f, x[33]);
        Assert.Equal(36, x.Count(v => v == 0f));
    }

    [Fact]
    public void Argmax_handles_infinities()
    {
        float[] x = new float[50];
        Array.Fill(x, float.NegativeInfinity);
        Assert.Equal(0, Argmax.Compute(x));
        x[41] = float.PositiveInfinity; x[45] = float.PositiveInfinity;
        Assert.Equal(41, Argmax.Compute(x));
        Assert.Equal(41, Argmax.Reference(x));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Argmax_matches_reference(int n)
    {
        if (n == 0)
        {
            Assert.Equal("x", Assert.Throws<ArgumentException>(() => Argmax.Compute([])).ParamName);
            return;
        }
        float[] x = TestData.Random(n, n);
        Assert.Equal(Argmax.Reference(x), Argmax.Compute(x));
        // Every position as the unique maximum, and ties resolved to the first one.
        for (int at = 0; at < n; at++)
        {
            float[] y = (float[])x.Clone();
            y[at] = 5f;
            Assert.Equal(at, Argmax.Compute(y));
            y[n - 1] = 5f;
            Assert.Equal(at, Argmax.Compute(y));
            Assert.Equal(Argmax.Reference(y), Argmax.Compute(y));
        }
        // A NaN anywhere is reported (the first one), not skipped.
        float[] z = (float[])x.Clone();
        z[n / 2] = float.NaN;
        if (n > 1) z[n - 1] = float.NaN;
        Assert.Equal(n / 2, Argmax.Reference(z));
        Assert.Equal(n / 2, Argmax.Compute(z));
    }

    [Fact]
    public void Argmax_treats_negative_and_positive_zero_as_equal()
    {
        float[] x = new float[40];
        Array.Fill(x, -1f);
        x[20] = -0f; x[30] = 0f;
        Assert.Equal(20, Argmax.Reference(x));
        Assert.Equal(20, Argmax.Compute(x));
    }

    [Fact]
    public void Short_spans_are_rejected_with_the_argument_name()
    {
        Assert.Equal("weight", Assert.Throws<ArgumentException>(() => RmsNorm.Compute(new float[4], new float[1], new float[4], 2, 2, 1e-6f)).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => RmsNorm.Compute(new float[4], new float[2], new float[3], 2, 2, 1e-6f)).ParamName);
        Assert.Equal("residual", Assert.Throws<ArgumentException>(() => RmsNorm.AddAndCompute(new float[3], new float[4], new float[2], new float[4], 2, 2, 1e-6f)).ParamName);
        Assert.Equal("dim", Assert.Throws<ArgumentOutOfRangeException>(() => RmsNorm.Compute(new float[4], new float[2], new float[4], 2, -2, 1e-6f)).ParamName);
        Assert.Equal("sin", Assert.Throws<ArgumentException>(() => Rope.Compute(new float[8], 2, 1, 4, new float[4], new float[3])).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => Rope.Compute(new float[7], 2, 1, 4, new float[4], new float[4])).ParamName);
        Assert.Equal("up", Assert.Throws<ArgumentException>(() => SwiGlu.Compute(new float[5], new float[4], new float[5])).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => SwiGlu.Compute(new float[5], new float[5], new float[4])).ParamName);
    }
}
