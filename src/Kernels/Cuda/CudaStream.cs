using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>A non-blocking stream: the order of kernel launches, copies and graph replays.</summary>
public sealed unsafe class CudaStream : IDisposable
{
    private readonly SafeStreamHandle _stream;

    internal CudaStream(CudaDevice device)
    {
        Device = device;
        device.MakeCurrent();
        IntPtr s;
        Driver.Check(Driver.cuStreamCreate(&s, Driver.StreamNonBlocking), "cuStreamCreate", "CU_STREAM_NON_BLOCKING");
        _stream = new SafeStreamHandle(device.Context, s);
    }

    public CudaDevice Device { get; }
    public IntPtr Handle => _stream.DangerousGetHandle();

    public void Synchronize()
    {
        Device.MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(Handle), "cuStreamSynchronize");
    }

    /// <summary>Whether work enqueued now is being recorded into a graph rather than run.</summary>
    public bool IsCapturing
    {
        get
        {
            Device.MakeCurrent();
            int status;
            Driver.Check(Driver.cuStreamIsCapturing(Handle, &status), "cuStreamIsCapturing");
            return status != 0;
        }
    }

    /// <summary>
    /// Programmatic dependent launch: kernels marked <see cref="CudaFunction.Programmatic"/> are launched with
    /// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, so their blocks start while the previous kernel drains and
    /// wait (griddepcontrol.wait) only where they read its results: the launch latency and the ramp of each kernel
    /// overlap the tail of the one before. Such launches can be captured into graphs (tested: same results). Takes
    /// effect on devices of compute capability 9.0 and newer (<see cref="SupportsProgrammaticLaunch"/>); elsewhere
    /// launches stay plain.
    /// </summary>
    public bool ProgrammaticLaunch { get; set; }

    /// <summary>Whether this stream's device runs programmatic dependent launches (compute capability 9.0+).</summary>
    public bool SupportsProgrammaticLaunch => Device.ComputeMajor >= 9;

    public void Dispose() => _stream.Dispose();
}

/// <summary>A stream event; two timing events give the GPU time between them.</summary>
public sealed unsafe class CudaEvent : IDisposable
{
    private readonly SafeEventHandle _event;
    private readonly CudaDevice _device;

    public CudaEvent(CudaDevice device, bool timing = true)
    {
        _device = device;
        device.MakeCurrent();
        IntPtr e;
        Driver.Check(Driver.cuEventCreate(&e, timing ? Driver.EventDefault : Driver.EventDisableTiming), "cuEventCreate", timing ? "timing" : "no timing");
        _event = new SafeEventHandle(device.Context, e);
    }

    public IntPtr Handle => _event.DangerousGetHandle();

    public void Record(CudaStream stream)
    {
        _device.MakeCurrent();
        Driver.Check(Driver.cuEventRecord(Handle, stream.Handle), "cuEventRecord");
    }

    public void Synchronize()
    {
        _device.MakeCurrent();
        Driver.Check(Driver.cuEventSynchronize(Handle), "cuEventSynchronize");
    }

    /// <summary>Milliseconds between two recorded timing events (waits for <paramref name="end"/>).</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        end.Synchronize();
        float ms;
        Driver.Check(Driver.cuEventElapsedTime(&ms, start.Handle, end.Handle), "cuEventElapsedTime");
        return ms;
    }

    public void Dispose() => _event.Dispose();
}

/// <summary>
/// A captured and instantiated CUDA graph: the launches recorded on a stream, replayed with one call. Replays read
/// the same device addresses and kernel parameters as at capture, so per-step inputs live in fixed device buffers.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    private readonly SafeGraphHandle _graph;
    private readonly SafeGraphExecHandle _exec;
    private readonly CudaDevice _device;

    private CudaGraph(CudaDevice device, SafeGraphHandle graph, SafeGraphExecHandle exec)
    {
        _device = device;
        _graph = graph;
        _exec = exec;
    }

    /// <summary>
    /// Records what <paramref name="record"/> enqueues on <paramref name="stream"/> (thread-local capture mode, so
    /// other threads may keep allocating) and instantiates it. Nothing runs during capture.
    /// </summary>
    public static CudaGraph Capture(CudaStream stream, Action<CudaStream> record)
    {
        var device = stream.Device;
        device.MakeCurrent();
        Driver.Check(Driver.cuStreamBeginCapture_v2(stream.Handle, Driver.CaptureModeThreadLocal), "cuStreamBeginCapture_v2", "thread-local");
        IntPtr graph = IntPtr.Zero;
        try
        {
            record(stream);
        }
        catch
        {
            // leave the stream usable: end the (now invalid) capture and drop whatever was recorded
            if (Driver.cuStreamEndCapture(stream.Handle, &graph) == 0 && graph != IntPtr.Zero) Driver.cuGraphDestroy(graph);
            throw;
        }
        device.MakeCurrent();
        Driver.Check(Driver.cuStreamEndCapture(stream.Handle, &graph), "cuStreamEndCapture");
        var graphHandle = new SafeGraphHandle(device.Context, graph);
        IntPtr exec;
        int status = Driver.cuGraphInstantiateWithFlags(&exec, graph, 0);
        if (status != 0)
        {
            graphHandle.Dispose();
            throw Driver.Error(status, "cuGraphInstantiateWithFlags", "flags 0");
        }
        return new CudaGraph(device, graphHandle, new SafeGraphExecHandle(device.Context, exec));
    }

    public void Launch(CudaStream stream)
    {
        _device.MakeCurrent();
        Driver.Check(Driver.cuGraphLaunch(_exec.DangerousGetHandle(), stream.Handle), "cuGraphLaunch");
    }

    public void Dispose()
    {
        _exec.Dispose();
        _graph.Dispose();
    }
}
