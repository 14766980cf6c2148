using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>Raw bindings to NVRTC (libnvrtc.so.13/.12). Every function returns an nvrtcResult (0 = success).</summary>
public static unsafe partial class Nvrtc
{
    static Nvrtc() => NativeLibraries.EnsureResolver();

    /// <summary>NVRTC_ERROR_COMPILATION: the log says why.</summary>
    public const int ErrorCompilation = 6;

    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial int nvrtcCreateProgram(IntPtr* program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcCompileProgram(IntPtr program, int optionCount, byte** options);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetProgramLogSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetProgramLog(IntPtr program, byte* log);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetCUBINSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetCUBIN(IntPtr program, byte* cubin);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetPTXSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetPTX(IntPtr program, byte* ptx);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcDestroyProgram(IntPtr* program);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial byte* nvrtcGetErrorString(int status);

    public static void Check(int status, string call, string arguments = "", string log = "")
    {
        if (status != 0) throw new NvrtcException(call, arguments, status, ErrorString(status), log);
    }

    public static string ErrorString(int status)
    {
        try
        {
            byte* p = nvrtcGetErrorString(status);
            return p == null ? $"nvrtcResult {status}" : Marshal.PtrToStringUTF8((IntPtr)p) ?? $"nvrtcResult {status}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return $"nvrtcResult {status}";
        }
    }
}
