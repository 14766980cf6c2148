using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// attention.cu / attention_fast.cu against <see cref="PagedAttention.Reference"/> on random bf16 pools with shuffled pages.
/// Every GPU case runs twice: through the launcher's default choice (the fast kernels where they apply: FlashAttention-2
/// prefill at head dim 128, vectorised decode at head dims 64 / 128 with groups 1, 2, 4, 8) and through the simple kernels.
/// </summary>
[Collection("cuda")]
public class AttentionCudaTests
{
    private static readonly Lazy<AttentionKernels> SimpleKernels = new(() => new AttentionKernels(Gpu.Require().Compiler, simpleOnly: true));
    /// <summary>The default kernels with the TMA decode switched off: the vectorised register decode wherever it applies.</summary>
    private static readonly Lazy<AttentionKernels> RegisterDecodeKernels = new(() => new AttentionKernels(Gpu.Require().Compiler) { UseTmaDecode = false });
    private static readonly Lazy<AttentionKernels> FixedSplitTmaKernels = new(() => new AttentionKernels(Gpu.Require().Compiler) { BalanceTmaSplits = false });
    /// <summary>The default kernels with the TMA decode's early loads on whatever ACTORS_TMA_EARLY says.</summary>
    private static readonly Lazy<AttentionKernels> EarlyLoadKernels = new(() => new AttentionKernels(Gpu.Require().Compiler) { EarlyTmaDecodeLoads = true });
    /// <summary>The default kernels with the decode's splits merged by paged_decode_reduce (a block per head).</summary>
    /// <summary>The wgmma prefill built to rescale at every new running max (WGP_LAZY_RESCALE 0).</summary>
    private static readonly Lazy<AttentionKernels> EagerRescaleKernels = new(() => new AttentionKernels(Gpu.Require().Compiler, prefillLazyRescale: false));
    private static readonly Lazy<AttentionKernels> BlockMergeKernels = new(() => new AttentionKernels(Gpu.Require().Compiler) { UseWarpSplitMerge = false });

    /// <summary>The kernels under test: the simple ones only, or the launcher's default (fast where it applies).</summary>
    private static AttentionKernels Kernels(Gpu gpu, bool simple) => simple ? SimpleKernels.Value : gpu.Attention;

    /// <summary>A bf16-rounded pool of poolPages random pages.</summary>
    private static float[] Pool(KvLayout layout, int poolPages, int seed) => Gpu.RandomBf16(poolPages * layout.PageStride, seed);

    private static int[] Shuffled(int count, int seed)
    {
        int[] order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        return order;
    }

    /// <summary>
    /// The fast kernels with the 64-row FlashAttention-2 prefill (paged_prefill_fa) instead of the default 128-row one,
    /// so both stay checked; null where the device cannot give the 128-row kernel its shared memory (then the default
    /// already is the 64-row kernel).
    /// </summary>
    private static readonly Lazy<AttentionKernels?> Flash64Kernels = new(() =>
    {
        var gpu = Gpu.Require();
        if (AttentionKernels.SimpleRequested || gpu.Attention.FlashPrefillRows != 128) return null;
        return new AttentionKernels(gpu.Compiler, simpleOnly: false) { FlashPrefillRows = 64 };
    });

    /// <summary>
    /// The fast kernels with the one-head 128-row prefill (paged_prefill_fa128) instead of the GQA-shared default
    /// (paged_prefill_fa128g), so the fallback stays checked; null where the 128-row kernels do not run.
    /// </summary>
    private static readonly Lazy<AttentionKernels?> Flash128Kernels = new(() =>
    {
        var gpu = Gpu.Require();
        if (AttentionKernels.SimpleRequested || gpu.Attention.FlashPrefillRows != 128) return null;
        return new AttentionKernels(gpu.Compiler, simpleOnly: false) { UseGqaPrefill = false };
    });

    /// <summary>
    /// The fast kernels with the wgmma/TMA prefill off, so the mma.sync GQA kernel (paged_prefill_fa128g) stays checked
    /// where the wgmma one is the default (compute capability 9.0); null elsewhere (the default already is mma.sync).
    /// </summary>
    private static readonly Lazy<AttentionKernels?> MmaKernels = new(() =>
    {
        var gpu = Gpu.Require();
        if (AttentionKernels.SimpleRequested || !gpu.Attention.UseWgmmaPrefill) return null;
        return new AttentionKernels(gpu.Compiler, simpleOnly: false) { UseWgmmaPrefill = false };
    });

    /// <summary>
    /// Prefill paths: "default" (the launcher's choice: the wgmma/TMA kernel on compute capability 9.0, else the
    /// GQA-shared 128-row flash kernel, where they apply), "mma" (the GQA-shared mma.sync kernel with wgmma off),
    /// "fa128" (one-head 128-row flash kernel), "fa64" (64-row flash kernel), "simple"; the split-KV cases also "block
    /// merge" (the default kernels with prefill_split_reduce's block per (row, head) instead of a warp).
    /// </summary>
    private static TheoryData<int, int, int, int, int, int, int, string> PrefillPaths(TheoryData<int, int, int, int, int, int, int> cases)
    {
        var all = new TheoryData<int, int, int, int, int, int, int, string>();
        foreach (var row in cases)
        {
            var (a, b, c, d, e, f, g) = row.Data;
            all.Add(a, b, c, d, e, f, g, "default");
            if (d == 128) all.Add(a, b, c, d, e, f, g, "mma");
            if (d == 128) all.Add(a, b, c, d, e, f, g, "fa128");
            if (d == 128) all.Add(a, b, c, d, e, f, g, "fa64");
            if (d == 128 && e >= 1000 && f < 100) all.Add(a, b, c, d, e, f, g, "block merge"); // the split-KV cases
            all.Add(a, b, c, d, e, f, g, "simple");
        }
        return all;
    }

