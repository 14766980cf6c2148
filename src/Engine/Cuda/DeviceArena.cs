using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Cuda;

/// <summary>
/// One device allocation carved into typed spans by a bump offset, each span starting on a <see cref="Alignment"/>-byte
/// boundary (what cuMemAlloc gives a separate buffer, so vectorised kernels see the same alignment). Replaces a set of
/// workspaces that live and die together (the runner's per-token activations): one cuMemAlloc / cuMemFree instead of
/// one per buffer, and no fragmentation between them. Spans stay valid until <see cref="Dispose"/>; there is no free.
/// </summary>
public sealed class DeviceArena : IDisposable
{
    public const int Alignment = 256;
    private readonly DeviceBuffer<byte> _memory;

    public DeviceArena(CudaDevice device, long bytes)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        _memory = device.Allocate<byte>(bytes);
        Capacity = bytes;
    }

    public long Capacity { get; }

    /// <summary>Bytes handed out so far, alignment padding included.</summary>
    public long Used { get; private set; }

    /// <summary><paramref name="bytes"/> rounded up to the next multiple of <see cref="Alignment"/>.</summary>
    public static long AlignUp(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return checked((bytes + Alignment - 1) / Alignment * Alignment);
    }

    /// <summary>
    /// Byte offsets of spans of these byte sizes taken in order, and the capacity an arena needs to hold them all.
    /// (The plan <see cref="Take{T}"/> follows.)
    /// </summary>
    public static (long[] Offsets, long Total) Plan(ReadOnlySpan<long> bytes)
    {
        var offsets = new long[bytes.Length];
        long at = 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] < 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes[i], $"span {i} has a negative size");
            offsets[i] = at;
            at = checked(at + AlignUp(bytes[i]));
        }
        return (offsets, at);
    }

    /// <summary>The next <paramref name="count"/> elements of <typeparamref name="T"/>; throws when the arena is full.</summary>
    public DeviceSpan<T> Take<T>(long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = checked(count * Unsafe.SizeOf<T>());
        long need = AlignUp(bytes);
        if (Used + need > Capacity)
            throw new InvalidOperationException(
                $"device arena of {Capacity} bytes cannot hold {count} × {typeof(T).Name} ({need} bytes aligned) after {Used} bytes in use");
        var span = new DeviceSpan<T>(_memory.Pointer + (ulong)Used, count);
        Used += need;
        return span;
    }

    /// <summary>Synchronous copy of <paramref name="data"/> to the start of <paramref name="span"/>, a span of this arena.</summary>
    public void Upload<T>(DeviceSpan<T> span, ReadOnlySpan<T> data) where T : unmanaged
    {
        long offset = Offset(span);
        if (data.Length > span.Length) throw new ArgumentException($"{data.Length} elements do not fit a span of {span.Length}", nameof(data));
        _memory.Upload(MemoryMarshal.AsBytes(data), offset);
    }

    /// <summary>Synchronous copy of the start of <paramref name="span"/>, a span of this arena, to <paramref name="data"/>.</summary>
    public void Download<T>(DeviceSpan<T> span, Span<T> data) where T : unmanaged
    {
        long offset = Offset(span);
        if (data.Length > span.Length) throw new ArgumentException($"{data.Length} elements are more than the span's {span.Length}", nameof(data));
        _memory.Download(MemoryMarshal.AsBytes(data), offset);
    }

    private long Offset<T>(DeviceSpan<T> span) where T : unmanaged
    {
        if (span.Pointer < _memory.Pointer || (long)(span.Pointer - _memory.Pointer) + span.Bytes > Used)
            throw new ArgumentException("the span is not one this arena handed out", nameof(span));
        return (long)(span.Pointer - _memory.Pointer);
    }

    public void Dispose() => _memory.Dispose();
}
