using System.Collections.Concurrent;
using System.Text;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// One CUDA device and its primary context (the context cuBLASLt and the runtime API also use). Driver calls act on the
/// calling thread's current context, so every wrapper calls <see cref="MakeCurrent"/> first; that is cheap.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    /// <summary>Oldest compute capability served: bf16 tensor cores and cp.async need Ampere (8.0).</summary>
    public const int MinimumComputeMajor = 8;

    private static readonly Lazy<int> InitStatus = new(() => Driver.cuInit(0));
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new();

    private CudaDevice(int ordinal, int handle, SafeContextHandle context)
    {
        Ordinal = ordinal;
        Handle = handle;
        Context = context;
        MakeCurrent();
        ComputeMajor = GetAttribute(Driver.AttrComputeCapabilityMajor);
        ComputeMinor = GetAttribute(Driver.AttrComputeCapabilityMinor);
        MultiprocessorCount = GetAttribute(Driver.AttrMultiprocessorCount);
        MaxSharedMemoryPerBlock = GetAttribute(Driver.AttrMaxSharedMemoryPerBlock);
        MaxSharedMemoryPerBlockOptin = GetAttribute(Driver.AttrMaxSharedMemoryPerBlockOptin);
        var name = stackalloc byte[256];
        Driver.Check(Driver.cuDeviceGetName(name, 256, handle), "cuDeviceGetName", $"device {ordinal}");
        var raw = new ReadOnlySpan<byte>(name, 256);
        int end = raw.IndexOf((byte)0);
        Name = Encoding.UTF8.GetString(end < 0 ? raw : raw[..end]);
        nuint total;
        Driver.Check(Driver.cuDeviceTotalMem_v2(&total, handle), "cuDeviceTotalMem_v2", $"device {ordinal}");
        TotalMemory = (long)total;
    }

    public int Ordinal { get; }
    internal int Handle { get; }
    public SafeContextHandle Context { get; }
    public string Name { get; }
    public int ComputeMajor { get; }
    public int ComputeMinor { get; }
    public int MultiprocessorCount { get; }
    public int MaxSharedMemoryPerBlock { get; }
    public int MaxSharedMemoryPerBlockOptin { get; }
    public long TotalMemory { get; }

    /// <summary>NVRTC's target for this device, e.g. "sm_90" on an H100.</summary>
    public string Architecture => $"sm_{ComputeMajor}{ComputeMinor}";

    public override string ToString() => $"{Name} (device {Ordinal}, {Architecture}, {MultiprocessorCount} SMs, {TotalMemory >> 20} MiB)";

    /// <summary>Opens a device or throws (<see cref="DllNotFoundException"/> without libcuda, <see cref="CudaException"/> otherwise).</summary>
    public static CudaDevice Open(int ordinal = 0)
    {
        NativeLibraries.EnsureResolver();
        Driver.Check(InitStatus.Value, "cuInit", "0");
        int count;
        Driver.Check(Driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
        if ((uint)ordinal >= (uint)count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"there are {count} CUDA devices");
        int handle;
        Driver.Check(Driver.cuDeviceGet(&handle, ordinal), "cuDeviceGet", $"ordinal {ordinal}");
        IntPtr ctx;
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(&ctx, handle), "cuDevicePrimaryCtxRetain", $"device {ordinal}");
        return new CudaDevice(ordinal, handle, new SafeContextHandle(ctx, handle));
    }

    /// <summary>
    /// Opens a device that this project can use, or says why not: ACTORS_DISABLE_CUDA set, no libcuda, the driver
    /// fails to initialise, no device at that ordinal, or compute capability below 8.0. Callers log the reason and
    /// fall back to the CPU.
    /// </summary>
    public static bool TryOpen(int ordinal, out CudaDevice? device, out string reason)
    {
        device = null;
        if (Environment.GetEnvironmentVariable("ACTORS_DISABLE_CUDA") is { Length: > 0 } v && v != "0")
        {
            reason = "CUDA disabled by ACTORS_DISABLE_CUDA";
            return false;
        }
        CudaDevice? opened = null;
        try
        {
            opened = Open(ordinal);
            if (opened.ComputeMajor < MinimumComputeMajor)
            {
                reason = $"{opened.Name} has compute capability {opened.ComputeMajor}.{opened.ComputeMinor}; " +
                         $"the CUDA backend needs {MinimumComputeMajor}.0 or newer";
                opened.Dispose();
                return false;
            }
            device = opened;
            reason = $"using {opened}";
            return true;
        }
        catch (DllNotFoundException e)
        {
            reason = $"no CUDA driver: {e.Message}";
        }
        catch (EntryPointNotFoundException e)
        {
            reason = $"CUDA driver too old: {e.Message}";
        }
        catch (CudaException e)
        {
            reason = $"CUDA driver unusable: {e.Message}";
        }
        catch (ArgumentOutOfRangeException e)
        {
            reason = $"no CUDA device {ordinal}: {e.Message}";
        }
        opened?.Dispose();
        return false;
    }

    public void MakeCurrent() => Context.MakeCurrent();

    /// <summary>cuDeviceGetAttribute for one CUdevice_attribute (see the constants on <see cref="Driver"/>).</summary>
    public int GetAttribute(int attribute)
    {
        int value;
        Driver.Check(Driver.cuDeviceGetAttribute(&value, attribute, Handle), "cuDeviceGetAttribute", $"attribute {attribute}, device {Ordinal}");
        return value;
    }

    /// <summary>The device's PCI address as the driver writes it ("0000:19:00.0"), which NVML takes to find the same card.</summary>
    public string PciBusId
    {
        get
        {
            byte* buffer = stackalloc byte[32];
            Driver.Check(Driver.cuDeviceGetPCIBusId(buffer, 32, Handle), "cuDeviceGetPCIBusId", $"device {Ordinal}");
            return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((IntPtr)buffer) ?? "";
        }
    }

    /// <summary>Free and total device memory in bytes (cuMemGetInfo), for sizing the KV pool.</summary>
    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Driver.Check(Driver.cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    public void Synchronize()
    {
        MakeCurrent();
        Driver.Check(Driver.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => new(this, length);

    public PinnedBuffer<T> AllocatePinned<T>(long length) where T : unmanaged => new(this, length);

    public CudaStream CreateStream() => new(this);

    /// <summary>Loads a compiled image once per key for this device (modules are reused by every launcher).</summary>
    public CudaModule LoadModule(string key, Func<byte[]> image) =>
        _modules.GetOrAdd(key, _ => new Lazy<CudaModule>(() => new CudaModule(this, image()))).Value; // Lazy: one load even when threads race

    public void Dispose()
    {
        foreach (var m in _modules.Values)
            if (m.IsValueCreated) m.Value.Dispose();
        _modules.Clear();
        Context.Dispose();
    }
}
