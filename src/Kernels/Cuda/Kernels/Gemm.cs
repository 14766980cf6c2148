using System.Runtime.InteropServices;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launcher of gemm_hopper.cu's gemm_wgmma (compute capability 9.0 only, compiled for sm_90a): a persistent
/// warp-specialised wgmma/TMA GEMM in 2-block clusters, y (rows, n) = x (rows, k) · wᵀ, bf16 in and out, f32
/// accumulation. Its reason to exist is <see cref="SwiGlu"/>: the MLP's gate/up product with SwiGLU in the epilogue,
/// which cuBLASLt has no epilogue for, so the 2·inter-column product is never written to memory and read back.
/// <see cref="Matmul"/> (plain, or added into y) is the same kernel without SwiGLU; cuBLASLt is faster there, so the
/// engine does not use it (tests and the harness do).
/// Build with <see cref="TryCreate"/>: on other devices, or where NVRTC cannot build it, the reason comes back and
/// callers keep cuBLASLt.
/// </summary>
public sealed class GemmKernels
{
    /// <summary>GM_SHARED: 4 stages of {x block 128 x 64, w block 256 x 64} bf16, two 16 KiB output staging buffers, 8
    /// mbarriers, 1 KiB alignment slack.</summary>
    public const int Shared = 4 * 3 * 16384 + 2 * 16384 + 64 + 1024;
    private const int Threads = 384;
    /// <summary>Row-tile pairs per raster group (gm_tile): 8 measured best of 2 .. 32 on an H200.</summary>
    private const int RasterGroup = 8;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Failures = new();
    private readonly CudaFunction _gemm;
    private readonly CudaDevice _device;
    private readonly Dictionary<(ulong Pointer, long Rows, int Columns, uint BoxRows), TensorMap> _maps = [];

    /// <summary>Clusters of 2 blocks that are resident at once (the persistent grid's size / 2).</summary>
    public int Clusters { get; }

    private GemmKernels(CudaDevice device, CudaFunction gemm, int clusters)
    {
        _device = device;
        _gemm = gemm;
        Clusters = clusters;
    }

    /// <summary>Whether ACTORS_GEMM_WGMMA=0 asks to keep this module out (cuBLASLt and the SwiGLU kernel then serve).</summary>
    public static bool DisabledByEnvironment => Environment.GetEnvironmentVariable("ACTORS_GEMM_WGMMA") == "0";

