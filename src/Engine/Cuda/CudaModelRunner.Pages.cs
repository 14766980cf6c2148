using Actors.Engine.Paging;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Cuda;

/// <summary>
/// Page moves between the bf16 device pool and host memory (the KV tiers): each page is one contiguous block of
/// <see cref="PageBytes"/>, copied with one cuMemcpy*Async on the runner's stream (so after the step that wrote it),
/// a batch of pages waited for once. Host pool storage is pinned (cuMemHostAlloc) so the copies reach PCIe speed.
/// </summary>
public sealed partial class CudaModelRunner
{
    public string KvDType => "bf16";

    public long PageBytes => (long)KvLayout.PageStride * sizeof(ushort);

    public void ReadPages(ReadOnlySpan<int> pages, Span<byte> destination)
    {
        CheckPageBytes(pages.Length, destination.Length, nameof(destination));
        if (pages.IsEmpty) return;
        var sources = PagePointers(pages);
        long n = PageBytes;
        unsafe
        {
            // The span is fixed for the whole batch: the copies are asynchronous until the stream is waited for.
            fixed (byte* d = destination)
            {
                byte* dd = d;
                HostCopies.DeviceToHost(_stream, sources, i => new Span<byte>(dd + i * n, (int)n));
            }
        }
    }

    public void WritePages(ReadOnlySpan<int> pages, ReadOnlySpan<byte> source)
    {
        CheckPageBytes(pages.Length, source.Length, nameof(source));
        if (pages.IsEmpty) return;
        var destinations = PagePointers(pages);
        long n = PageBytes;
        unsafe
        {
            fixed (byte* s = source)
            {
                byte* ss = s;
                HostCopies.HostToDevice(_stream, i => new Span<byte>(ss + i * n, (int)n), destinations);
            }
        }
    }

    public void ReadPages(ReadOnlySpan<int> pages, PageBuffer destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var sources = PagePointers(pages);
        HostCopies.DeviceToHost(_stream, sources, i =>
        {
            var d = destination(i);
            CheckPageBytes(1, d.Length, $"destination({i})");
            return d;
        });
    }

    public void WritePages(ReadOnlySpan<int> pages, PageBuffer source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var destinations = PagePointers(pages);
        HostCopies.HostToDevice(_stream, i =>
        {
            var s = source(i);
            CheckPageBytes(1, s.Length, $"source({i})");
            return s;
        }, destinations);
    }

    public IHostBuffer AllocateHost(int bytes) => new PinnedHostBuffer(_device.AllocatePinned<byte>(bytes));

    private ulong[] PagePointers(ReadOnlySpan<int> pages)
    {
        var result = new ulong[pages.Length];
        ulong bytes = (ulong)PageBytes;
        for (int i = 0; i < pages.Length; i++)
        {
            if ((uint)pages[i] >= (uint)KvPages) throw new ArgumentOutOfRangeException(nameof(pages), pages[i], $"the KV pool has {KvPages} pages");
            result[i] = _pool.Pointer + (ulong)pages[i] * bytes;
        }
        return result;
    }

    private void CheckPageBytes(int pages, long bytes, string argument)
    {
        if (bytes != pages * PageBytes)
            throw new ArgumentException($"{argument} has {bytes} bytes; {pages} KV pages of {PageBytes} bytes need {pages * PageBytes}", argument);
    }

    /// <summary>Pinned host memory as an <see cref="IHostBuffer"/>; freed with the buffer (before the device goes).</summary>
    private sealed class PinnedHostBuffer(PinnedBuffer<byte> buffer) : IHostBuffer
    {
        public Span<byte> Span => buffer.Span;

        public void Dispose() => buffer.Dispose();
    }
}