    public static TheoryData<int, int, int, int, int, int, int, string> PrefillCases() => PrefillPaths(new TheoryData<int, int, int, int, int, int, int>
    {
        // pageSize, kvHeads, group, headDim, firstPosition, queries, layer
        { 16, 2, 1, 64, 0, 1, 0 },
        { 16, 1, 4, 64, 20, 13, 0 },    // cached prefix + chunk, GQA 4
        { 1, 2, 2, 17, 3, 9, 1 },       // page size 1, odd head dim
        { 5, 3, 1, 33, 11, 7, 1 },      // odd page size and head dim
        { 16, 2, 4, 128, 0, 77, 1 },    // several key tiles, partial last block of queries
        { 16, 2, 7, 64, 150, 3, 0 },    // 14 heads / 2 KV heads, long cached prefix
        { 8, 1, 2, 256, 5, 40, 0 },     // the largest head dim
        { 4, 2, 2, 3, 2, 5, 1 },        // head dim below a warp
        // head dim 128 (the FlashAttention-2 path: 128- or 64-row query tiles, 64-key tiles)
        { 16, 2, 1, 128, 0, 64, 0 },    // exactly one query tile, group 1
        { 16, 1, 8, 128, 37, 150, 1 },  // GQA 8, cached prefix not tile-aligned, partial last query tile
        { 16, 2, 4, 128, 100, 1, 0 },   // one query after a prefix
        { 16, 1, 4, 128, 64, 64, 0 },   // tile-aligned prefix
        { 5, 1, 4, 128, 3, 130, 1 },    // odd page size: key tiles straddle pages unevenly
        { 16, 1, 2, 128, 250, 300, 0 }, // many key tiles, diagonal inside a tile
        { 16, 2, 4, 80, 9, 70, 1 },     // fallback head dim 80
        { 16, 1, 8, 128, 70, 129, 0 },  // GQA 8, prefix 70: a second 128-row block of one query (7 idle warps)
        { 16, 2, 4, 128, 0, 5, 1 },     // fewer queries than one warp's 16 rows
        { 16, 1, 4, 128, 0, 300, 0 },   // 3 query blocks: the 3-stage pipeline wraps (5 key tiles)
        { 3, 1, 2, 128, 190, 260, 1 },  // page size 3, long prefix: many tiles, diagonal mid-tile
        // GQA-shared blocks (paged_prefill_fa128g: group heads x 128 / group positions per block)
        { 16, 8, 4, 128, 37, 150, 0 },  // Llama-3-8B heads: 32-position blocks, 150 = 4 x 32 + 22, prefix 37
        { 5, 2, 4, 128, 13, 33, 1 },    // GQA 4, page size 5, one query past a 32-position block
        { 16, 2, 8, 128, 37, 45, 0 },   // GQA 8: 16-position blocks (one warp per head), 45 = 2 x 16 + 13
        { 5, 1, 8, 128, 101, 150, 1 },  // GQA 8, page size 5, long unaligned prefix
        { 16, 3, 2, 128, 61, 97, 0 },   // group 2: 64-position blocks, 97 = 64 + 33
        { 5, 2, 1, 128, 37, 150, 1 },   // group 1 (the grid is over KV heads = heads), page size 5
        { 16, 1, 4, 128, 200, 31, 0 },  // fewer queries than a 32-position block after a long prefix
        // split-KV (paged_prefill_fa128g_split + prefill_split_reduce): few row blocks over many key tiles
        { 16, 8, 4, 128, 4000, 19, 0 }, // a new turn on a long session: 8 blocks, 63 tiles -> 15 splits
        { 5, 2, 4, 128, 3001, 7, 1 },   // page size 5, 7 rows: later splits lie wholly after the early rows
        { 16, 1, 8, 128, 1000, 40, 0 }, // GQA 8: 3 row blocks, 16 tiles -> 4 splits
        { 16, 2, 2, 128, 2100, 70, 1 }, // group 2: a second row block with 6 rows
        // wgmma/TMA (paged_prefill_wgmma): 128-key tiles as whole pages of 16, 32, 64 or 128 slots
        { 32, 8, 4, 128, 0, 300, 1 },   // Llama-3-8B heads, page size 32, 3 tiles, last tile partly past the keys
        { 64, 2, 4, 128, 77, 129, 0 },  // page size 64, unaligned prefix
        { 128, 1, 8, 128, 5, 260, 1 },  // page size 128: one page per tile; GQA 8
        { 16, 2, 4, 128, 1000, 200, 0 },// 10 tiles: the 3-stage ring wraps three times (a larger case made the CPU reference take 37 s)
        { 32, 2, 1, 128, 3, 257, 1 },   // group 1: the two consumer warpgroups hold different positions
        { 16, 2, 4, 128, 6000, 19, 1 }, // split-KV in 128-key tiles: 47 tiles over 2 blocks
        { 64, 1, 2, 128, 2500, 5, 0 },  // split-KV, page size 64, 5 rows
    });

    [Theory]
    [InlineData(8, 63, 19, 32, 132, 15)]      // few blocks, many tiles: at least 4 tiles a split
    [InlineData(8, 512, 19, 32, 132, 33)]     // 32K: two blocks per multiprocessor
    [InlineData(132, 512, 4096, 32, 132, 1)]  // the blocks fill the device: no split
    [InlineData(8, 7, 19, 32, 132, 1)]        // too few tiles to split
    [InlineData(8, 512, 2000, 32, 132, 1)]    // two splits of 2000 rows x 32 heads would overflow the 32 MiB workspace
    public void Prefill_split_choice(int blocks, int tiles, int queries, int heads, int sms, int expected) =>
        Assert.Equal(expected, AttentionKernels.PrefillSplits(blocks, tiles, queries, heads, sms));

