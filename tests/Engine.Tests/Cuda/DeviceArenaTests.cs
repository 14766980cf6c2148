using Actors.Engine.Cuda;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Tests.Cuda;

/// <summary>DeviceArena: the offset plan (host), and spans carved from one device allocation (GPU).</summary>
[Collection("cuda-engine")]
public class DeviceArenaTests
{
    [Fact]
    public void Plan_aligns_every_span_and_sums_the_capacity()
    {
        Assert.Equal(0, DeviceArena.AlignUp(0));
        Assert.Equal(256, DeviceArena.AlignUp(1));
        Assert.Equal(256, DeviceArena.AlignUp(256));
        Assert.Equal(512, DeviceArena.AlignUp(257));
        var (offsets, total) = DeviceArena.Plan([10, 0, 256, 300, 2]);
        Assert.Equal([0L, 256, 256, 512, 1024], offsets);
        Assert.Equal(1280, total);
        Assert.Throws<ArgumentOutOfRangeException>(() => DeviceArena.Plan([4, -1]));
    }

    [Fact]
    public void Spans_are_aligned_disjoint_and_bounded()
    {
        CudaGpu.Require();
        Assert.True(CudaDevice.TryOpen(0, out var device, out var reason), reason);
        using var dev = device!;
        long[] bytes = [7 * 2, 1000 * 4, 3 * 2, 333 * 4];
        using var arena = new DeviceArena(dev, DeviceArena.Plan(bytes).Total);
        var a = arena.Take<ushort>(7);
        var b = arena.Take<int>(1000);
        var c = arena.Take<ushort>(3);
        var d = arena.Take<float>(333);
        Assert.Equal(arena.Capacity, arena.Used);
        foreach (var p in new[] { a.Pointer, b.Pointer, c.Pointer, d.Pointer }) Assert.Equal(0ul, p % DeviceArena.Alignment);
        Assert.Throws<InvalidOperationException>(() => arena.Take<byte>(1));

        // Each span keeps its own data: write all, then read all back.
        ushort[] va = [1, 2, 3, 4, 5, 6, 7];
        int[] vb = Enumerable.Range(100, 1000).ToArray();
        ushort[] vc = [9, 8, 7];
        float[] vd = Enumerable.Range(0, 333).Select(i => i * 0.5f).ToArray();
        arena.Upload(a, va);
        arena.Upload(b, vb);
        arena.Upload(c, vc);
        arena.Upload(d, vd);
        var ra = new ushort[7]; var rb = new int[1000]; var rc = new ushort[3]; var rd = new float[333];
        arena.Download(a, ra); arena.Download(b, rb); arena.Download(c, rc); arena.Download(d, rd);
        Assert.Equal(va, ra);
        Assert.Equal(vb, rb);
        Assert.Equal(vc, rc);
        Assert.Equal(vd, rd);
        Assert.Throws<ArgumentException>(() => arena.Upload(c, new ushort[4]));
        using var other = dev.Allocate<int>(4);
        Assert.Throws<ArgumentException>(() => arena.Upload(other.Span, new int[4]));
    }
}
