using System.Runtime.InteropServices;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of gemm_skinny.cu (compute capability 9.0+: thread block clusters): products of 1..<see cref="MaxRows"/>
/// rows on tensor cores, y (rows, n) = x (rows, k) · wᵀ, w (n, k) row-major bf16, f32 accumulation, bf16 out. They
/// stream the weights once, split over k in clusters of 8 blocks whose partial sums meet in distributed shared memory:
/// no workspace, no atomics, the same sum on every run. For the engine's steps of 5..64 rows (decode batches past
/// gemv.cu's 4 rows, a resumed turn's new tokens), where cuBLASLt's kernels stream the weights at 1.6-3.5 TB/s of an
/// H200's 4.3. <see cref="Matmul"/> writes y or adds into it (the residual add, rounded once as cuBLASLt's beta = 1);
/// <see cref="SwiGlu"/> is the MLP's gate/up product with SwiGLU in the epilogue. Every kernel is programmatic (see
/// <see cref="CudaFunction.Programmatic"/>): it loads its first weights before it waits for the previous kernel.
/// Build with <see cref="TryCreate"/>; callers check <see cref="Supports"/> and keep cuBLASLt otherwise.
/// </summary>
public sealed class SkinnyGemmKernels
{
    public const int MaxRows = 64;
    private const int Splits = 8, Threads = 256, Columns = 128;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Failures = new();
    private readonly CudaFunction[] _plain = new CudaFunction[4], _acc = new CudaFunction[4], _swiglu = new CudaFunction[4];

    private SkinnyGemmKernels(CudaModule module)
    {
        for (int m = 1; m <= 4; m++)
        {
            _plain[m - 1] = module.Function($"skinny_{m}");
            _acc[m - 1] = module.Function($"skinny_acc_{m}");
            _swiglu[m - 1] = module.Function($"skinny_swiglu_{m}");
            foreach (var f in new[] { _plain[m - 1], _acc[m - 1], _swiglu[m - 1] }) f.Programmatic = true; // weights before PDL_WAIT
        }
    }

    /// <summary>Whether ACTORS_SKINNY=0 asks to keep these kernels out (cuBLASLt then serves every step past gemv.cu's rows).</summary>
    public static bool DisabledByEnvironment => Environment.GetEnvironmentVariable("ACTORS_SKINNY") == "0";

    /// <summary>The kernels on this device, or null with the reason they are not available.</summary>
    public static SkinnyGemmKernels? TryCreate(KernelCompiler compiler, out string? reason)
    {
        var device = compiler.Device;
        reason = null;
        if (DisabledByEnvironment) reason = "ACTORS_SKINNY=0";
        else if (device.ComputeMajor < 9)
            reason = $"gemm_skinny.cu needs thread block clusters (compute capability 9.0+); {device.Name} is {device.Architecture}";
        if (reason is not null) return null;
        string source = KernelSource.Load("gemm_skinny.cu");
        string key = $"{device.Ordinal}:{compiler.CacheKey(source, [], device.Architecture)}";
        if (Failures.TryGetValue(key, out reason)) return null; // tried once in this process
        try
        {
            return new SkinnyGemmKernels(compiler.Load(source, "gemm_skinny.cu"));
        }
        catch (Exception e) when (e is NvrtcException or CudaException)
        {
            reason = Failures[key] = $"gemm_skinny.cu for {device.Architecture}: {e.Message}";
            return null;
        }
    }

    /// <summary>Whether the kernels take this product: 1..MaxRows rows, k a multiple of 32, n (SwiGLU: inter) a multiple of 8,
    /// x and w 16-byte aligned, y 4-byte aligned.</summary>
    public static bool Supports(int rows, int k, int n, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y) =>
        rows is >= 1 and <= MaxRows && k > 0 && k % 32 == 0 && n > 0 && n % 8 == 0
        && x.Pointer % 16 == 0 && w.Pointer % 16 == 0 && y.Pointer % 4 == 0;

    /// <summary>Enqueues y (rows, n) = x · wᵀ, or with <paramref name="accumulate"/> y = bf16(y + x · wᵀ) (one rounding).
    /// y must not overlap x.</summary>
    public void Matmul(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate = false)
    {
        Check(x, w, y, rows, k, n, n, "n");
        Launch((accumulate ? _acc : _plain)[(rows + 15) / 16 - 1], stream, x, w, y, rows, k, n, (n + Columns - 1) / Columns);
    }

    /// <summary>
    /// Enqueues act (rows, inter) = silu(x · gateᵀ) · (x · upᵀ) with gateUp (2·inter, k): gate rows first, then up rows,
    /// gate and up rounded to bf16 before SwiGLU as the unfused path stores them (gemv.cu's roundings).
    /// </summary>
    public void SwiGlu(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> act, int rows, int k, int inter)
    {
        Check(x, gateUp, act, rows, k, 2L * inter, inter, "inter");
        Launch(_swiglu[(rows + 15) / 16 - 1], stream, x, gateUp, act, rows, k, inter, (inter + Columns / 2 - 1) / (Columns / 2));
    }

    private static void Check(DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, long wRows, int n, string nName)
    {
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the skinny product takes 1..{MaxRows} rows");
        if (k <= 0 || k % 32 != 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be a positive multiple of 32 (chunks of 32 per mma pair)");
        if (n <= 0 || n % 8 != 0) throw new ArgumentOutOfRangeException(nName, n, $"{nName} must be a positive multiple of 8 (n8 tiles)");
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require(wRows * k, nameof(w), "rows of w * k");
        y.Require((long)rows * n, nameof(y), $"rows * {nName}");
        if (x.Pointer % 16 != 0 || w.Pointer % 16 != 0 || y.Pointer % 4 != 0)
            throw new ArgumentException($"the skinny product needs x and w 16-byte aligned and y 4-byte aligned (x 0x{x.Pointer:x}, w 0x{w.Pointer:x}, y 0x{y.Pointer:x})");
        ulong xEnd = x.Pointer + (ulong)rows * (ulong)k * 2, yEnd = y.Pointer + (ulong)rows * (ulong)n * 2;
        if (x.Pointer < yEnd && y.Pointer < xEnd)
            throw new ArgumentException("the skinny product's y must not overlap x", nameof(y));
    }

    private static void Launch(CudaFunction f, CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, int columnBlocks)
    {
        var p = new SkinnyParams { X = x.Pointer, W = w.Pointer, Y = y.Pointer, Rows = rows, K = k, N = n };
        f.Launch(stream, ((uint)columnBlocks, Splits, 1), Threads, 0, p);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SkinnyParams { public ulong X, W, Y; public int Rows, K, N, Pad; }
}