    [Theory]
    [MemberData(nameof(PrefillCases))]
    public void Prefill_matches_reference(int pageSize, int kvHeads, int group, int headDim, int firstPosition, int queries, int layer, string path)
    {
        var gpu = Gpu.Require();
        bool simple = path == "simple";
        var kernels = Kernels(gpu, simple);
        if (path == "fa64")
        {
            if (Flash64Kernels.Value is null) Assert.Skip("the default prefill already is the 64-row kernel (or simple kernels are forced)");
            kernels = Flash64Kernels.Value;
            Assert.Equal(64, kernels.FlashPrefillRows);
        }
        if (path == "mma")
        {
            if (MmaKernels.Value is null) Assert.Skip("the wgmma prefill is not the default here (the default path already is mma.sync)");
            kernels = MmaKernels.Value;
            Assert.False(kernels.PrefillUsesWgmma(headDim, kvHeads * group, kvHeads, pageSize));
        }
        if (path == "block merge") kernels = BlockMergeKernels.Value;
        if (path == "fa128")
        {
            if (Flash128Kernels.Value is null) Assert.Skip("the 128-row kernels do not run here (device shared memory, or forced elsewhere)");
            kernels = Flash128Kernels.Value;
            Assert.False(kernels.PrefillUsesGqa(headDim, kvHeads * group, kvHeads));
        }
        if (path == "default" && !AttentionKernels.SimpleRequested && !AttentionKernels.Flash64Requested && !AttentionKernels.Flash128Requested
            && kernels.FlashPrefillRows == 128 && AttentionKernels.GqaPrefillByDefault)
            Assert.Equal(headDim == 128 && group is 1 or 2 or 4 or 8, kernels.PrefillUsesGqa(headDim, kvHeads * group, kvHeads));
        if (path == "default" && gpu.Attention.UseWgmmaPrefill)
            Assert.Equal(headDim == 128 && group is 1 or 2 or 4 or 8 && pageSize is 16 or 32 or 64 or 128,
                kernels.PrefillUsesWgmma(headDim, kvHeads * group, kvHeads, pageSize));
        if (!simple && !AttentionKernels.SimpleRequested) Assert.Equal(headDim == 128, kernels.PrefillUsesFlash(headDim));
        CheckPrefill(gpu, kernels, pageSize, kvHeads, group, headDim, firstPosition, queries, layer, path, keyGrowth: 0f);
    }

    /// <summary>
    /// Keys scaled by 1 + growth x position, so a row's largest score keeps rising tile after tile (by more than 2^8 in
    /// its weights' units): a kernel that keeps a stale running max too long, or skips a rescale it needed, fails here.
    /// The default path (the wgmma kernel on compute capability 9.0), split-KV too.
    /// </summary>
    [Theory]
    [InlineData(32, 8, 4, 0, 300, 1, true)]
    [InlineData(16, 2, 4, 1000, 200, 0, true)]
    [InlineData(16, 2, 4, 6000, 19, 1, true)]
    [InlineData(64, 1, 2, 37, 129, 0, true)]
    [InlineData(32, 8, 4, 0, 300, 1, false)]
    [InlineData(16, 2, 4, 6000, 19, 1, false)]
    public void Prefill_with_scores_rising_along_the_keys_matches_reference(int pageSize, int kvHeads, int group, int firstPosition, int queries, int layer, bool lazyRescale)
    {
        var gpu = Gpu.Require();
        var kernels = lazyRescale ? Kernels(gpu, false) : EagerRescaleKernels.Value;
        if (lazyRescale && !kernels.PrefillLazyRescale) Assert.Skip("ACTORS_PREFILL_LAZY_RESCALE=0 turns the lazy rescale off");
        CheckPrefill(gpu, kernels, pageSize, kvHeads, group, 128, firstPosition, queries, layer, lazyRescale ? "lazy rescale" : "eager rescale", keyGrowth: 1f / 24);
    }

