using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// The one CUDA device the GPU tests share, opened once with <see cref="CudaDevice.TryOpen"/>. <see cref="Require"/>
/// skips the calling test with TryOpen's reason when there is no usable device, so CI without a GPU stays green;
/// anything failing after the device opened (NVRTC, cuBLASLt, a kernel) fails the test.
/// Device: $ACTORS_CUDA_DEVICE (default 0). Kernel cache: $ACTORS_CACHE, else a fresh temporary directory.
/// </summary>
internal sealed class Gpu
{
    private static readonly Lazy<(Gpu? Gpu, string Reason)> Instance = new(Open);
    private readonly Lazy<ElementwiseKernels> _elementwise;
    private readonly Lazy<AttentionKernels> _attention;
    private readonly Lazy<CublasLtMatmul> _matmul;
    private readonly Lazy<SamplingKernels> _sampling;

    private Gpu(CudaDevice device, string cacheDirectory)
    {
        Device = device;
        CacheDirectory = cacheDirectory;
        Compiler = new KernelCompiler(device, cacheDirectory);
        _elementwise = new(() => new ElementwiseKernels(Compiler));
        _attention = new(() => new AttentionKernels(Compiler));
        _matmul = new(() => new CublasLtMatmul(Device));
        _sampling = new(() => new SamplingKernels(Compiler));
    }

    public CudaDevice Device { get; }
    public string CacheDirectory { get; }
    public KernelCompiler Compiler { get; }
    public ElementwiseKernels Elementwise => _elementwise.Value;
    public AttentionKernels Attention => _attention.Value;
    public CublasLtMatmul Matmul => _matmul.Value;
    public SamplingKernels Sampling => _sampling.Value;

    /// <summary>Why the GPU tests skip here (or the device they use).</summary>
    public static string Reason => Instance.Value.Reason;

    public static Gpu Require()
    {
        var (gpu, reason) = Instance.Value;
        if (gpu is null) Assert.Skip($"no usable CUDA device: {reason}");
        return gpu;
    }

    private static (Gpu?, string) Open()
    {
        int ordinal = int.TryParse(Environment.GetEnvironmentVariable("ACTORS_CUDA_DEVICE"), out var o) ? o : 0;
        if (!CudaDevice.TryOpen(ordinal, out var device, out var reason)) return (null, reason);
        string? cache = Environment.GetEnvironmentVariable("ACTORS_CACHE");
        cache = string.IsNullOrEmpty(cache)
            ? Path.Combine(Path.GetTempPath(), "actors-gpu-tests-" + Environment.ProcessId, "kernels")
            : Path.Combine(cache, "kernels");
        return (new Gpu(device!, cache), reason);
    }

    public DeviceBuffer<ushort> UploadBf16(ReadOnlySpan<float> values)
    {
        var b = Device.Allocate<ushort>(values.Length);
        b.Upload(Bf16.FromSingles(values));
        return b;
    }

    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        var b = Device.Allocate<T>(values.Length);
        b.Upload(values);
        return b;
    }

    public static float[] DownloadBf16(DeviceBuffer<ushort> buffer) => Bf16.ToSingles(buffer.ToArray());

    /// <summary>Random values already rounded to bf16, so the CPU reference sees exactly the GPU's inputs.</summary>
    public static float[] RandomBf16(int length, int seed, float scale = 1f)
    {
        var a = TestData.Random(length, seed, scale);
        Bf16.Round(a);
        return a;
    }
}

/// <summary>All GPU tests share one device and run one at a time (graph capture must not record a neighbour's launches).</summary>
[CollectionDefinition("cuda", DisableParallelization = true)]
public sealed class CudaCollection;
