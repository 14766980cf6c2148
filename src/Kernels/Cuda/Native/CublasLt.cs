using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>
/// cublasLtMatmulHeuristicResult_t: algo (cublasLtMatmulAlgo_t = 8 × uint64), workspaceSize, state, wavesCount,
/// reserved[4]: 96 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CublasLtHeuristicResult
{
    public fixed ulong Algo[8];
    public nuint WorkspaceSize;
    public int State;
    public float WavesCount;
    public fixed int Reserved[4];
}

/// <summary>Raw bindings to cuBLASLt (libcublasLt.so.13/.12). Every function returns a cublasStatus_t (0 = success).</summary>
public static unsafe partial class CublasLt
{
    static CublasLt() => NativeLibraries.EnsureResolver();

    // cublasComputeType_t / cudaDataType_t values (library_types.h, cublas_api.h).
    public const int ComputeF32 = 68;
    public const int DataF32 = 0, DataF16 = 2, DataBf16 = 14;

    // cublasOperation_t.
    public const int OpN = 0, OpT = 1;

    // cublasLtMatmulDescAttributes_t.
    public const int DescTransA = 3, DescTransB = 4;

    // cublasLtMatmulPreferenceAttributes_t.
    public const int PrefMaxWorkspaceBytes = 1;

    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtCreate(IntPtr* handle);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtDestroy(IntPtr handle);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulDescCreate(IntPtr* desc, int computeType, int scaleType);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulDescDestroy(IntPtr desc);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulDescSetAttribute(IntPtr desc, int attribute, void* value, nuint size);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatrixLayoutCreate(IntPtr* layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatrixLayoutDestroy(IntPtr layout);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulPreferenceCreate(IntPtr* preference);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulPreferenceSetAttribute(IntPtr preference, int attribute, void* value, nuint size);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial int cublasLtMatmulPreferenceDestroy(IntPtr preference);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(IntPtr handle, IntPtr operation, IntPtr a, IntPtr b, IntPtr c, IntPtr d,
        IntPtr preference, int requested, CublasLtHeuristicResult* results, int* returned);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial int cublasLtMatmulAlgoCheck(IntPtr handle, IntPtr operation, IntPtr a, IntPtr b, IntPtr c, IntPtr d,
        ulong* algo, CublasLtHeuristicResult* result);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial int cublasLtMatmul(IntPtr handle, IntPtr operation, void* alpha, ulong a, IntPtr aLayout, ulong b, IntPtr bLayout,
        void* beta, ulong c, IntPtr cLayout, ulong d, IntPtr dLayout, ulong* algo, ulong workspace, nuint workspaceBytes, IntPtr stream);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial byte* cublasLtGetStatusName(int status);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial byte* cublasLtGetStatusString(int status);

    public static void Check(int status, string call, string arguments = "")
    {
        if (status == 0) return;
        string name = $"cublasStatus {status}", text = "(no description)";
        try
        {
            byte* n = cublasLtGetStatusName(status);
            if (n != null) name = Marshal.PtrToStringUTF8((IntPtr)n) ?? name;
            byte* s = cublasLtGetStatusString(status);
            if (s != null) text = Marshal.PtrToStringUTF8((IntPtr)s) ?? text;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // older cuBLASLt without the name functions: the number is still reported
        }
        throw new CublasException(call, arguments, status, name, text);
    }
}
