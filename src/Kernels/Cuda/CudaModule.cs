using System.Collections.Concurrent;
using System.Text;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>A loaded cubin (cuModuleLoadData) and its kernels by name.</summary>
public sealed unsafe class CudaModule : IDisposable
{
    private readonly SafeModuleHandle _module;
    private readonly ConcurrentDictionary<string, CudaFunction> _functions = new();

    internal CudaModule(CudaDevice device, byte[] image)
    {
        Device = device;
        device.MakeCurrent();
        IntPtr m;
        fixed (byte* p = image)
            Driver.Check(Driver.cuModuleLoadData(&m, p), "cuModuleLoadData", $"{image.Length}-byte image");
        _module = new SafeModuleHandle(device.Context, m);
    }

    public CudaDevice Device { get; }

    /// <summary>An extern "C" __global__ function of this module.</summary>
    public CudaFunction Function(string name) => _functions.GetOrAdd(name, n =>
    {
        Device.MakeCurrent();
        byte[] z = Encoding.UTF8.GetBytes(n + "\0");
        IntPtr f;
        fixed (byte* p = z)
            Driver.Check(Driver.cuModuleGetFunction(&f, _module.DangerousGetHandle(), p), "cuModuleGetFunction", n);
        return new CudaFunction(this, n, f);
    });

    public void Dispose() => _module.Dispose();
}

/// <summary>One kernel. Every kernel of this project takes a single by-value params struct.</summary>
public sealed unsafe class CudaFunction
{
    private int _dynamicSharedLimit = -1; // what launches may ask for without (more) opt-in; -1: not read yet
    private int _staticShared;

    internal CudaFunction(CudaModule module, string name, IntPtr handle)
    {
        Module = module;
        Name = name;
        Handle = handle;
    }

    public CudaModule Module { get; }
    public string Name { get; }
    public IntPtr Handle { get; }

    /// <summary>
    /// The kernel calls griddepcontrol.wait (PDL_WAIT in common.cuh) before it reads or writes anything another kernel
    /// touches, so it may be launched before the previous kernel of its stream ends: on a stream with
    /// <see cref="CudaStream.ProgrammaticLaunch"/> it is (compute capability 9.0+). Only weights (never written while
    /// steps run) may be read before the wait.
    /// </summary>
    public bool Programmatic { get; set; }

    /// <summary>Opts the kernel into <paramref name="sharedBytes"/> of dynamic shared memory where that and its static
    /// shared memory pass 48 KiB (cuFuncSetAttribute), once; launches do it themselves.</summary>
    public void AllowSharedMemory(uint sharedBytes)
    {
        var device = Module.Device;
        device.MakeCurrent();
        if (_dynamicSharedLimit < 0)
        {
            // without opt-in a block gets 48 KiB of shared memory in all, static included (a kernel with 128 bytes of
            // static scratch cannot launch with 48 KiB of dynamic)
            int staticBytes;
            Driver.Check(Driver.cuFuncGetAttribute(&staticBytes, Driver.FuncAttrSharedSizeBytes, Handle), "cuFuncGetAttribute", $"{Name} SHARED_SIZE_BYTES");
            _staticShared = staticBytes;
            _dynamicSharedLimit = Math.Max(0, 48 * 1024 - staticBytes);
        }
        if (sharedBytes <= _dynamicSharedLimit) return;
        if (sharedBytes + _staticShared > device.MaxSharedMemoryPerBlockOptin)
            throw new ArgumentOutOfRangeException(nameof(sharedBytes), sharedBytes,
                $"{Name} needs {sharedBytes} bytes of dynamic shared memory beside {_staticShared} static; {device.Name} allows {device.MaxSharedMemoryPerBlockOptin} in all");
        Driver.Check(Driver.cuFuncSetAttribute(Handle, Driver.FuncAttrMaxDynamicSharedSizeBytes, (int)sharedBytes),
            "cuFuncSetAttribute", $"{Name} MAX_DYNAMIC_SHARED_SIZE_BYTES {sharedBytes}");
        _dynamicSharedLimit = (int)sharedBytes;
    }

    /// <summary>
    /// Launches with one params struct on <paramref name="stream"/>. Dynamic shared memory above 48 KiB is opted into
    /// first (cuFuncSetAttribute) when the device allows it.
    /// </summary>
    public void Launch<TParams>(CudaStream stream, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, in TParams parameters)
        where TParams : unmanaged
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return; // empty problem: nothing to launch
        AllowSharedMemory(sharedBytes);
        TParams copy = parameters;
        void* arg = &copy;
        if (Programmatic && stream.ProgrammaticLaunch && stream.SupportsProgrammaticLaunch)
        {
            var attribute = new Driver.LaunchAttribute { Id = Driver.LaunchAttributeProgrammaticStreamSerialization, Value = 1 };
            var config = new Driver.LaunchConfig
            {
                GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block, BlockY = 1, BlockZ = 1,
                SharedMemBytes = sharedBytes, Stream = stream.Handle, Attributes = &attribute, AttributeCount = 1,
            };
            Driver.Check(Driver.cuLaunchKernelEx(&config, Handle, &arg, null),
                "cuLaunchKernelEx", $"{Name} grid ({grid.X},{grid.Y},{grid.Z}) block {block} shared {sharedBytes}, programmatic");
            return;
        }
        Driver.Check(Driver.cuLaunchKernel(Handle, grid.X, grid.Y, grid.Z, block, 1, 1, sharedBytes, stream.Handle, &arg, null),
            "cuLaunchKernel", $"{Name} grid ({grid.X},{grid.Y},{grid.Z}) block {block} shared {sharedBytes}");
    }
}
