using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>A retained primary context of one device; released with cuDevicePrimaryCtxRelease when the last user lets go.</summary>
public sealed class SafeContextHandle : SafeHandle
{
    public SafeContextHandle(IntPtr context, int device) : base(IntPtr.Zero, ownsHandle: true)
    {
        SetHandle(context);
        Device = device;
    }

    public int Device { get; }
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Makes this context current on the calling thread (driver calls act on the thread's current context).</summary>
    public void MakeCurrent() => Driver.Check(Driver.cuCtxSetCurrent(DangerousGetHandle()), "cuCtxSetCurrent", $"device {Device}");

    protected override bool ReleaseHandle() => Driver.cuDevicePrimaryCtxRelease_v2(Device) == 0;
}

/// <summary>
/// Base of every handle that lives inside a context: holds a reference on the context so the context outlives it,
/// and makes the context current before releasing (release may run on the finalizer thread).
/// </summary>
public abstract class ContextBoundHandle : SafeHandle
{
    private readonly SafeContextHandle _context;

    protected ContextBoundHandle(SafeContextHandle context, IntPtr value) : base(IntPtr.Zero, ownsHandle: true)
    {
        bool added = false;
        context.DangerousAddRef(ref added);
        _context = context;
        SetHandle(value);
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected sealed override bool ReleaseHandle()
    {
        try
        {
            return Driver.cuCtxSetCurrent(_context.DangerousGetHandle()) == 0 && Release(handle);
        }
        finally
        {
            _context.DangerousRelease();
        }
    }

    /// <summary>Frees the native object; returns false on a non-success status (never throws).</summary>
    protected abstract bool Release(IntPtr value);
}

public sealed class SafeDeviceMemoryHandle(SafeContextHandle context, ulong pointer) : ContextBoundHandle(context, (IntPtr)(long)pointer)
{
    public ulong Pointer => (ulong)(long)handle;
    protected override bool Release(IntPtr value) => Driver.cuMemFree_v2((ulong)(long)value) == 0;
}

public sealed unsafe class SafePinnedHostHandle(SafeContextHandle context, IntPtr pointer) : ContextBoundHandle(context, pointer)
{
    protected override bool Release(IntPtr value) => Driver.cuMemFreeHost((void*)value) == 0;
}

public sealed class SafeModuleHandle(SafeContextHandle context, IntPtr module) : ContextBoundHandle(context, module)
{
    protected override bool Release(IntPtr value) => Driver.cuModuleUnload(value) == 0;
}

public sealed class SafeStreamHandle(SafeContextHandle context, IntPtr stream) : ContextBoundHandle(context, stream)
{
    protected override bool Release(IntPtr value) => Driver.cuStreamDestroy_v2(value) == 0;
}

public sealed class SafeEventHandle(SafeContextHandle context, IntPtr evt) : ContextBoundHandle(context, evt)
{
    protected override bool Release(IntPtr value) => Driver.cuEventDestroy_v2(value) == 0;
}

public sealed class SafeGraphHandle(SafeContextHandle context, IntPtr graph) : ContextBoundHandle(context, graph)
{
    protected override bool Release(IntPtr value) => Driver.cuGraphDestroy(value) == 0;
}

public sealed class SafeGraphExecHandle(SafeContextHandle context, IntPtr graphExec) : ContextBoundHandle(context, graphExec)
{
    protected override bool Release(IntPtr value) => Driver.cuGraphExecDestroy(value) == 0;
}

public sealed class SafeCublasLtHandle(SafeContextHandle context, IntPtr lt) : ContextBoundHandle(context, lt)
{
    protected override bool Release(IntPtr value) => CublasLt.cublasLtDestroy(value) == 0;
}
