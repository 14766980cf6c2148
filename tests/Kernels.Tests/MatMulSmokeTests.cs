using Actors.Kernels.Cpu;

namespace Actors.Kernels.Tests;

public class MatMulSmokeTests
{
    [Fact]
    public void Two_by_two_product_matches_hand_computation()
    {
        // x (1, 2) · wᵀ with w (2, 2): y = [1*3 + 2*4, 1*5 + 2*6] + bias
        float[] y = new float[2];
        MatMul.Compute([1, 2], [3, 4, 5, 6], [0.5f, -1], y, rows: 1, k: 2, n: 2);
        Assert.Equal([11.5f, 16f], y);
    }
}