    /// <summary>The kernels on this device, or null with the reason they are not available.</summary>
    public static unsafe GemmKernels? TryCreate(KernelCompiler compiler, out string? reason)
    {
        var device = compiler.Device;
        reason = null;
        if (DisabledByEnvironment) reason = "ACTORS_GEMM_WGMMA=0";
        else if (device.ComputeMajor != 9 || device.ComputeMinor != 0)
            reason = $"gemm_wgmma is built for sm_90a; {device.Name} is {device.Architecture}";
        else if (device.MaxSharedMemoryPerBlockOptin < Shared)
            reason = $"gemm_wgmma needs {Shared} bytes of shared memory per block; {device.Name} allows {device.MaxSharedMemoryPerBlockOptin}";
        if (reason is not null) return null;
        string source = KernelSource.Concat("common.cuh", "hopper.cuh", "gemm_hopper.cu");
        string key = $"{device.Ordinal}:{compiler.CacheKey(source, [], "sm_90a")}";
        if (Failures.TryGetValue(key, out reason)) return null; // tried once in this process
        try
        {
            var gemm = compiler.Load(source, "gemm_hopper.cu", architecture: "sm_90a").Function("gemm_wgmma");
            gemm.AllowSharedMemory(Shared);
            var config = new Driver.LaunchConfig
            {
                GridX = (uint)(device.MultiprocessorCount & ~1), GridY = 1, GridZ = 1, BlockX = Threads, BlockY = 1, BlockZ = 1,
                SharedMemBytes = Shared,
            };
            int clusters;
            Driver.Check(Driver.cuOccupancyMaxActiveClusters(&clusters, gemm.Handle, &config), "cuOccupancyMaxActiveClusters", "gemm_wgmma");
            if (clusters < 1)
            {
                reason = Failures[key] = $"gemm_wgmma: no cluster of 2 blocks of {Shared} bytes fits on {device.Name}";
                return null;
            }
            return new GemmKernels(device, gemm, clusters);
        }
        catch (Exception e) when (e is NvrtcException or CudaException)
        {
            reason = Failures[key] = $"gemm_hopper.cu for sm_90a: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// Enqueues y (rows, inter) = silu(x · gateᵀ) · (x · upᵀ) with gateUp (2·inter, k): gate rows first, then up rows,
    /// as the fused gate/up weight is stored. silu is x·sigmoid(x) with the sigmoid from one tanh.approx: its absolute
    /// error is about 2⁻¹², below bf16's rounding of silu except where silu is small (x below about −4).
    /// </summary>
    public void SwiGlu(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> y, int rows, int k, int inter) =>
        Run(stream, x, gateUp, y, rows, k, inter, swiglu: true, accumulate: false);

    /// <summary>Enqueues y (rows, n) = x (rows, k) · wᵀ, w (n, k); with <paramref name="accumulate"/> y += x · wᵀ (rounded once).</summary>
    public void Matmul(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate = false) =>
        Run(stream, x, w, y, rows, k, n, swiglu: false, accumulate);

    private void Run(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool swiglu, bool accumulate)
    {
        ElementwiseKernels.Positive(rows, nameof(rows));
        ElementwiseKernels.Positive(k, nameof(k));
        ElementwiseKernels.Positive(n, swiglu ? "inter" : nameof(n));
        if (k % 8 != 0) throw new ArgumentException($"k {k} must be a multiple of 8 (the TMA reads 16-byte rows)", nameof(k));
        if (n % 2 != 0) throw new ArgumentException($"{(swiglu ? "inter" : "n")} {n} must be even (outputs are stored in pairs)", swiglu ? "inter" : nameof(n));
        long wRows = swiglu ? 2L * n : n;
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require(wRows * k, swiglu ? "gateUp" : nameof(w), swiglu ? "2 * inter * k" : "n * k");
        y.Require((long)rows * n, nameof(y), swiglu ? "rows * inter" : "rows * n");
        if (x.Pointer % 16 != 0 || w.Pointer % 16 != 0)
            throw new ArgumentException($"x (0x{x.Pointer:x}) and w (0x{w.Pointer:x}) must be 16-byte aligned for the TMA");
        if (y.Pointer % 4 != 0) throw new ArgumentException($"y (0x{y.Pointer:x}) must be 4-byte aligned", nameof(y));
        int tilesM = (rows + 127) / 128, tilesN = swiglu ? (n + 127) / 128 : (n + 255) / 256;
        int pairs = (tilesM + 1) / 2 * tilesN;
        // SwiGLU tiles leave through shared memory and TMA stores where the TMA can address y (16-byte rows)
        bool tmaStore = swiglu && n % 8 == 0 && y.Pointer % 16 == 0;
        var p = new GemmParams
        {
            A = Map(x.Pointer, rows, k, 128, "x"), B = Map(w.Pointer, wRows, k, 128, "w"), Y = y.Pointer,
            Rows = rows, K = k, N = n, Ldy = n, Swiglu = swiglu ? 1 : 0, Accumulate = accumulate ? 1 : 0,
            TilesM = tilesM, TilesN = tilesN, Group = RasterGroup, TmaStore = tmaStore ? 1 : 0,
        };
        if (tmaStore) p.C = Map(y.Pointer, rows, n, 64, "y");
        _gemm.Launch(stream, (2u * (uint)Math.Min(pairs, Clusters), 1, 1), Threads, Shared, p);
    }

    /// <summary>The TMA descriptor of a (rows, columns) matrix moved in boxes of 64 columns x <paramref name="boxRows"/> (operands
    /// read in 128-row boxes, the SwiGLU output stored in 64-row ones), encoded once per (address, shape, box).</summary>
    private TensorMap Map(ulong pointer, long rows, int columns, uint boxRows, string what)
    {
        var key = (pointer, rows, columns, boxRows);
        lock (_maps)
        {
            if (_maps.TryGetValue(key, out var cached)) return cached;
            if (_maps.Count >= 1024) _maps.Clear(); // buffers come and go in tests; an engine keeps ~2 per layer
            var map = TensorMap.Matrix(_device, pointer, rows, columns, 64, boxRows, what);
            _maps[key] = map;
            return map;
        }
    }

    /// <summary>Twin of GemmParams (gemm_hopper.cu): three tensor maps, y, then the ints; 448 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 448)]
    private struct GemmParams
    {
        public TensorMap A, B, C;
        public ulong Y;
        public int Rows, K, N, Ldy, Swiglu, Accumulate, TilesM, TilesN, Group, TmaStore;
    }
}