    private static void CheckPrefill(Gpu gpu, AttentionKernels kernels, int pageSize, int kvHeads, int group, int headDim, int firstPosition,
        int queries, int layer, string path, float keyGrowth)
    {
        var layout = new KvLayout(pageSize, Layers: 2, kvHeads, headDim);
        int heads = kvHeads * group, positions = firstPosition + queries;
        int needed = (positions + pageSize - 1) / pageSize, poolPages = needed + 3;
        float[] pool = Pool(layout, poolPages, pageSize * 31 + headDim);
        int[] order = Shuffled(poolPages, headDim), pageTable = order[..needed];
        // Slots no position reaches (the last page's tail, the spare pages) hold NaN: a kernel that lets one of them
        // into a row (0 x NaN in P V, say) fails here.
        for (int pos = positions; pos < needed * pageSize; pos++)
            for (int l = 0; l < layout.Layers; l++)
            {
                Array.Fill(pool, float.NaN, (int)layout.KeyOffset(pageTable[pos / pageSize], l, pos % pageSize), layout.TokenStride);
                Array.Fill(pool, float.NaN, (int)layout.ValueOffset(pageTable[pos / pageSize], l, pos % pageSize), layout.TokenStride);
            }
        foreach (int spare in order[needed..]) Array.Fill(pool, float.NaN, spare * layout.PageStride, layout.PageStride);
        if (keyGrowth != 0)
            for (int pos = 0; pos < positions; pos++)
            {
                var k = pool.AsSpan((int)layout.KeyOffset(pageTable[pos / pageSize], layer, pos % pageSize), layout.TokenStride);
                for (int i = 0; i < k.Length; i++) k[i] = Bf16.ToSingle(Bf16.FromSingle(k[i] * (1 + keyGrowth * pos)));
            }
        float[] q = Gpu.RandomBf16(queries * heads * headDim, 99 + queries, 2f);
        float scale = 1f / MathF.Sqrt(headDim);

        using var dPool = gpu.UploadBf16(pool);
        using var dTable = gpu.Upload<int>(pageTable);
        using var dQ = gpu.UploadBf16(q);
        using var dOut = gpu.Device.Allocate<ushort>(q.Length);
        using var stream = gpu.Device.CreateStream();
        kernels.Prefill(stream, dQ, queries, heads, firstPosition, dPool, layout, layer, dTable, scale, dOut);
        stream.Synchronize();

        var expected = new float[q.Length];
        PagedAttention.Reference(q, queries, heads, firstPosition, pool, layout, layer, pageTable, scale, expected);
        var actual = Gpu.DownloadBf16(dOut);
        double worst = 0;
        for (int i = 0; i < actual.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
        TestContext.Current.TestOutputHelper?.WriteLine($"prefill ({path}): worst absolute error {worst:E3}");
        // P is rounded to bf16 (2^-9 relative) before P V: off by up to ~2^-9 max |v| where a few keys carry the row, as
        // rising scores make them, so those rows get twice the usual absolute slack
        TestData.Close(expected, actual, 1e-2, keyGrowth == 0 ? 2e-3 : 4e-3, $"prefill ({path})");
    }

    [Fact]
    public void Wgmma_prefill_is_available_on_compute_capability_9_0()
    {
        var gpu = Gpu.Require();
        if (gpu.Device.ComputeMajor != 9 || gpu.Device.ComputeMinor != 0) Assert.Skip($"{gpu.Device.Name} is {gpu.Device.Architecture}: the wgmma/TMA prefill is built for sm_90a only");
        if (AttentionKernels.SimpleRequested || AttentionKernels.WgmmaDisabledByEnvironment) Assert.Skip("the fast kernels or the wgmma prefill are switched off by the environment");
        // an NVRTC or driver failure shows up here with its log instead of a silent fallback
        Assert.Null(gpu.Attention.WgmmaUnavailableReason);
        Assert.True(gpu.Attention.PrefillUsesWgmma(128, 32, 8, 16));
    }

    /// <summary>
    /// Which decode kernels a case runs: the simple ones, the vectorised register kernel, the launcher's default
    /// (paged_decode_tma where it applies, with balanced splits), or the TMA kernel with splits of one size.
    /// </summary>
    public enum DecodePath { Simple, Register, Default, FixedTmaSplits }

    public static TheoryData<int, int, int, int, int[], DecodePath> DecodeCases()
    {
        var cases = new TheoryData<int, int, int, int, int[]>
        {
        // pageSize, kvHeads, group, headDim, context lengths of the batch
        { 16, 2, 4, 64, [1, 300, 777] },        // one split, several splits, ragged batch
        { 16, 2, 2, 32, [1, 40, 3000] },        // head dim 32
        { 16, 8, 4, 128, [2049] },              // Llama-3-8B heads, many splits
        { 5, 3, 1, 33, [1, 2, 256, 257, 513] }, // odd page size and head dim, split boundaries
        { 16, 2, 7, 64, [40, 1000] },           // group 7
        { 1, 1, 2, 256, [300] },                // page size 1, the largest head dim
        // vectorised path: head dim 64 / 128, groups 1, 2, 4, 8
        { 16, 8, 4, 128, [1, 17, 300, 5000] },  // Llama-3-8B heads, ragged batch
        { 16, 2, 8, 128, [5000, 1, 300, 17] },  // GQA 8
        { 16, 4, 1, 128, [17, 5000, 1] },       // no grouping
        { 7, 2, 2, 64, [5000, 1, 64, 65] },     // odd page size, split boundaries
        // TMA path on compute capability 9.0 (head dim 128, pages of 16, 32 or 64): tile and page boundaries, long contexts
        { 64, 8, 4, 128, [8193] },              // Llama-3-8B heads past 8K
        { 64, 8, 4, 128, [1, 63, 64, 65, 127, 129] },
        { 32, 2, 2, 128, [4000, 33, 1, 2048] }, // pages of 32
        { 64, 1, 8, 128, [40000] },             // one KV head: a few long splits
        { 64, 8, 4, 128, [.. Enumerable.Range(0, 20).Select(i => 1 + 397 * i)] }, // 160 (sequence, KV head) pairs: past one per SM
        { 64, 4, 7, 128, [8200, 1, 300] },      // Qwen2-7B heads (group 7): TMA on sm_90, else the simple kernel
        { 16, 3, 5, 128, [1000, 65] },          // group 5
        { 64, 8, 4, 128, [300, 0, 5000] },      // an empty context: a zero row
        // fallbacks
        { 16, 2, 4, 80, [1, 17, 300, 5000] },   // head dim 80
        { 16, 2, 3, 128, [300, 17] },           // group 3 (the TMA kernel on sm_90)
        };
        var all = new TheoryData<int, int, int, int, int[], DecodePath>();
        foreach (var row in cases)
        {
            var (a, b, c, d, e) = row.Data;
            foreach (var path in (DecodePath[])[DecodePath.Simple, DecodePath.Register, DecodePath.Default]) all.Add(a, b, c, d, e, path);
        }
        return all;
    }

    [Theory]
    [MemberData(nameof(DecodeCases))]
    public void Decode_matches_reference_per_sequence(int pageSize, int kvHeads, int group, int headDim, int[] lengths, DecodePath path) =>
        DecodeCase(pageSize, kvHeads, group, headDim, lengths, path, lengths.Max() + 5, null);

    /// <summary>
    /// A decode graph's grid covers its context bucket while the register and simple kernels size their key splits for
    /// the context it was captured at (splitContext), and the TMA kernel cuts each sequence's keys evenly over the
    /// bucket's splits (or, FixedTmaSplits, takes splits sized for splitContext): one sequence past 8K in a 16K bucket, a
    /// batch in a 4x bucket, short contexts in a 32K bucket (splits of the 64-key minimum); every kernel.
    /// </summary>
    [Theory]
    [InlineData(new[] { 8193 }, 16384, DecodePath.Default)]
    [InlineData(new[] { 8193 }, 16384, DecodePath.Register)]
    [InlineData(new[] { 8193 }, 16384, DecodePath.FixedTmaSplits)]
    [InlineData(new[] { 300, 5000, 17 }, 20000, DecodePath.FixedTmaSplits)]
    [InlineData(new[] { 1, 64, 65, 129, 1000, 4100, 1025 }, 32768, DecodePath.Default)]
    [InlineData(new[] { 300, 5000, 17 }, 20000, DecodePath.Default)]
    [InlineData(new[] { 300, 5000, 17 }, 20000, DecodePath.Register)]
    [InlineData(new[] { 300, 5000, 17 }, 20000, DecodePath.Simple)]
    [InlineData(new[] { 300, 5000, 17, 8000, 1, 64, 65, 4000, 2, 3, 9000, 700, 800, 900, 1000, 1100, 1200 }, 20000, DecodePath.Default)]
    public void Decode_with_splits_sized_for_the_capture_context_matches_reference(int[] lengths, int maxContext, DecodePath path) =>
        DecodeCase(64, 8, 4, 128, lengths, path, maxContext, lengths.Max());

    /// <summary>
    /// The default decode on compute capability 9.0 takes paged_decode_tma for every batch its shape applies to, and
    /// TmaDecodeMaxPairs hands larger batches to the register kernel.
    /// </summary>
    [Fact]
    public void Tma_decode_serves_its_shapes_on_compute_capability_9_0()
    {
        var gpu = Gpu.Require();
        if (gpu.Device.ComputeMajor != 9 || gpu.Device.ComputeMinor != 0) Assert.Skip($"{gpu.Device.Name} is {gpu.Device.Architecture}: the TMA decode is built for sm_90a only");
        if (AttentionKernels.SimpleRequested || AttentionKernels.WgmmaDisabledByEnvironment) Assert.Skip("the fast kernels or the Hopper module are switched off by the environment");
        Assert.Null(gpu.Attention.WgmmaUnavailableReason);
        Assert.True(gpu.Attention.DecodeUsesTma(128, 4, 64, 1, 8));
        Assert.True(gpu.Attention.DecodeUsesTma(128, 4, 64, 64, 8));
        Assert.True(gpu.Attention.DecodeUsesTma(128, 8, 16, 3, 2));
        Assert.False(gpu.Attention.DecodeUsesTma(128, 4, 128, 1, 8)); // pages of 128: the register kernel
        Assert.False(gpu.Attention.DecodeUsesTma(64, 4, 64, 1, 8));
        Assert.True(gpu.Attention.DecodeUsesTma(128, 7, 64, 1, 4));  // Qwen2-7B heads
        Assert.False(gpu.Attention.DecodeUsesTma(128, 9, 64, 1, 8));
        Assert.False(RegisterDecodeKernels.Value.DecodeUsesTma(128, 4, 64, 1, 8));
        var limited = new AttentionKernels(gpu.Compiler) { TmaDecodeMaxPairs = 8 };
        Assert.True(limited.DecodeUsesTma(128, 4, 64, 1, 8));
        Assert.False(limited.DecodeUsesTma(128, 4, 64, 2, 8));
    }

    /// <summary>
    /// The decode's split merge, by a warp per (sequence, head) (paged_decode_reduce_c*: chunks of 32 / 32 / 16 / 8
    /// splits for head dims 32 / 64 / 128 / 256, merged online) and by paged_decode_reduce's block per head, against the
    /// reference: one chunk and several, an empty context, warps per block that leave the last block's warps idle.
    /// </summary>
    [Theory]
    [InlineData(16, 1, 1, 32, new[] { 9000, 3, 0 }, 0)]      // head dim 32: 36 splits of 256 keys, two chunks
    [InlineData(16, 2, 4, 64, new[] { 1, 777, 5000 }, 0)]     // head dim 64 (register kernel: 64-key splits, 79 of them)
    [InlineData(64, 8, 4, 128, new[] { 8193, 1, 300 }, 3)]   // Llama-3-8B heads, 3 warps per block (32 heads: 11 blocks)
    [InlineData(16, 1, 1, 128, new[] { 5000, 17 }, 1)]       // one KV head: 40 TMA splits of 128 keys (three chunks of 16)
    [InlineData(1, 1, 2, 256, new[] { 3000 }, 0)]            // head dim 256: 12 splits, chunks of 8
    public void Decode_split_merge_by_a_warp_or_a_block_matches_reference(int pageSize, int kvHeads, int group, int headDim, int[] lengths, int warps)
    {
        var gpu = Gpu.Require();
        if (AttentionKernels.SimpleRequested) Assert.Skip("ACTORS_ATTENTION_SIMPLE=1: the simple kernels merge with paged_decode_reduce only");
        var warp = new AttentionKernels(gpu.Compiler) { UseWarpSplitMerge = true, DecodeReduceWarps = warps };
        Assert.True(warp.DecodeUsesWarpReduce(headDim, 256));
        Assert.False(warp.DecodeUsesWarpReduce(headDim, 8)); // a workspace the vector loads cannot take
        Assert.False(BlockMergeKernels.Value.DecodeUsesWarpReduce(headDim, 256));
        int maxContext = lengths.Max() + 5;
        DecodeCase(pageSize, kvHeads, group, headDim, lengths, DecodePath.Default, maxContext, null, warp);
        DecodeCase(pageSize, kvHeads, group, headDim, lengths, DecodePath.Default, maxContext, null, BlockMergeKernels.Value);
    }

    private void DecodeCase(int pageSize, int kvHeads, int group, int headDim, int[] lengths, DecodePath path, int maxContext, int? splitContext,
        AttentionKernels? custom = null)
    {
        var gpu = Gpu.Require();
        bool simple = path == DecodePath.Simple;
        var kernels = custom ?? path switch
        {
            DecodePath.Simple => SimpleKernels.Value, DecodePath.Register => RegisterDecodeKernels.Value,
            DecodePath.FixedTmaSplits => FixedSplitTmaKernels.Value, _ => gpu.Attention,
        };
        if (!simple && !AttentionKernels.SimpleRequested)
            Assert.Equal(headDim is 64 or 128 && group is 1 or 2 or 4 or 8, kernels.DecodeUsesVector(headDim, group));
        if (path == DecodePath.Register) Assert.False(kernels.DecodeUsesTma(headDim, group, pageSize, lengths.Length, kvHeads));
        const int layer = 1;
        var layout = new KvLayout(pageSize, Layers: 2, kvHeads, headDim);
        int heads = kvHeads * group, seqs = lengths.Length;
        int tableStride = (maxContext + pageSize - 1) / pageSize;
        int totalPages = lengths.Sum(l => (l + pageSize - 1) / pageSize) + 2;
        float[] pool = Pool(layout, totalPages, 7 * headDim + seqs);
        int[] order = Shuffled(totalPages, 3);
        var tables = new int[seqs * tableStride]; // unused entries stay 0: never read
        int next = 0;
        for (int s = 0; s < seqs; s++)
            for (int i = 0; i < (lengths[s] + pageSize - 1) / pageSize; i++) tables[s * tableStride + i] = order[next++];
        float[] q = Gpu.RandomBf16(seqs * heads * headDim, 5, 2f);
        float scale = 1f / MathF.Sqrt(headDim);

        using var dPool = gpu.UploadBf16(pool);
        using var dTables = gpu.Upload<int>(tables);
        using var dLens = gpu.Upload<int>(lengths);
        using var dQ = gpu.UploadBf16(q);
        using var dOut = gpu.Device.Allocate<ushort>(q.Length);
        using var dWork = gpu.Device.Allocate<float>(splitContext is int sc
            ? AttentionKernels.DecodeWorkspaceLength(seqs, heads, kvHeads, headDim, maxContext, sc)
            : AttentionKernels.DecodeWorkspaceLength(seqs, heads, kvHeads, headDim, maxContext));
        using var stream = gpu.Device.CreateStream();
        kernels.Decode(stream, dQ, seqs, heads, dPool, layout, layer, dTables, tableStride, dLens, maxContext, scale, dWork, dOut, splitContext);
        stream.Synchronize();
        float[] got = Gpu.DownloadBf16(dOut);
        if (path == DecodePath.Default)
        {
            // again over a cleared output: the splits are merged in a fixed order, so the same bits
            dOut.Upload(new ushort[q.Length]);
            kernels.Decode(stream, dQ, seqs, heads, dPool, layout, layer, dTables, tableStride, dLens, maxContext, scale, dWork, dOut, splitContext);
            stream.Synchronize();
            Assert.Equal(got, Gpu.DownloadBf16(dOut));
        }

        int row = heads * headDim;
        for (int s = 0; s < seqs; s++)
        {
            var expected = new float[row]; // an empty context: a zero row
            if (lengths[s] > 0)
                PagedAttention.Reference(q.AsSpan(s * row, row), 1, heads, lengths[s] - 1, pool, layout, layer,
                    tables.AsSpan(s * tableStride, tableStride), scale, expected);
            TestData.Close(expected, got.AsSpan(s * row, row), 1e-2, 2e-3,
                $"decode ({path}{(kernels.DecodeUsesTma(headDim, group, pageSize, seqs, kvHeads) ? ", TMA" : "")}, " +
                $"{(kernels.DecodeUsesWarpReduce(headDim, dWork.Pointer) ? "warp" : "block")} merge) sequence {s} (length {lengths[s]})");
        }
    }

    /// <summary>
    /// Host only: the workspace sized for (seqs, maxContext) holds every split layout either decode kernel picks for at
    /// most that many sequences and that context (the Engine sizes it once and captures graphs with fewer sequences).
    /// </summary>
    [Fact]
    public void Decode_workspace_covers_every_split_choice()
    {
        int[] contexts = [1, 17, 63, 64, 65, 300, 1000, 5000, 8192, 32768, 100_000];
        foreach (int kvHeads in (int[])[1, 2, 8])
            foreach (int group in (int[])[1, 4, 8])
                foreach (int seqs in (int[])[1, 2, 3, 7, 32, 100])
                    foreach (int ctx in contexts)
                    {
                        const int d = 128;
                        int heads = kvHeads * group;
                        long size = AttentionKernels.DecodeWorkspaceLength(seqs, heads, kvHeads, d, ctx);
                        for (int s2 = 1; s2 <= seqs; s2++)
                            foreach (int ctx2 in contexts.Where(c => c <= ctx))
                            {
                                int vs = AttentionKernels.VectorDecodeSplitSize(s2, kvHeads, ctx2);
                                Assert.True(vs is 64 or 128 or 256 or 512, $"split {vs}");
                                // the TMA decode's splits are never smaller, so never more of them
                                foreach (int sms in (int[])[1, 16, 132])
                                {
                                    int ts = AttentionKernels.TmaDecodeSplitSize(s2, kvHeads, ctx2, sms);
                                    Assert.True(ts >= vs && ts % 64 == 0, $"TMA split {ts} against register split {vs} for {s2} x {ctx2}, {sms} SMs");
                                }
                                long vector = (long)s2 * heads * ((ctx2 + vs - 1) / vs) * (d + 2);
                                int ss = AttentionKernels.DecodeSplitSize(group, d);
                                long simple = (long)s2 * heads * ((ctx2 + ss - 1) / ss) * (d + 2);
                                Assert.True(vector <= size && simple <= size,
                                    $"workspace {size} for {seqs} seqs x {ctx} is too small for {s2} x {ctx2}: vector {vector}, simple {simple}");
                            }
                    }
        // one long sequence still fills the GPU: at least 512 blocks of 8 KV heads
        Assert.Equal(128, AttentionKernels.VectorDecodeSplitSize(1, 8, 8192));
        Assert.Equal(512, AttentionKernels.VectorDecodeSplitSize(1, 8, 32768));
        Assert.Equal(512, AttentionKernels.VectorDecodeSplitSize(32, 8, 8192));
        // the TMA decode gives one sequence about a block per SM of an H100 / H200: 16 splits per KV head
        Assert.Equal(512, AttentionKernels.TmaDecodeSplitSize(1, 8, 8192, 132));
        Assert.Equal(2048, AttentionKernels.TmaDecodeSplitSize(1, 8, 32768, 132));
        Assert.Equal(2048, AttentionKernels.TmaDecodeSplitSize(4, 8, 8192, 132));
        // 32 sequences (256 pairs): about 4 blocks per SM, 2 splits of 4096 keys each
        Assert.Equal(4096, AttentionKernels.TmaDecodeSplitSize(32, 8, 8192, 132));
        // 9 sequences (72 pairs): one wave would fill 72 of 132 SMs; about 4 blocks per SM instead (7 splits)
        Assert.Equal(1216, AttentionKernels.TmaDecodeSplitSize(9, 8, 8192, 132));
        // one sequence of 4 KV heads (Qwen2-7B): 33 splits fill the 132 SMs
        Assert.Equal(256, AttentionKernels.TmaDecodeSplitSize(1, 4, 8192, 132));
    }

    /// <summary>
    /// Host only: balanced TMA splits (the grid sized for the bucket, each sequence's keys cut evenly over it) are whole
    /// 64-key tiles, never longer than the grid's split size, and never more than the grid holds, at any context up to
    /// the bucket; a graph of the 16K bucket runs one sequence at 8K as 16 splits of 512 keys (one wave of 128 blocks,
    /// where splits sized at a capture at 4,100 tokens gave 26 of 320).
    /// </summary>
    [Fact]
    public void Balanced_tma_splits_fit_the_grid_at_every_context()
    {
        var rng = new Random(5);
        foreach (int sms in (int[])[1, 16, 132])
            foreach (int kvHeads in (int[])[1, 4, 8])
                foreach (int seqs in (int[])[1, 2, 9, 32])
                    foreach (int bucket in (int[])[64, 1000, 8192, 16384, 33280, 131072])
                    {
                        int size = AttentionKernels.TmaDecodeSplitSize(seqs, kvHeads, bucket, sms);
                        int maxSplits = (bucket + size - 1) / size;
                        foreach (int ctx in Enumerable.Range(0, 40).Select(_ => rng.Next(1, bucket + 1)).Concat([1, 63, 64, 65, bucket]).Where(c => c <= bucket))
                        {
                            int eff = AttentionKernels.BalancedSplitSize(ctx, size, maxSplits);
                            Assert.True(eff % 64 == 0 && eff <= size && (ctx + eff - 1) / eff <= maxSplits,
                                $"balanced split {eff} for {ctx} keys, grid split {size} x {maxSplits} ({seqs} x {kvHeads}, bucket {bucket}, {sms} SMs)");
                        }
                    }
        int s16 = AttentionKernels.TmaDecodeSplitSize(1, 8, 16384, 132);
        Assert.Equal(1024, s16);
        Assert.Equal(512, AttentionKernels.BalancedSplitSize(8192, s16, 16));
        Assert.Equal(320, AttentionKernels.BalancedSplitSize(4100, s16, 16));
        Assert.Equal(576, AttentionKernels.BalancedSplitSize(8193, s16, 16));
        Assert.Equal(64, AttentionKernels.BalancedSplitSize(1, s16, 16));
    }

    /// <summary>
    /// paged_decode_tma launched programmatically right after the kernel that writes the step's key and value (as the
    /// engine's qkv kernel does) loads its other key tiles before it waits for that kernel, but must see the new key and
    /// value: the pool holds stale ones at the last position (a key that would take all the weight) until the KV write.
    /// Lengths put the last position at a tile's start, inside one, and in the last of 16 splits.
    /// </summary>
    [Theory]
    [InlineData(8192 + 37)]
    [InlineData(64 * 5 + 1)]
    [InlineData(700)]
    public void Tma_decode_right_after_the_kv_write_sees_the_new_key(int length)
    {
        var gpu = Gpu.Require();
        if (gpu.Device.ComputeMajor != 9 || gpu.Device.ComputeMinor != 0) Assert.Skip($"{gpu.Device.Name} is {gpu.Device.Architecture}: the TMA decode is built for sm_90a only");
        if (AttentionKernels.SimpleRequested || AttentionKernels.WgmmaDisabledByEnvironment) Assert.Skip("the fast kernels or the Hopper module are switched off by the environment");
        const int pageSize = 64, kvHeads = 8, group = 4, headDim = 128, layer = 1, heads = kvHeads * group;
        var layout = new KvLayout(pageSize, Layers: 2, kvHeads, headDim);
        var kernels = EarlyLoadKernels.Value;
        Assert.True(kernels.DecodeUsesTma(headDim, group, pageSize, 1, kvHeads));
        int pages = (length + pageSize - 1) / pageSize, last = length - 1, ts = layout.TokenStride;
        float[] pool = Pool(layout, pages + 1, 60);
        int[] table = Shuffled(pages + 1, 61)[..pages];
        long kAt = layout.KeyOffset(table[last / pageSize], layer, last % pageSize), vAt = layout.ValueOffset(table[last / pageSize], layer, last % pageSize);
        float[] row = new float[2 * ts]; // the new key, then the new value
        Array.Copy(pool, kAt, row, 0, ts);
        Array.Copy(pool, vAt, row, ts, ts);
        float[] stale = (float[])pool.Clone();
        Array.Fill(stale, 4f, (int)kAt, ts);
        Array.Fill(stale, 16f, (int)vAt, ts);
        float[] q = Gpu.RandomBf16(heads * headDim, 62, 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        var expected = new float[heads * headDim];
        PagedAttention.Reference(q, 1, heads, last, pool, layout, layer, table, scale, expected);
        var staleOut = new float[heads * headDim];
        PagedAttention.Reference(q, 1, heads, last, stale, layout, layer, table, scale, staleOut);
        Assert.True(expected.Zip(staleOut, (a, b) => MathF.Abs(a - b)).Max() > 1f, "the stale key and value must change the output");

        using var dTable = gpu.Upload<int>(table);
        using var dLens = gpu.Upload<int>([length]);
        using var dQ = gpu.UploadBf16(q);
        using var dRow = gpu.UploadBf16(row);
        using var dOut = gpu.Device.Allocate<ushort>(q.Length);
        using var dWork = gpu.Device.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(1, heads, kvHeads, headDim, length));
        using var stream = gpu.Device.CreateStream();
        stream.ProgrammaticLaunch = true;
        for (int round = 0; round < 4; round++)
        {
            using var dPool = gpu.UploadBf16(stale);
            kernels.KvWrite(stream, dRow, ts, dRow.Span.Slice(ts), ts, 1, dPool, layout, layer, dTable, last);
            kernels.Decode(stream, dQ, 1, heads, dPool, layout, layer, dTable, pages, dLens, length, scale, dWork, dOut);
            stream.Synchronize();
            TestData.Close(expected, Gpu.DownloadBf16(dOut), 1e-2, 2e-3, $"decode right after the KV write, length {length}, round {round}");
        }
    }

    [Fact]
    public void Kv_write_places_tokens_in_their_pages_and_slots()
    {
        var gpu = Gpu.Require();
        var layout = new KvLayout(PageSize: 5, Layers: 3, KvHeads: 2, HeadDim: 12);
        const int layer = 2, first = 3, tokens = 9, poolPages = 6, fused = 4 * 2 * 12; // k and v inside wider rows
        int[] pageTable = [4, 1, 5];
        float[] pool = Pool(layout, poolPages, 50);
        float[] rows = Gpu.RandomBf16(tokens * fused, 51);
        using var dPool = gpu.UploadBf16(pool);
        using var dRows = gpu.UploadBf16(rows);
        using var dTable = gpu.Upload<int>(pageTable);
        using var stream = gpu.Device.CreateStream();
        int ts = layout.TokenStride;
        gpu.Attention.KvWrite(stream, dRows.Span.Slice(ts), fused, dRows.Span.Slice(3 * ts), fused, tokens, dPool, layout, layer, dTable, first);
        stream.Synchronize();

        var expected = (float[])pool.Clone();
        for (int t = 0; t < tokens; t++)
        {
            int pos = first + t;
            long k = layout.KeyOffset(pageTable[pos / 5], layer, pos % 5), v = layout.ValueOffset(pageTable[pos / 5], layer, pos % 5);
            Array.Copy(rows, t * fused + ts, expected, k, ts);
            Array.Copy(rows, t * fused + 3 * ts, expected, v, ts);
        }
        Assert.Equal(expected, Gpu.DownloadBf16(dPool)); // exact: a copy, and everything else untouched
    }

    [Fact]
    public void Decode_rejects_a_workspace_too_small_for_max_context()
    {
        var gpu = Gpu.Require();
        var layout = new KvLayout(16, 1, 1, 64);
        using var pool = gpu.Device.Allocate<ushort>(layout.PageStride * 4);
        using var q = gpu.Device.Allocate<ushort>(64);
        using var table = gpu.Device.Allocate<int>(4);
        using var lens = gpu.Device.Allocate<int>(1);
        using var work = gpu.Device.Allocate<float>(10);
        using var stream = gpu.Device.CreateStream();
        var e = Assert.Throws<ArgumentException>(() =>
            gpu.Attention.Decode(stream, q, 1, 1, pool, layout, 0, table, 4, lens, 64, 0.125f, work, q));
        Assert.Contains("workspace", e.Message);
    }
}
