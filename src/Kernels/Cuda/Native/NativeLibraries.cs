using System.Reflection;
using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>
/// Resolves the logical library names used by the bindings (<see cref="Cuda"/>, <see cref="Nvrtc"/>,
/// <see cref="CublasLt"/>, <see cref="Nvml"/>) to real sonames at run time, so a machine without CUDA loads this assembly fine and
/// only fails (with <see cref="DllNotFoundException"/>) when a binding is first called.
/// Search order per library: $ACTORS_CUDA_LIB_DIR/&lt;soname&gt;, then each soname through the loader
/// (LD_LIBRARY_PATH, ldconfig cache), newest major first.
/// </summary>
public static class NativeLibraries
{
    public const string Cuda = "actors_cuda";
    public const string Nvrtc = "actors_nvrtc";
    public const string CublasLt = "actors_cublaslt";
    public const string Nvml = "actors_nvml";

    private static readonly string[] CudaNames = ["libcuda.so.1", "libcuda.so"];
    private static readonly string[] NvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];
    private static readonly string[] CublasLtNames = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"];
    private static readonly string[] NvmlNames = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

    private static int _installed;

    /// <summary>Installs the resolver once for this assembly; every binding class calls it from its static constructor.</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
    }

    /// <summary>The sonames tried for a logical name, in order (exposed for diagnostics and tests).</summary>
    public static IReadOnlyList<string> Candidates(string logicalName) => logicalName switch
    {
        Cuda => CudaNames,
        Nvrtc => NvrtcNames,
        CublasLt => CublasLtNames,
        Nvml => NvmlNames,
        _ => [],
    };

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var names = Candidates(name);
        if (names.Count == 0) return IntPtr.Zero; // not ours: default probing
        string? dir = Environment.GetEnvironmentVariable("ACTORS_CUDA_LIB_DIR");
        foreach (var soname in names)
        {
            if (!string.IsNullOrEmpty(dir) && NativeLibrary.TryLoad(Path.Combine(dir, soname), out var h1)) return h1;
            if (NativeLibrary.TryLoad(soname, out var h2)) return h2;
        }
        throw new DllNotFoundException(
            $"none of {string.Join(", ", names)} could be loaded (searched ACTORS_CUDA_LIB_DIR='{dir}', LD_LIBRARY_PATH and the loader cache)");
    }
}
