using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>
/// Raw bindings to the CUDA driver API (libcuda.so.1), 64-bit Linux ABI: CUdevice = int, CUdeviceptr = ulong,
/// every other handle a pointer. Every function returns a CUresult (0 = success); wrap calls in <see cref="Check"/>.
/// The _v2 entry points are those cuda.h maps the plain names to.
/// </summary>
public static unsafe partial class Driver
{
    static Driver() => NativeLibraries.EnsureResolver();

    // CUdevice_attribute values used by this project (cuda.h).
    public const int AttrMaxThreadsPerBlock = 1;
    public const int AttrMaxSharedMemoryPerBlock = 8;
    public const int AttrMultiprocessorCount = 16;
    public const int AttrComputeCapabilityMajor = 75;
    public const int AttrComputeCapabilityMinor = 76;
    public const int AttrMaxSharedMemoryPerBlockOptin = 97;

    /// <summary>CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES (the kernel's static shared memory) and CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.</summary>
    public const int FuncAttrSharedSizeBytes = 1, FuncAttrMaxDynamicSharedSizeBytes = 8;

    /// <summary>CU_STREAM_NON_BLOCKING: no implicit sync with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 1;

    /// <summary>CU_EVENT_DEFAULT (timing enabled) and CU_EVENT_DISABLE_TIMING.</summary>
    public const uint EventDefault = 0, EventDisableTiming = 2;

    /// <summary>CU_MEMHOSTALLOC_PORTABLE: pinned memory usable from every context.</summary>
    public const uint MemHostAllocPortable = 1;

    /// <summary>CUstreamCaptureMode: GLOBAL = 0, THREAD_LOCAL = 1, RELAXED = 2.</summary>
    public const int CaptureModeGlobal = 0, CaptureModeThreadLocal = 1, CaptureModeRelaxed = 2;

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuInit(uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDriverGetVersion(int* version);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceTotalMem_v2(nuint* bytes, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDeviceGetPCIBusId(byte* pciBusId, int length, int device);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDevicePrimaryCtxRetain(IntPtr* context, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuCtxGetCurrent(IntPtr* context);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuCtxSynchronize();

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemAlloc_v2(ulong* pointer, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemFree_v2(ulong pointer);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyDtoD_v2(ulong destination, ulong source, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemGetInfo_v2(nuint* free, nuint* total);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemHostAlloc(void** pointer, nuint bytes, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuMemFreeHost(void* pointer);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuModuleLoadData(IntPtr* module, void* image);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuModuleGetFunction(IntPtr* function, IntPtr module, byte* name);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    [LibraryImport(NativeLibraries.Cuda)] public static unsafe partial int cuFuncGetAttribute(int* value, int attribute, IntPtr function);

    // CUtensorMap encoding (cuda.h enums): bf16 elements, no interleave, 128-byte swizzle, 256-byte L2 promotion, no
    // NaN fill of out-of-bounds elements (they read as zero).
    public const int TensorMapDataTypeBfloat16 = 9;
    public const int TensorMapInterleaveNone = 0;
    public const int TensorMapSwizzle128B = 3;
    public const int TensorMapL2Promotion256B = 3;
    public const int TensorMapOobFillNone = 0;

    /// <summary>
    /// Encodes a tiled TMA descriptor (CUtensorMap, 128 bytes) into <paramref name="tensorMap"/>: rank dims (innermost
    /// first) of globalDim elements, globalStrides the byte strides of dims 1 .. rank - 1 (multiples of 16), boxDim
    /// the box copied per request, elementStrides 1 for dense boxes.
    /// </summary>
    [LibraryImport(NativeLibraries.Cuda)]
    public static partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, ulong globalAddress, ulong* globalDim,
        ulong* globalStrides, uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
    [LibraryImport(NativeLibraries.Cuda)]
    public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemBytes, IntPtr stream, void** kernelParams, void** extra);

    /// <summary>CUlaunchConfig: grid, block, dynamic shared memory, stream and the launch attributes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedMemBytes;
        public IntPtr Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    /// <summary>CUlaunchAttribute: an id padded to 8 bytes, then a 64-byte value union (only its first int is used here).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 72)]
    public struct LaunchAttribute
    {
        [FieldOffset(0)] public int Id;
        [FieldOffset(8)] public int Value;
    }

    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the kernel may start before the previous kernel in
    /// the stream ends (programmatic dependent launch, compute capability 9.0+); it must griddepcontrol.wait before
    /// touching that kernel's results.</summary>
    public const int LaunchAttributeProgrammaticStreamSerialization = 6;

    [LibraryImport(NativeLibraries.Cuda)]
    public static partial int cuLaunchKernelEx(LaunchConfig* config, IntPtr function, void** kernelParams, void** extra);

    /// <summary>How many clusters of the kernel (its compile-time cluster shape) can be resident at once with this
    /// launch configuration (block size and dynamic shared memory; the function's shared-memory limit set first).</summary>
    [LibraryImport(NativeLibraries.Cuda)]
    public static partial int cuOccupancyMaxActiveClusters(int* numClusters, IntPtr function, LaunchConfig* config);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamCreate(IntPtr* stream, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamDestroy_v2(IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuEventCreate(IntPtr* evt, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuEventSynchronize(IntPtr evt);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuEventElapsedTime(float* milliseconds, IntPtr start, IntPtr end);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuEventDestroy_v2(IntPtr evt);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamBeginCapture_v2(IntPtr stream, int mode);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamEndCapture(IntPtr stream, IntPtr* graph);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuStreamIsCapturing(IntPtr stream, int* captureStatus);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGraphInstantiateWithFlags(IntPtr* graphExec, IntPtr graph, ulong flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGraphLaunch(IntPtr graphExec, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGraphExecDestroy(IntPtr graphExec);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGraphDestroy(IntPtr graph);

    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGetErrorName(int status, byte** name);
    [LibraryImport(NativeLibraries.Cuda)] public static partial int cuGetErrorString(int status, byte** text);

    /// <summary>Throws <see cref="CudaException"/> naming the call and its arguments when <paramref name="status"/> is not CUDA_SUCCESS.</summary>
    public static void Check(int status, string call, string arguments = "")
    {
        if (status != 0) throw Error(status, call, arguments);
    }

    public static CudaException Error(int status, string call, string arguments)
    {
        string name = $"CUresult {status}", text = "(no description)";
        try
        {
            byte* p;
            if (cuGetErrorName(status, &p) == 0 && p != null) name = Marshal.PtrToStringUTF8((IntPtr)p) ?? name;
            if (cuGetErrorString(status, &p) == 0 && p != null) text = Marshal.PtrToStringUTF8((IntPtr)p) ?? text;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // keep the numeric status: the error is still reported, only without its name
        }
        return new CudaException(call, arguments, status, name, text);
    }
}
