namespace Actors.Kernels.Cuda.Native;

/// <summary>A CUDA driver API call returned an error status.</summary>
public sealed class CudaException : Exception
{
    public CudaException(string call, string arguments, int status, string errorName, string errorString)
        : base($"{call}({arguments}) failed: {errorName} ({status}): {errorString}")
    {
        Call = call;
        Status = status;
        ErrorName = errorName;
    }

    /// <summary>The driver function, e.g. "cuMemAlloc_v2".</summary>
    public string Call { get; }

    /// <summary>The raw CUresult.</summary>
    public int Status { get; }

    /// <summary>e.g. "CUDA_ERROR_OUT_OF_MEMORY".</summary>
    public string ErrorName { get; }

    /// <summary>True for CUDA_ERROR_OUT_OF_MEMORY (2), so callers can queue instead of failing.</summary>
    public bool IsOutOfMemory => Status == 2;
}

/// <summary>An NVRTC call failed; for compilation failures <see cref="Log"/> holds the compiler log.</summary>
public sealed class NvrtcException : Exception
{
    public NvrtcException(string call, string arguments, int status, string errorString, string log)
        : base($"{call}({arguments}) failed: {errorString} ({status})" + (string.IsNullOrEmpty(log) ? "" : $"\ncompiler log:\n{log}"))
    {
        Call = call;
        Status = status;
        Log = log;
    }

    public string Call { get; }
    public int Status { get; }
    public string Log { get; }
}

/// <summary>A cuBLASLt call returned an error status.</summary>
public sealed class CublasException : Exception
{
    public CublasException(string call, string arguments, int status, string statusName, string statusString)
        : base($"{call}({arguments}) failed: {statusName} ({status}): {statusString}")
    {
        Call = call;
        Status = status;
        StatusName = statusName;
    }

    public string Call { get; }
    public int Status { get; }
    public string StatusName { get; }
}

/// <summary>An NVML call returned an error status.</summary>
public sealed class NvmlException : Exception
{
    public NvmlException(string call, string arguments, int status, string errorString)
        : base($"{call}({arguments}) failed: {errorString} ({status})")
    {
        Call = call;
        Status = status;
    }

    public string Call { get; }
    public int Status { get; }
}
