using System.Runtime.CompilerServices;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>A typed view of device memory: an address and an element count. Launchers take these and check lengths.</summary>
public readonly record struct DeviceSpan<T>(ulong Pointer, long Length) where T : unmanaged
{
    public long Bytes => Length * Unsafe.SizeOf<T>();

    public DeviceSpan<T> Slice(long start, long length)
    {
        if (start < 0 || length < 0 || start + length > Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {start + length}) is outside a device span of {Length} elements");
        return new DeviceSpan<T>(Pointer + (ulong)(start * Unsafe.SizeOf<T>()), length);
    }

    public DeviceSpan<T> Slice(long start) => Slice(start, Length - start);

    /// <summary>Throws naming the argument when this span holds fewer than <paramref name="needed"/> elements.</summary>
    public void Require(long needed, string argument, string expected)
    {
        if (Pointer == 0 && needed > 0) throw new ArgumentException($"device span '{argument}' is null", argument);
        if (Length < needed)
            throw new ArgumentException($"device span '{argument}' has {Length} elements, fewer than {expected} = {needed}", argument);
    }
}

/// <summary>An owned device allocation of <see cref="Length"/> elements of <typeparamref name="T"/> (cuMemAlloc).</summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly SafeDeviceMemoryHandle _memory;

    internal DeviceBuffer(CudaDevice device, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Device = device;
        Length = length;
        device.MakeCurrent();
        ulong p = 0;
        long bytes = Math.Max(1, length * sizeof(T)); // cuMemAlloc rejects 0 bytes; an empty buffer still gets an address
        Driver.Check(Driver.cuMemAlloc_v2(&p, (nuint)bytes), "cuMemAlloc_v2", $"{bytes} bytes ({length} × {typeof(T).Name})");
        _memory = new SafeDeviceMemoryHandle(device.Context, p);
    }

    public CudaDevice Device { get; }
    public long Length { get; }
    public long Bytes => Length * sizeof(T);
    public ulong Pointer => _memory.Pointer;
    public DeviceSpan<T> Span => new(Pointer, Length);

    public static implicit operator DeviceSpan<T>(DeviceBuffer<T> buffer) => buffer.Span;

    /// <summary>
    /// Copy of <paramref name="source"/> to elements [offset, offset + source.Length), complete on return. It runs on the
    /// legacy default stream, which does not order itself with the non-blocking <see cref="CudaStream"/>s: synchronise
    /// a stream that still uses this buffer first.
    /// </summary>
    public void Upload(ReadOnlySpan<T> source, long offset = 0)
    {
        CheckRange(offset, source.Length, nameof(source));
        if (source.IsEmpty) return;
        Device.MakeCurrent();
        fixed (T* s = source)
            Driver.Check(Driver.cuMemcpyHtoD_v2(Pointer + (ulong)(offset * sizeof(T)), s, (nuint)(source.Length * sizeof(T))),
                "cuMemcpyHtoD_v2", $"{source.Length} × {typeof(T).Name} at offset {offset}");
        // from pageable memory the call may return before the DMA lands; wait so a kernel on another stream sees the data
        Driver.Check(Driver.cuStreamSynchronize(IntPtr.Zero), "cuStreamSynchronize", "legacy stream after cuMemcpyHtoD_v2");
    }

    /// <summary>
    /// Copy of elements [offset, offset + destination.Length) to the host, complete on return. Does not wait for work on
    /// non-blocking streams: synchronise the stream that produced the data first.
    /// </summary>
    public void Download(Span<T> destination, long offset = 0)
    {
        CheckRange(offset, destination.Length, nameof(destination));
        if (destination.IsEmpty) return;
        Device.MakeCurrent();
        fixed (T* d = destination)
            Driver.Check(Driver.cuMemcpyDtoH_v2(d, Pointer + (ulong)(offset * sizeof(T)), (nuint)(destination.Length * sizeof(T))),
                "cuMemcpyDtoH_v2", $"{destination.Length} × {typeof(T).Name} at offset {offset}");
    }

    public T[] ToArray()
    {
        var a = new T[Length];
        Download(a);
        return a;
    }

    /// <summary>Asynchronous upload from pinned memory on <paramref name="stream"/>; the pinned buffer must stay alive until the stream passes it.</summary>
    public void UploadAsync(PinnedBuffer<T> source, long count, CudaStream stream, long offset = 0)
    {
        CheckRange(offset, count, nameof(count));
        if (count > source.Length) throw new ArgumentException($"pinned buffer has {source.Length} elements, fewer than {count}", nameof(source));
        Device.MakeCurrent();
        Driver.Check(Driver.cuMemcpyHtoDAsync_v2(Pointer + (ulong)(offset * sizeof(T)), source.Address, (nuint)(count * sizeof(T)), stream.Handle),
            "cuMemcpyHtoDAsync_v2", $"{count} × {typeof(T).Name} at offset {offset}");
    }

    public void DownloadAsync(PinnedBuffer<T> destination, long count, CudaStream stream, long offset = 0)
    {
        CheckRange(offset, count, nameof(count));
        if (count > destination.Length) throw new ArgumentException($"pinned buffer has {destination.Length} elements, fewer than {count}", nameof(destination));
        Device.MakeCurrent();
        Driver.Check(Driver.cuMemcpyDtoHAsync_v2(destination.Address, Pointer + (ulong)(offset * sizeof(T)), (nuint)(count * sizeof(T)), stream.Handle),
            "cuMemcpyDtoHAsync_v2", $"{count} × {typeof(T).Name} at offset {offset}");
    }

    /// <summary>Sets every byte to zero, complete on return (legacy default stream, as <see cref="Upload"/>).</summary>
    public void Clear()
    {
        Device.MakeCurrent();
        Driver.Check(Driver.cuMemsetD8_v2(Pointer, 0, (nuint)Math.Max(1, Bytes)), "cuMemsetD8_v2", $"{Bytes} bytes");
        Driver.Check(Driver.cuStreamSynchronize(IntPtr.Zero), "cuStreamSynchronize", "legacy stream after cuMemsetD8_v2");
    }

    /// <summary>Zeroes the buffer asynchronously on <paramref name="stream"/> (capturable in a graph).</summary>
    public void ClearAsync(CudaStream stream)
    {
        Device.MakeCurrent();
        Driver.Check(Driver.cuMemsetD8Async(Pointer, 0, (nuint)Math.Max(1, Bytes), stream.Handle), "cuMemsetD8Async", $"{Bytes} bytes");
    }

    private void CheckRange(long offset, long count, string argument)
    {
        if (offset < 0 || count < 0 || offset + count > Length)
            throw new ArgumentOutOfRangeException(argument, $"elements [{offset}, {offset + count}) are outside a device buffer of {Length}");
    }

    public void Dispose() => _memory.Dispose();
}

/// <summary>Page-locked host memory (cuMemHostAlloc), the source/target of asynchronous copies.</summary>
public sealed unsafe class PinnedBuffer<T> : IDisposable where T : unmanaged
{
    private readonly SafePinnedHostHandle _memory;

    internal PinnedBuffer(CudaDevice device, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        device.MakeCurrent();
        void* p;
        long bytes = Math.Max(1, length * sizeof(T));
        Driver.Check(Driver.cuMemHostAlloc(&p, (nuint)bytes, Driver.MemHostAllocPortable), "cuMemHostAlloc", $"{bytes} bytes");
        _memory = new SafePinnedHostHandle(device.Context, (IntPtr)p);
    }

    public long Length { get; }
    internal void* Address => (void*)_memory.DangerousGetHandle();

    /// <summary>The whole buffer as a span (Length must fit an int).</summary>
    public Span<T> Span => new(Address, checked((int)Length));

    public void Dispose() => _memory.Dispose();
}
