using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// Copies between device memory and any host span, batched on one stream: the KV page moves between the device pool
/// and the host tier (many page-sized blocks, one synchronisation). When the span lies in page-locked memory
/// (<see cref="PinnedBuffer{T}"/>) the copy is a DMA at PCIe speed; from pageable memory the driver stages it and
/// returns only when the host side is done with the span, so a span never needs to outlive the call.
/// </summary>
public static unsafe class HostCopies
{
    /// <summary>
    /// Enqueues copies of device blocks <paramref name="sources"/>[i] (each <c>destination(i).Length</c> bytes) into
    /// the host spans, then waits for <paramref name="stream"/> so every span holds its bytes on return.
    /// </summary>
    public static void DeviceToHost(CudaStream stream, ReadOnlySpan<ulong> sources, HostSpan destination)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(destination);
        stream.Device.MakeCurrent();
        for (int i = 0; i < sources.Length; i++)
        {
            var d = destination(i);
            if (d.IsEmpty) continue;
            fixed (byte* p = d)
                Driver.Check(Driver.cuMemcpyDtoHAsync_v2(p, sources[i], (nuint)d.Length, stream.Handle),
                    "cuMemcpyDtoHAsync_v2", $"block {i} of {sources.Length}: {d.Length} bytes from 0x{sources[i]:x}");
        }
        stream.Synchronize();
    }

    /// <summary>
    /// Enqueues copies of the host spans <c>source(i)</c> to device blocks <paramref name="destinations"/>[i], then
    /// waits for <paramref name="stream"/>, so the spans may be reused on return and later work on the stream sees the data.
    /// </summary>
    public static void HostToDevice(CudaStream stream, HostSpan source, ReadOnlySpan<ulong> destinations)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(source);
        stream.Device.MakeCurrent();
        for (int i = 0; i < destinations.Length; i++)
        {
            var s = source(i);
            if (s.IsEmpty) continue;
            fixed (byte* p = s)
                Driver.Check(Driver.cuMemcpyHtoDAsync_v2(destinations[i], p, (nuint)s.Length, stream.Handle),
                    "cuMemcpyHtoDAsync_v2", $"block {i} of {destinations.Length}: {s.Length} bytes to 0x{destinations[i]:x}");
        }
        stream.Synchronize();
    }
}

/// <summary>The host bytes of block <paramref name="index"/> of a batched copy.</summary>
public delegate Span<byte> HostSpan(int index);
