using System.Buffers.Binary;
using Actors.Grains.Storage;
using Actors.Kernels.Cpu;

namespace Actors.Grains.Tests.Storage;

public sealed class KvSnapshotTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Model = "llama-tiny@abc123";
    private const string Rope = "llama3:theta=500000,factor=8";

    internal static KvSnapshotHeader Header(KvDType dtype, int tokens, int pageSize = 4, int layers = 2, int kvHeads = 2, int headDim = 8, string model = Model, string rope = Rope) =>
        new(model, rope, dtype, pageSize, layers, kvHeads, headDim, Enumerable.Range(0, tokens).Select(i => 1000 + i * 7).ToArray());

    /// <summary>Page contents laid out as KvLayout says, value = f(page, layer, K/V, slot, head, dim), stored as f32 or bf16.</summary>
    internal static byte[] Page(KvSnapshotHeader h, int page)
    {
        var layout = new KvLayout(h.PageSize, h.LayerCount, h.KvHeads, h.HeadDim);
        var bytes = new byte[h.PageBytes];
        for (var layer = 0; layer < h.LayerCount; layer++)
        for (var slot = 0; slot < h.PageSize; slot++)
        for (var head = 0; head < h.KvHeads; head++)
        for (var d = 0; d < h.HeadDim; d++)
        {
            var k = layout.KeyOffset(0, layer, slot) + head * h.HeadDim + d;
            var v = layout.ValueOffset(0, layer, slot) + head * h.HeadDim + d;
            Put(k, page * 1000f + layer * 100 + slot * 10 + head + d * 0.125f);
            Put(v, -(page * 1000f + layer * 100 + slot * 10 + head + d * 0.125f));
        }
        return bytes;

        void Put(long element, float value)
        {
            if (h.DType == KvDType.F32) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(element * 4)), value);
            else BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)(element * 2)), (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16));
        }
    }

    internal static async Task<byte[]> EncodeAsync(KvSnapshotHeader h)
    {
        using var ms = new MemoryStream();
        var w = await KvSnapshotWriter.CreateAsync(ms, h, Ct);
        for (var p = 0; p < h.PageCount; p++) await w.WritePageAsync(Page(h, p), Ct);
        await w.CompleteAsync(Ct);
        return ms.ToArray();
    }

    private static async Task<(KvSnapshotHeader Header, List<byte[]> Pages)> DecodeAsync(Stream s, KvSnapshotExpectation? expected)
    {
        var r = await KvSnapshotReader.OpenAsync(s, expected, "test", Ct);
        var pages = new List<byte[]>();
        await r.ReadAllPagesAsync((i, page, _) => { Assert.Equal(pages.Count, i); pages.Add(page.ToArray()); return ValueTask.CompletedTask; }, Ct);
        return (r.Header, pages);
    }

    [Theory]
    [InlineData(KvDType.F32, 10)] // 3 pages, the last one partly used
    [InlineData(KvDType.BF16, 10)]
    [InlineData(KvDType.F32, 4)]  // exactly one page
    [InlineData(KvDType.BF16, 1)]
    [InlineData(KvDType.BF16, 33)]
    public async Task Round_trip_keeps_header_and_pages(KvDType dtype, int tokens)
    {
        var h = Header(dtype, tokens);
        var bytes = await EncodeAsync(h);

        // Sizes derived by hand: page = 2 layers * 2 (K,V) * 4 slots * 2 heads * 8 dims * sizeof.
        Assert.Equal(dtype == KvDType.F32 ? 1024 : 512, h.PageBytes);
        Assert.Equal(new KvLayout(4, 2, 2, 8).PageStride * (dtype == KvDType.F32 ? 4 : 2), h.PageBytes);
        Assert.Equal((tokens + 3) / 4, h.PageCount);
        var headerLength = 48 + 2 + Model.Length + 2 + Rope.Length + 4 * tokens;
        Assert.Equal(headerLength + 8 + h.PageCount * h.PageBytes + 16, bytes.Length);
        Assert.Equal(bytes.Length, h.TotalBytes);
        Assert.Equal("ACTKVSNP"u8.ToArray(), bytes[..8]);
        Assert.Equal(headerLength, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12)));

        foreach (var stream in new Stream[] { new MemoryStream(bytes), new NonSeekableStream(bytes) })
        {
            var (got, pages) = await DecodeAsync(stream, new KvSnapshotExpectation(Model, Rope) { DType = dtype, PageSize = 4, LayerCount = 2, KvHeads = 2, HeadDim = 8 });
            Assert.Equal(Model, got.ModelId);
            Assert.Equal(Rope, got.RopeProfile);
            Assert.Equal(dtype, got.DType);
            Assert.Equal(h.TokenIds, got.TokenIds);
            Assert.Equal(h.PageCount, pages.Count);
            for (var p = 0; p < pages.Count; p++) Assert.Equal(Page(h, p), pages[p]);
        }
    }

    [Fact]
    public async Task Page_values_sit_where_KvLayout_puts_them()
    {
        var h = Header(KvDType.F32, 8);
        var (_, pages) = await DecodeAsync(new MemoryStream(await EncodeAsync(h)), null);
        var layout = new KvLayout(4, 2, 2, 8);
        // page 1, layer 1, V of slot 2, head 1, dim 3 = -(1000 + 100 + 20 + 1 + 0.375)
        var off = (int)(layout.ValueOffset(0, 1, 2) + 1 * 8 + 3) * 4;
        Assert.Equal(-1121.375f, BinaryPrimitives.ReadSingleLittleEndian(pages[1].AsSpan(off)));
    }

    [Fact]
    public async Task Every_flipped_byte_is_detected_as_corruption()
    {
        var h = Header(KvDType.F32, 5, pageSize: 2, layers: 1, kvHeads: 1, headDim: 4); // 3 pages of 64 bytes
        var good = await EncodeAsync(h);
        var fields = new HashSet<string>();
        for (var i = 0; i < good.Length; i++)
        {
            var bad = (byte[])good.Clone();
            bad[i] ^= 0x40;
            foreach (var seekable in new[] { true, false })
            {
                Stream s = seekable ? new MemoryStream(bad) : new NonSeekableStream(bad);
                var e = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(s, new KvSnapshotExpectation(Model, Rope)));
                fields.Add(e.Field);
            }
        }
        // Each region has its own diagnosis.
        foreach (var f in new[] { "magic", "format version", "dtype", "header checksum", "checksum" }) Assert.Contains(f, fields);
    }

    [Theory]
    [InlineData(0, "magic")]
    [InlineData(8, "format version")]
    [InlineData(60, "header checksum")] // inside the model id
    public async Task Flips_name_the_region(int offset, string field)
    {
        var good = await EncodeAsync(Header(KvDType.BF16, 9));
        good[offset] ^= 1;
        var e = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new MemoryStream(good), null));
        Assert.Equal(field, e.Field);
        Assert.Contains("test", e.Message);
    }

    [Fact]
    public async Task Flips_in_payload_and_trailer_fail_the_checksum_only_at_the_end()
    {
        var h = Header(KvDType.F32, 10);
        var good = await EncodeAsync(h);
        var payloadStart = good.Length - 16 - 3 * 1024;
        foreach (var offset in new[] { payloadStart, payloadStart + 1500, good.Length - 17, good.Length - 16, good.Length - 1 })
        {
            var bad = (byte[])good.Clone();
            bad[offset] ^= 0x80;
            var r = await KvSnapshotReader.OpenAsync(new NonSeekableStream(bad), null, "test", Ct);
            var buf = new byte[h.PageBytes];
            await r.ReadPageAsync(buf, Ct);
            await r.ReadPageAsync(buf, Ct);
            var e = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => r.ReadPageAsync(buf, Ct).AsTask());
            Assert.Equal("checksum", e.Field);
            Assert.Equal(good.Length - 16, e.Offset);
        }
    }

    [Fact]
    public async Task Every_truncation_and_trailing_bytes_are_detected()
    {
        var good = await EncodeAsync(Header(KvDType.BF16, 5, pageSize: 2, layers: 1, kvHeads: 1, headDim: 4));
        for (var len = 0; len < good.Length; len++)
        {
            var cut = good[..len];
            var e1 = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new NonSeekableStream(cut), null));
            Assert.True(e1.Message.Contains("truncated"), $"length {len}: {e1.Message}");
            var e2 = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new MemoryStream(cut), null));
            Assert.True(e2.Message.Contains("truncated"), $"length {len}: {e2.Message}");
        }
        var longer = good.Concat(new byte[] { 0 }).ToArray();
        Assert.Equal("end of snapshot", (await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new NonSeekableStream(longer), null))).Field);
        Assert.Equal("stream length", (await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new MemoryStream(longer), null))).Field);
    }

    [Fact]
    public async Task Foreign_model_rope_or_geometry_is_a_mismatch()
    {
        var bytes = await EncodeAsync(Header(KvDType.F32, 6));
        var m = await Assert.ThrowsAsync<SnapshotMismatchException>(() => DecodeAsync(new MemoryStream(bytes), new KvSnapshotExpectation("qwen2-7b", Rope)));
        Assert.Equal(("model id", "qwen2-7b", Model), (m.Field, m.Expected, m.Actual));
        var r = await Assert.ThrowsAsync<SnapshotMismatchException>(() => DecodeAsync(new MemoryStream(bytes), new KvSnapshotExpectation(Model, "default:theta=10000")));
        Assert.Equal("RoPE profile", r.Field);
        var d = await Assert.ThrowsAsync<SnapshotMismatchException>(() => DecodeAsync(new MemoryStream(bytes), new KvSnapshotExpectation(Model, Rope) { DType = KvDType.BF16 }));
        Assert.Equal("dtype", d.Field);
        var p = await Assert.ThrowsAsync<SnapshotMismatchException>(() => DecodeAsync(new MemoryStream(bytes), new KvSnapshotExpectation(Model, Rope) { PageSize = 16 }));
        Assert.Equal("page size", p.Field);
    }

    /// <summary>Rewrites fields of a valid header and re-seals its checksum, to reach the checks behind it.</summary>
    private static byte[] Forge(byte[] good, Action<byte[]> edit)
    {
        var b = (byte[])good.Clone();
        edit(b);
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(good.AsSpan(12));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(headerLength), System.IO.Hashing.XxHash3.HashToUInt64(b.AsSpan(0, headerLength)));
        return b;
    }

    [Theory]
    [InlineData(32, int.MaxValue, "token count")]
    [InlineData(32, -1, "token count")]
    [InlineData(16, 0, "page size")]
    [InlineData(20, 1 << 20, "layer count")]
    [InlineData(36, 2, "page count")]
    [InlineData(40, 999, "page bytes")]
    [InlineData(12, int.MaxValue, "header length")]
    [InlineData(48, 60000, "model id length")]
    public async Task Lengths_are_checked_before_anything_is_allocated(int offset, int value, string field)
    {
        var good = await EncodeAsync(Header(KvDType.F32, 10));
        var forged = Forge(good, b =>
        {
            if (offset == 48) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(48), (ushort)value);
            else BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(offset), value);
        });
        var e = await Assert.ThrowsAsync<KvSnapshotFormatException>(() => DecodeAsync(new NonSeekableStream(forged), null));
        Assert.Equal(field, e.Field);
        Assert.Equal(offset, e.Offset);
    }

    [Fact]
    public async Task Writer_refuses_wrong_pages_and_incomplete_snapshots()
    {
        var h = Header(KvDType.F32, 5);
        var w = await KvSnapshotWriter.CreateAsync(new MemoryStream(), h, Ct);
        await Assert.ThrowsAsync<ArgumentException>(() => w.WritePageAsync(new byte[h.PageBytes - 1], Ct).AsTask());
        await w.WritePageAsync(Page(h, 0), Ct);
        await Assert.ThrowsAsync<InvalidOperationException>(() => w.CompleteAsync(Ct).AsTask());
        await w.WritePageAsync(Page(h, 1), Ct);
        await Assert.ThrowsAsync<InvalidOperationException>(() => w.WritePageAsync(Page(h, 2), Ct).AsTask());
        await w.CompleteAsync(Ct);

        await Assert.ThrowsAsync<ArgumentException>(() => KvSnapshotWriter.CreateAsync(new MemoryStream(), Header(KvDType.F32, 0), Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => KvSnapshotWriter.CreateAsync(new MemoryStream(), Header(KvDType.F32, 3, model: ""), Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => KvSnapshotWriter.CreateAsync(new MemoryStream(), Header(KvDType.F32, 3, rope: new string('r', 2000)), Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => KvSnapshotWriter.CreateAsync(new MemoryStream(), Header((KvDType)7, 3), Ct));
    }
}
