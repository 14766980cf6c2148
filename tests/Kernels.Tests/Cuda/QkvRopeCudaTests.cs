using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// qkv_rope.cu (bias + q/k norm + RoPE + paged KV write in one launch) against <see cref="QkvRopeKernels.Reference"/>,
/// and the reference against the f32 CPU kernels (RmsNorm, Rope) it restates with bf16 roundings. Odd token counts,
/// page sizes and head dims; random cos/sin tables stand for every RoPE scaling type (the kernel only reads tables).
/// </summary>
[Collection("cuda")]
public class QkvRopeCudaTests
{
    private sealed record Case(int Tokens, int Heads, int KvHeads, int HeadDim, int PageSize, bool Bias, bool Norm, bool Positions, int Pad)
    {
        public int Width => (Heads + 2 * KvHeads) * HeadDim;
        public int Stride => Width + Pad;
        public int Half => HeadDim / 2;
        public KvLayout Layout => new(PageSize, 3, KvHeads, HeadDim);
        public int Pages => Tokens / PageSize + 3;
    }

    private sealed record Inputs(ushort[] Qkv, ushort[] Bias, ushort[] QNorm, ushort[] KNorm, float[] Cos, float[] Sin, int TableRows,
        int[] Positions, int[] Slots, ushort[] Pool);

    private static Inputs Make(Case c, int seed)
    {
        var rng = new Random(seed);
        ushort[] Bits(int n, float scale) => Bf16.FromSingles(TestData.Random(n, rng.Next(), scale));
        int tableRows = c.Positions ? 41 : c.Tokens;
        // A sequence at positions 5.. with a shuffled page table: token t goes to slot table[pos / P] · P + pos % P.
        var table = Enumerable.Range(0, c.Pages).OrderBy(_ => rng.Next()).ToArray();
        var slots = Enumerable.Range(0, c.Tokens).Select(t => { int pos = t + 2; return table[pos / c.PageSize] * c.PageSize + pos % c.PageSize; }).ToArray();
        return new Inputs(
            Bits(c.Tokens * c.Stride, 3f),
            c.Bias ? Bits(c.Width, 1f) : [],
            c.Norm ? Bits(c.HeadDim, 1.5f) : [],
            c.Norm ? Bits(c.HeadDim, 1.5f) : [],
            TestData.Random(tableRows * c.Half, rng.Next()), TestData.Random(tableRows * c.Half, rng.Next()), tableRows,
            c.Positions ? Enumerable.Range(0, c.Tokens).Select(t => (t * 11 + 4) % tableRows).ToArray() : [],
            slots,
            Bits(c.Pages * c.Layout.PageStride, 5f));
    }

