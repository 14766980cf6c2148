using System.Security.Cryptography;
using System.Text;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// Compiles CUDA C with NVRTC for one device's architecture (a cubin for sm_XY) and caches the cubins on disk under
/// $ACTORS_CACHE/kernels or ~/.cache/actors/kernels, keyed by SHA-256 of (source, options, architecture, NVRTC version),
/// so every specialisation (template constants are baked into the source or options) has its own entry.
/// The kernels of this project need no CUDA headers (bf16 is handled as raw bits in common.cuh); when $CUDA_HOME/include
/// (or /usr/local/cuda/include) exists it is added with -I so sources that do include cuda_bf16.h also compile with NVRTC
/// versions whose built-in headers lack it.
/// </summary>
public sealed unsafe class KernelCompiler
{
    private readonly string[] _baseOptions;

    public KernelCompiler(CudaDevice device, string? cacheDirectory = null)
    {
        Device = device;
        CacheDirectory = cacheDirectory ?? DefaultCacheDirectory();
        NativeLibraries.EnsureResolver();
        int major, minor;
        Nvrtc.Check(Nvrtc.nvrtcVersion(&major, &minor), "nvrtcVersion");
        NvrtcVersion = (major, minor);
        var options = new List<string> { $"--gpu-architecture={device.Architecture}", "-std=c++17" };
        string? include = CudaIncludeDirectory();
        if (include != null) options.Add($"-I{include}");
        _baseOptions = [.. options];
    }

    public CudaDevice Device { get; }
    public string CacheDirectory { get; }
    public (int Major, int Minor) NvrtcVersion { get; }

    /// <summary>Compilations answered from the disk cache / done by NVRTC, since construction.</summary>
    public int CacheHits => _hits;
    public int Compilations => _compilations;
    private int _hits, _compilations;

    public IReadOnlyList<string> BaseOptions => _baseOptions;

    public static string DefaultCacheDirectory()
    {
        string? root = Environment.GetEnvironmentVariable("ACTORS_CACHE");
        if (string.IsNullOrEmpty(root))
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "actors");
        return Path.Combine(root, "kernels");
    }

    private static string? CudaIncludeDirectory()
    {
        foreach (var home in new[] { Environment.GetEnvironmentVariable("CUDA_HOME"), Environment.GetEnvironmentVariable("CUDA_PATH"), "/usr/local/cuda" })
        {
            if (string.IsNullOrEmpty(home)) continue;
            string inc = Path.Combine(home, "include");
            if (File.Exists(Path.Combine(inc, "cuda_bf16.h"))) return inc;
        }
        return null;
    }

    /// <summary>The cache key: SHA-256 hex of every input that changes the image.</summary>
    /// <param name="architecture">The target instead of the device's own (e.g. sm_90a, whose arch-specific
    /// instructions such as wgmma a plain sm_90 target rejects); null: <see cref="CudaDevice.Architecture"/>.</param>
    public string CacheKey(string source, IReadOnlyList<string> extraOptions, string? architecture = null)
    {
        var sb = new StringBuilder();
        sb.Append(source).Append('\0');
        foreach (var o in Options(extraOptions, architecture)) sb.Append(o).Append('\0');
        sb.Append(architecture ?? Device.Architecture).Append('\0').Append($"nvrtc {NvrtcVersion.Major}.{NvrtcVersion.Minor}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    /// <summary>The base options (with the target replaced when <paramref name="architecture"/> is given), then the extra ones.</summary>
    private string[] Options(IReadOnlyList<string> extraOptions, string? architecture)
    {
        var options = _baseOptions.Select(o => architecture != null && o.StartsWith("--gpu-architecture=", StringComparison.Ordinal)
            ? $"--gpu-architecture={architecture}" : o);
        return [.. options, .. extraOptions];
    }

    /// <summary>Returns the cubin for <paramref name="source"/>, from the cache or compiled now (throws <see cref="NvrtcException"/> with the log).</summary>
    /// <param name="architecture">See <see cref="CacheKey"/>.</param>
    public byte[] Compile(string source, string name, IReadOnlyList<string>? extraOptions = null, string? architecture = null)
    {
        extraOptions ??= [];
        string key = CacheKey(source, extraOptions, architecture);
        string path = Path.Combine(CacheDirectory, key + ".cubin");
        if (File.Exists(path))
        {
            try
            {
                byte[] cached = File.ReadAllBytes(path);
                if (cached.Length > 0)
                {
                    Interlocked.Increment(ref _hits);
                    return cached;
                }
            }
            catch (IOException)
            {
                // unreadable entry: recompile and overwrite it
            }
        }
        byte[] cubin = CompileWithNvrtc(source, name, Options(extraOptions, architecture));
        Interlocked.Increment(ref _compilations);
        try
        {
            Directory.CreateDirectory(CacheDirectory);
            string tmp = path + "." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllBytes(tmp, cubin);
            File.Move(tmp, path, overwrite: true); // atomic: concurrent readers see the old entry or the whole new one
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // a read-only cache only costs a recompilation next time
        }
        return cubin;
    }

    /// <summary>Compiles (or fetches) and loads the module once per device.</summary>
    /// <param name="architecture">See <see cref="CacheKey"/>.</param>
    public CudaModule Load(string source, string name, IReadOnlyList<string>? extraOptions = null, string? architecture = null)
    {
        extraOptions ??= [];
        string key = CacheKey(source, extraOptions, architecture);
        return Device.LoadModule(key, () => Compile(source, name, extraOptions, architecture));
    }

    private static byte[] CompileWithNvrtc(string source, string name, string[] options)
    {
        IntPtr program;
        byte[] src = Encoding.UTF8.GetBytes(source + "\0");
        byte[] nm = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* s = src)
        fixed (byte* n = nm)
            Nvrtc.Check(Nvrtc.nvrtcCreateProgram(&program, s, n, 0, null, null), "nvrtcCreateProgram", name);
        try
        {
            var optionBytes = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = optionBytes.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            int status;
            try
            {
                var ptrs = stackalloc byte*[options.Length];
                for (int i = 0; i < options.Length; i++) ptrs[i] = (byte*)handles[i].AddrOfPinnedObject();
                status = Nvrtc.nvrtcCompileProgram(program, options.Length, ptrs);
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            if (status != 0)
                Nvrtc.Check(status, "nvrtcCompileProgram", $"{name}: {string.Join(' ', options)}", Log(program));
            nuint size;
            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize", name);
            if (size == 0)
                throw new NvrtcException("nvrtcGetCUBINSize", name, 0, "NVRTC produced no cubin (is --gpu-architecture a real sm_ target?)", Log(program));
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, c), "nvrtcGetCUBIN", name);
            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(&program);
        }
    }

    private static string Log(IntPtr program)
    {
        nuint size;
        if (Nvrtc.nvrtcGetProgramLogSize(program, &size) != 0 || size <= 1) return "";
        var log = new byte[(int)size];
        fixed (byte* l = log)
            if (Nvrtc.nvrtcGetProgramLog(program, l) != 0) return "";
        return Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }
}
