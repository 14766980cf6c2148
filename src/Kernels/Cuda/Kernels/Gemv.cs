using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of gemv.cu: y (rows, n) = x (rows, k) · wᵀ for decode steps of 1..<see cref="MaxRows"/> rows, w (n, k)
/// row-major bf16, f32 accumulation, bf16 out — a stream over the weights at memory bandwidth, where cuBLASLt's GEMM
/// kernels are tuned for larger row counts. <see cref="SwiGlu"/> fuses the MLP's gate/up product with SwiGLU.
/// Callers check <see cref="Supports"/> and use cuBLASLt otherwise.
/// </summary>
public sealed class GemvKernels
{
    public const int MaxRows = 4;
    private const int Warps = 8, Columns = 2;
    private readonly CudaFunction[] _plain = new CudaFunction[MaxRows], _swiglu = new CudaFunction[MaxRows];

    public GemvKernels(KernelCompiler compiler)
    {
        var module = compiler.Load(KernelSource.Load("gemv.cu"), "gemv.cu");
        for (int m = 1; m <= MaxRows; m++)
        {
            _plain[m - 1] = module.Function($"gemv_{m}");
            _swiglu[m - 1] = module.Function($"gemv_swiglu_{m}");
        }
    }

    /// <summary>Whether the kernels take this product: 1..MaxRows rows, k a multiple of 8, every operand 16-byte aligned.</summary>
    public static bool Supports(int rows, int k, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y) =>
        rows is >= 1 and <= MaxRows && k > 0 && k % 8 == 0 && x.Pointer % 16 == 0 && w.Pointer % 16 == 0 && y.Pointer % 16 == 0;

    /// <summary>Enqueues y (rows, n) = x (rows, k) · wᵀ, w (n, k).</summary>
    public void Matmul(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n)
    {
        Check(x, w, y, rows, k, n, n);
        Launch(_plain[rows - 1], stream, x, w, y, rows, k, n);
    }

    /// <summary>
    /// Enqueues act (rows, inter) = silu(x · gateᵀ) · (x · upᵀ) with gateUp (2·inter, k): gate rows first, then up rows
    /// (the fused projection's layout), gate and up rounded to bf16 before SwiGLU as the unfused path stores them.
    /// </summary>
    public void SwiGlu(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> act, int rows, int k, int inter)
    {
        Check(x, gateUp, act, rows, k, 2 * inter, inter);
        Launch(_swiglu[rows - 1], stream, x, gateUp, act, rows, k, inter);
    }

    private static void Check(DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int wRows, int n)
    {
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the decode product takes 1..{MaxRows} rows");
        if (k <= 0 || k % 8 != 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be a positive multiple of 8 (16-byte loads)");
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "n must be positive");
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require((long)wRows * k, nameof(w), "rows of w * k");
        y.Require((long)rows * n, nameof(y), "rows * n");
        if (x.Pointer % 16 != 0 || w.Pointer % 16 != 0 || y.Pointer % 16 != 0)
            throw new ArgumentException($"the decode product needs 16-byte aligned operands (x 0x{x.Pointer:x}, w 0x{w.Pointer:x}, y 0x{y.Pointer:x})");
    }

    private static void Launch(CudaFunction f, CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n)
    {
        var p = new GemvParams { X = x.Pointer, W = w.Pointer, Y = y.Pointer, Rows = rows, K = k, N = n };
        uint blocks = (uint)((n + Warps * Columns - 1) / (Warps * Columns));
        f.Launch(stream, (blocks, 1, 1), Warps * 32, 0, p);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct GemvParams { public ulong X, W, Y; public int Rows, K, N, Pad; }
}