    public static TheoryData<int, int, int, int, int, bool, bool, bool, int> Cases => new()
    {
        { 7, 4, 2, 12, 3, true, false, false, 0 },    // Qwen2-like: bias
        { 13, 4, 2, 16, 5, false, true, true, 4 },    // Qwen3-like: q/k norm, table rows by position, padded rows
        { 5, 8, 1, 128, 16, true, true, false, 0 },   // bias and norm together, one KV head
        { 9, 3, 3, 7, 4, false, false, true, 0 },     // odd head dim: the last channel is not rotated
        { 1, 32, 8, 128, 16, false, false, false, 0 },// a decode row of a Llama-3-8B-shaped layer
        { 33, 2, 1, 256, 7, true, true, true, 0 },    // the largest head dim
        { 37, 8, 2, 128, 16, true, false, true, 0 },  // head dim 128 with 8-byte accesses (qkv_rope_kv128), bias
        { 6, 4, 2, 128, 16, true, true, true, 2 },    // head dim 128, rows 2 elements apart from 8-byte alignment: qkv_rope_kv
        // 64 tokens or more, head dim 128: a block per token (qkv_rope_kv128t)
        { 70, 32, 8, 128, 16, false, false, true, 0 }, // Llama-3-8B-shaped: 48 heads, 3 per half-warp
        { 65, 28, 4, 128, 64, true, false, false, 0 }, // Qwen2-7B-shaped: bias, 36 heads (half-warps with 2 and 3)
        { 66, 16, 8, 128, 16, true, true, false, 0 }, // q/k norm (the sum of squares over a half-warp)
        { 64, 48, 8, 128, 16, false, true, true, 8 },  // 64 heads, the most a block takes; rows padded by 16 bytes
        { 67, 60, 8, 128, 16, true, false, false, 0 }, // 76 heads: too many for a block, qkv_rope_kv128
        { 68, 8, 2, 128, 16, true, false, false, 4 },  // rows 8-byte but not 16-byte aligned: qkv_rope_kv128
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reference_restates_the_f32_cpu_kernels(int tokens, int heads, int kvHeads, int headDim, int pageSize, bool bias, bool norm, bool positions, int pad)
    {
        var c = new Case(tokens, heads, kvHeads, headDim, pageSize, bias, norm, positions, pad);
        var inp = Make(c, tokens * 100 + headDim);
        var q = new ushort[tokens * heads * headDim];
        var pool = (ushort[])inp.Pool.Clone();
        QkvRopeKernels.Reference(inp.Qkv, tokens, c.Stride, heads, kvHeads, headDim, inp.Bias, inp.QNorm, inp.KNorm, 1e-6f,
            inp.Cos, inp.Sin, inp.TableRows, inp.Positions, inp.Slots, q, pool, c.Layout, 1);

        // f32: bias, then per-head RMSNorm (Kernels.Cpu), then Rope.Reference on (tokens, heads, headDim).
        int d = headDim, half = c.Half, all = heads + 2 * kvHeads;
        var x = new float[tokens * all * d];
        for (int t = 0; t < tokens; t++)
        for (int i = 0; i < all * d; i++)
            x[t * all * d + i] = Bf16.ToSingle(inp.Qkv[t * c.Stride + i]) + (bias ? Bf16.ToSingle(inp.Bias[i]) : 0f);
        var qf = new float[tokens * heads * d];
        var kf = new float[tokens * kvHeads * d];
        var vf = new float[tokens * kvHeads * d];
        for (int t = 0; t < tokens; t++)
        {
            Array.Copy(x, t * all * d, qf, t * heads * d, heads * d);
            Array.Copy(x, t * all * d + heads * d, kf, t * kvHeads * d, kvHeads * d);
            Array.Copy(x, t * all * d + (heads + kvHeads) * d, vf, t * kvHeads * d, kvHeads * d);
        }
        if (norm)
        {
            RmsNorm.Reference(qf.ToArray(), Bf16.ToSingles(inp.QNorm), qf, tokens * heads, d, 1e-6f);
            RmsNorm.Reference(kf.ToArray(), Bf16.ToSingles(inp.KNorm), kf, tokens * kvHeads, d, 1e-6f);
        }
        var cs = new float[tokens * half];
        var sn = new float[tokens * half];
        for (int t = 0; t < tokens; t++)
        {
            int row = positions ? inp.Positions[t] : t;
            Array.Copy(inp.Cos, row * half, cs, t * half, half);
            Array.Copy(inp.Sin, row * half, sn, t * half, half);
        }
        Rope.Reference(qf, tokens, heads, d, cs, sn);
        Rope.Reference(kf, tokens, kvHeads, d, cs, sn);

        TestData.Close(qf, Bf16.ToSingles(q), 3e-2, 3e-2, "q");
        var expectedPool = Bf16.ToSingles(inp.Pool);
        var layout = c.Layout;
        for (int t = 0; t < tokens; t++)
        {
            int page = inp.Slots[t] / pageSize, slot = inp.Slots[t] % pageSize;
            Array.Copy(kf, t * kvHeads * d, expectedPool, layout.KeyOffset(page, 1, slot), kvHeads * d);
            Array.Copy(vf, t * kvHeads * d, expectedPool, layout.ValueOffset(page, 1, slot), kvHeads * d);
        }
        TestData.Close(expectedPool, Bf16.ToSingles(pool), 3e-2, 3e-2, "pool"); // every other slot and layer untouched
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernel_matches_reference(int tokens, int heads, int kvHeads, int headDim, int pageSize, bool bias, bool norm, bool positions, int pad)
    {
        var gpu = Gpu.Require();
        var c = new Case(tokens, heads, kvHeads, headDim, pageSize, bias, norm, positions, pad);
        var inp = Make(c, tokens * 100 + headDim);
        var q = new ushort[tokens * heads * headDim];
        var pool = (ushort[])inp.Pool.Clone();
        QkvRopeKernels.Reference(inp.Qkv, tokens, c.Stride, heads, kvHeads, headDim, inp.Bias, inp.QNorm, inp.KNorm, 1e-6f,
            inp.Cos, inp.Sin, inp.TableRows, inp.Positions, inp.Slots, q, pool, c.Layout, 1);

        using var dQkv = gpu.Upload<ushort>(inp.Qkv);
        using var dBias = bias ? gpu.Upload<ushort>(inp.Bias) : null;
        using var dQn = norm ? gpu.Upload<ushort>(inp.QNorm) : null;
        using var dKn = norm ? gpu.Upload<ushort>(inp.KNorm) : null;
        using var dCos = gpu.Upload<float>(inp.Cos);
        using var dSin = gpu.Upload<float>(inp.Sin);
        using var dPos = positions ? gpu.Upload<int>(inp.Positions) : null;
        using var dSlots = gpu.Upload<int>(inp.Slots);
        using var dQ = gpu.Device.Allocate<ushort>(q.Length);
        using var dPool = gpu.Upload<ushort>(inp.Pool);
        using var stream = gpu.Device.CreateStream();
        var kernels = new QkvRopeKernels(gpu.Compiler);
        kernels.Apply(stream, dQkv, tokens, c.Stride, heads, kvHeads, headDim, dBias?.Span ?? default, dQn?.Span ?? default, dKn?.Span ?? default,
            1e-6f, dCos, dSin, inp.TableRows, dPos?.Span ?? default, dSlots, dQ, dPool, c.Layout, 1);
        stream.Synchronize();
        // rsqrtf and fused multiply-adds may move a value by a bf16 ulp against the host's roundings.
        TestData.Close(Bf16.ToSingles(q), Gpu.DownloadBf16(dQ), 1.6e-2, 1e-3, "q");
        TestData.Close(Bf16.ToSingles(pool), Gpu.DownloadBf16(dPool), 1.6e-2, 1e-3, "pool");
    }

    [Fact]
    public void Launcher_rejects_bad_shapes()
    {
        var gpu = Gpu.Require();
        var kernels = new QkvRopeKernels(gpu.Compiler);
        using var buf = gpu.Device.Allocate<ushort>(1 << 16);
        using var f = gpu.Device.Allocate<float>(1024);
        using var i = gpu.Device.Allocate<int>(64);
        using var stream = gpu.Device.CreateStream();
        var layout = new KvLayout(4, 2, 2, 8);
        Assert.Throws<ArgumentException>(() => kernels.Apply(stream, buf, 3, 64, 4, 2, 8, default, buf, default, 1e-6f, f, f, 3, default, i, buf, buf, layout, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Apply(stream, buf, 3, 60, 4, 2, 8, default, default, default, 1e-6f, f, f, 3, default, i, buf, buf, layout, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Apply(stream, buf, 3, 64, 4, 2, 8, default, default, default, 1e-6f, f, f, 3, default, i, buf, buf, layout, 2));
        Assert.ThrowsAny<ArgumentException>(() => kernels.Apply(stream, buf, 3, 64, 4, 2, 16, default, default, default, 1e-6f, f, f, 3, default, i, buf, buf, layout, 0)); // stride below (4 + 2·2)·16
    }
}
