using System.Runtime.InteropServices;
using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of attention.cu over the paged KV pool (layout <see cref="KvLayout"/>, in bf16 elements): KV write,
/// split-K paged decode (batched over sequences of different lengths) and causal prefill with a cached prefix.
/// Page ids and context lengths live on the device and are not checked here: the Engine's page allocator owns them.
/// Fast paths (attention_fast.cu, compiled with attention.cu into a second module): FlashAttention-2 prefill on tensor
/// cores for head dim 128 (128 query rows per block, by default shared by the query heads of one KV head, see
/// <see cref="UseGqaPrefill"/>; or 64, see <see cref="FlashPrefillRows"/>), and a vectorised
/// split-K decode for head dims 64 / 128 with 1, 2, 4 or 8 query heads per KV
/// head; every other shape runs the simple kernels of attention.cu. ACTORS_ATTENTION_SIMPLE=1 (or
/// <see cref="UseSimpleKernels"/>) forces the simple kernels and skips compiling the fast module.
/// On compute capability 9.0 (H100, H200) a third module (attention_hopper.cu, compiled for sm_90a) adds the
/// warp-specialised wgmma/TMA prefill, the default there where it applies (see <see cref="PrefillUsesWgmma"/>), and the
/// TMA-fed decode (see <see cref="DecodeUsesTma"/>).
/// </summary>
public sealed class AttentionKernels
{
    /// <summary>Largest head dimension the kernels hold in registers (8 channels per lane).</summary>
    public const int MaxHeadDim = 256;
    private const int SharedBudget = 48 * 1024;
    private const int PrefillWarps = 4;
    /// <summary>Shared memory of the 64-row FlashAttention-2 prefill (paged_prefill_fa): K and V tiles of 64 keys × 136 (padded) bf16.</summary>
    private const int FlashShared64 = 2 * 64 * 136 * 2;
    /// <summary>Shared memory of the 128-row prefills (paged_prefill_fa128 and paged_prefill_fa128g): 3 stages of K and V tiles of 64 keys × 136 bf16.</summary>
    private const int FlashShared128 = 3 * 2 * 64 * 136 * 2;
    /// <summary>Blocks the vectorised decode aims for (about 4 per SM of a 132-SM H100/H200; 1024 was slower on an H100: one sequence at 8K 29 % of the bandwidth instead of 40 %), see <see cref="VectorDecodeSplitSize"/>.</summary>
    private const int DecodeTargetBlocks = 512;
    /// <summary>
    /// Block of paged_decode_reduce: the splits of a head are spread over blockDim / headDim threads per channel, each
    /// taking at most 8 (one round of loads); 128 to 1024 threads. ACTORS_DECODE_REDUCE_THREADS fixes it (experiments).
    /// </summary>
    private static uint ReduceThreads(int maxSplits, int headDim)
    {
        if (FixedReduceThreads is uint fixedThreads) return fixedThreads;
        long want = (long)headDim * ((maxSplits + 7) / 8);
        return (uint)Math.Clamp((want + 31) / 32 * 32, 128, 1024);
    }
    // read once, not at every decode launch
    private static readonly uint? FixedReduceThreads =
        uint.TryParse(Environment.GetEnvironmentVariable("ACTORS_DECODE_REDUCE_THREADS"), out uint t) ? t : null;
    private const int VectorDecodeMinSplit = 64, VectorDecodeMaxSplit = 512;
    private readonly CudaFunction _kvWrite, _decodeSplit, _decodeReduce, _prefill;
    /// <summary>paged_decode_reduce_c{1,2,4,8} by channels per lane (head dim / 32).</summary>
    private readonly Dictionary<int, CudaFunction> _decodeReduceWarp = [];
    private readonly CudaFunction? _prefillFlash, _prefillFlash128, _prefillFlashGqa, _prefillSplit, _prefillSplitReduce, _prefillSplitReduceWarp;
    private readonly CudaFunction? _prefillWgmma, _decodeTma;
    /// <summary>Hopper modules that failed to build in this process (device and cache key -> reason), so each is tried once.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> HopperFailures = new();
    private readonly CudaDevice? _device;
    private readonly Dictionary<(ulong Pool, long Pages, KvLayout Layout), TensorMap> _tensorMaps = [];
    private DeviceBuffer<float>? _splitWorkspace; // split-KV prefill partials, allocated at first use (or PrepareSplitWorkspace), never resized

    /// <summary>
    /// Allocates the split-KV prefill workspace now (<see cref="PrefillSplitWorkspaceFloats"/>, 32 MiB) instead of inside
    /// the first short prefill over a long cached prefix (a new turn on a session): the engine calls it before sizing its
    /// KV pool from the free memory.
    /// </summary>
    public void PrepareSplitWorkspace()
    {
        if (_device is null) return;
        _splitWorkspace ??= _device.Allocate<float>(PrefillSplitWorkspaceFloats);
    }

    /// <summary>Floats of the split-KV prefill workspace (32 MiB): (queries, heads, splits) x (128 + 2) must fit.</summary>
    public const long PrefillSplitWorkspaceFloats = 8L << 20;

    /// <summary>Split-KV prefill for few query rows over long contexts (default on; tests compare both paths).</summary>
    public bool UseSplitPrefill { get; set; } = Environment.GetEnvironmentVariable("ACTORS_SPLIT_PREFILL") != "0";

    /// <summary>
    /// Key splits for a GQA prefill of <paramref name="blocks"/> blocks over <paramref name="tiles"/> key tiles (64 keys for the mma.sync kernels, 128 for the wgmma one): 1
    /// (no split) when the blocks fill the device already; else enough splits for two blocks per multiprocessor, each at
    /// least 4 tiles, within the workspace.
    /// </summary>
    public static int PrefillSplits(int blocks, int tiles, int queries, int heads, int multiprocessors)
    {
        if (blocks >= multiprocessors || tiles < 8) return 1;
        int splits = Math.Min((2 * multiprocessors + blocks - 1) / blocks, tiles / 4);
        long perSplit = (long)queries * heads * (128 + 2);
        splits = (int)Math.Min(splits, PrefillSplitWorkspaceFloats / perSplit);
        return Math.Max(1, splits);
    }
    private readonly int _maxSharedOptin;
    private int _flashRows;
    private readonly Dictionary<(int HeadDim, int Group), CudaFunction>? _decodeVector;

    /// <summary>
    /// Default of <see cref="UseGqaPrefill"/>: whether the 128-row prefill takes the GQA-shared kernel
    /// (paged_prefill_fa128g) where it applies. THE ONE-LINE FALLBACK SWITCH: set false to make paged_prefill_fa128 the
    /// default again (ACTORS_ATTENTION_FA128=1 does the same per process).
    /// </summary>
    public const bool GqaPrefillByDefault = true;

    /// <summary>Shared memory of paged_prefill_wgmma (WGP_SHARED): Q and 3 stages of K and V tiles of 128 x 128 bf16, 6 mbarriers, 1 KiB alignment slack.</summary>
    public const int WgmmaShared = 32768 + 3 * 65536 + 48 + 1024;
    private const int WgmmaThreads = 384;
    /// <summary>
    /// Stages of paged_decode_tma's K / V pipeline (TD_STAGES): 4, or 2 to 6 from ACTORS_TMA_DECODE_STAGES (to compare
    /// how many bytes each SM keeps in flight).
    /// </summary>
    public static int TmaDecodeStages => Stages.Value;

    private static readonly Lazy<int> Stages = new(() => ParseStages(Environment.GetEnvironmentVariable("ACTORS_TMA_DECODE_STAGES")));

    /// <summary>The stage count ACTORS_TMA_DECODE_STAGES asks for: 4 when unset; an error naming the variable when it is not 2 to 6.</summary>
    public static int ParseStages(string? value) =>
        value is null or "" ? 4
        : int.TryParse(value, out int n) && n is >= 2 and <= 6 ? n
        : throw new ArgumentException($"ACTORS_TMA_DECODE_STAGES must be an integer from 2 to 6, not '{value}'");

    /// <summary>Shared memory of paged_decode_tma (TD_SHARED): <see cref="TmaDecodeStages"/> stages of K and V tiles of 64 x 128 bf16, the 4 consumer warps' states for up to 8 heads, 2 mbarriers a stage, 1 KiB alignment slack.</summary>
    public static int TmaDecodeShared => TmaDecodeStages * 32768 + 4 * 8 * 130 * 4 + 2 * TmaDecodeStages * 8 + 1024;
    private const int TmaDecodeThreads = 160;

    /// <summary>Whether ACTORS_ATTENTION_WGMMA=0 asks to keep the Hopper module out: the wgmma prefill and the TMA decode (the mma.sync prefill and the register decode then serve).</summary>
    public static bool WgmmaDisabledByEnvironment => Environment.GetEnvironmentVariable("ACTORS_ATTENTION_WGMMA") == "0";

    /// <summary>Why the wgmma/TMA prefill is not available on this device (null when it is).</summary>
    public string? WgmmaUnavailableReason { get; }

    /// <summary>
    /// Whether the prefill takes paged_prefill_wgmma where it applies (default true where the module compiled;
    /// settable to compare with or fall back to the mma.sync kernels).
    /// </summary>
    public bool UseWgmmaPrefill
    {
        get => field && _prefillWgmma is not null;
        set;
    }

    /// <summary>
    /// Whether decode takes paged_decode_tma (attention_hopper.cu) where it applies (default true where the module
    /// compiled; settable to compare with or fall back to the vectorised register kernel).
    /// </summary>
    public bool UseTmaDecode
    {
        get => field && _decodeTma is not null;
        set;
    }

    /// <summary>
    /// Whether <see cref="Decode"/> takes paged_decode_tma for this shape: on compute capability 9.0, head dim 128, 1 to 8
    /// query heads per KV head (the rows of its 16-row products: 7 for the Qwen2-7B shape, which the register kernel
    /// does not take), pages of 16, 32 or 64 tokens, and at most <see cref="TmaDecodeMaxPairs"/> (sequence, KV head) pairs.
    /// </summary>
    public bool DecodeUsesTma(int headDim, int group, int pageSize, int seqs, int kvHeads) =>
        !UseSimpleKernels && UseTmaDecode && headDim == 128 && group is >= 1 and <= 8 && pageSize is 16 or 32 or 64
        && seqs > 0 && kvHeads > 0 && (long)seqs * kvHeads <= TmaDecodeMaxPairs;

    /// <summary>
    /// (sequence, KV head) pairs up to which decode takes paged_decode_tma: every batch by default (an H200 measured 32
    /// sequences at 8K at 4.0 TB/s with it against 2.6 with the register kernel); settable to keep the register kernel
    /// for larger batches.
    /// </summary>
    public long TmaDecodeMaxPairs { get; set; } = long.MaxValue;

    /// <summary>
    /// Whether paged_decode_tma cuts each sequence's keys into the grid's splits evenly (default true): its grid is sized
    /// from maxContext (a CUDA graph's context bucket) by <see cref="TmaDecodeSplitSize"/>, and each sequence takes about
    /// context / splits keys per split (<see cref="BalancedSplitSize"/>), so a graph runs one wave of splits at any
    /// context in its bucket. False: splits of the size chosen for splitContext (a graph captured early in its bucket
    /// then runs two waves once its sequence grew); kept for comparison.
    /// </summary>
    public bool BalanceTmaSplits { get; set; } = true;

    /// <summary>
    /// Whether paged_decode_tma, launched programmatically, loads its key tiles before it waits for the previous kernel
    /// (default true; ACTORS_TMA_EARLY=0 turns it off): only the tile holding a sequence's last position has keys that
    /// kernel writes (this step's K and V), so the other tiles stream while it drains. The consumers still wait before
    /// they read q. Requires that nothing in the step before the previous kernel writes the pool, the page tables or
    /// the context lengths except through stream-ordered work that ended before the step's first kernel began.
    /// </summary>
    public bool EarlyTmaDecodeLoads { get; set; } = Environment.GetEnvironmentVariable("ACTORS_TMA_EARLY") != "0";

    /// <summary>
    /// Whether split-K partial states are merged by a warp per (row, head) (default true; ACTORS_SPLIT_MERGE=block turns
    /// it off): the decode's splits by paged_decode_reduce_c*, a split-KV prefill's by prefill_split_reduce_warp. One
    /// round trip to L2 per 16 splits of head dim 128, no block barrier. The decode's takes head dims 32, 64, 128 and 256
    /// over a 16-byte-aligned workspace; other shapes, and the simple kernels, keep paged_decode_reduce (a block per
    /// head, its splits spread over the block), as prefill_split_reduce serves when this is off.
    /// </summary>
    public bool UseWarpSplitMerge { get; set; } = Environment.GetEnvironmentVariable("ACTORS_SPLIT_MERGE") != "block";

    /// <summary>
    /// Warps per block of the warp-per-head merge (1 to 32); 0, the default: one per block while a batch has at most
    /// 512 (sequence, head) rows (one sequence of 32 heads spreads over 32 SMs), else 4.
    /// </summary>
    public int DecodeReduceWarps
    {
        get;
        set => field = value is >= 0 and <= 32 ? value : throw new ArgumentOutOfRangeException(nameof(DecodeReduceWarps), value, "must be 0 (automatic) to 32");
    }

    /// <summary>Whether <see cref="Decode"/> merges a call's splits with paged_decode_reduce_c* (see <see cref="UseWarpSplitMerge"/>).</summary>
    public bool DecodeUsesWarpReduce(int headDim, ulong workspacePointer) =>
        !UseSimpleKernels && UseWarpSplitMerge && headDim is 32 or 64 or 128 or 256 && workspacePointer % 16 == 0;

    /// <summary>
    /// Keys per split of a sequence of <paramref name="context"/> keys when the splits are balanced: the context cut into
    /// <paramref name="maxSplits"/> equal parts, rounded up to the TMA decode's 64-key tiles, at most
    /// <paramref name="splitSize"/> (the kernel's decode_split_size computes the same).
    /// </summary>
    public static int BalancedSplitSize(int context, int splitSize, int maxSplits)
    {
        int even = (int)(((long)context + maxSplits - 1) / maxSplits);
        return Math.Min(splitSize, Math.Max(64, (even + 63) / 64 * 64));
    }

    /// <summary>
    /// Keys per split of paged_decode_tma: about one block per multiprocessor over the (sequence, KV head) pairs where
    /// that fills the device (about four per multiprocessor otherwise), a multiple of its 64-key tiles, and never smaller than <see cref="VectorDecodeSplitSize"/>'s choice, so its splits
    /// fit any workspace sized by <see cref="DecodeWorkspaceLength(int, int, int, int, int, int)"/>.
    /// </summary>
    public static int TmaDecodeSplitSize(int seqs, int kvHeads, int context, int multiprocessors)
    {
        long pairs = Math.Max(1L, (long)seqs * kvHeads);
        // A block holds its SM's shared memory. One wave of long blocks (the ramp paid once) when it fills at least 90 % of
        // the SMs (one sequence of 8 or 4 KV heads: 128 or 132 blocks); otherwise about 4 waves, so a batch of, say, 72
        // pairs does not leave 60 SMs idle (32 sequences of 8 KV heads: 2 splits each, measured at 4.0 TB/s).
        long oneWave = multiprocessors / pairs;
        int splits = (int)Math.Max(1L, oneWave >= 1 && 10 * pairs * oneWave >= 9L * multiprocessors ? oneWave : (4L * multiprocessors + pairs / 2) / pairs);
        int size = ((Math.Max(1, context) + splits - 1) / splits + 63) / 64 * 64;
        return Math.Max(size, VectorDecodeSplitSize(seqs, kvHeads, context));
    }

    /// <summary>
    /// Whether <see cref="Prefill"/> takes the warp-specialised wgmma/TMA kernel (attention_hopper.cu) for this shape:
    /// on compute capability 9.0, head dim 128, 1, 2, 4 or 8 query heads per KV head, and a page size the 128-key tiles
    /// split into whole TMA boxes (16, 32, 64 or 128). Other shapes take the mma.sync kernels.
    /// </summary>
    public bool PrefillUsesWgmma(int headDim, int heads, int kvHeads, int pageSize) =>
        !UseSimpleKernels && UseWgmmaPrefill && headDim == 128 && kvHeads > 0 && heads % kvHeads == 0
        && (heads / kvHeads) is 1 or 2 or 4 or 8 && pageSize is 16 or 32 or 64 or 128;

    /// <summary>Whether ACTORS_ATTENTION_FA128=1 asks for the one-head 128-row prefill (paged_prefill_fa128) instead of the GQA-shared one.</summary>
    public static bool Flash128Requested => Environment.GetEnvironmentVariable("ACTORS_ATTENTION_FA128") == "1";

    /// <summary>Whether ACTORS_ATTENTION_FA64=1 asks for the 64-row FlashAttention-2 prefill (see <see cref="FlashPrefillRows"/>).</summary>
    public static bool Flash64Requested => Environment.GetEnvironmentVariable("ACTORS_ATTENTION_FA64") == "1";

    /// <summary>Whether ACTORS_ATTENTION_SIMPLE=1 asks for the simple kernels only.</summary>
    public static bool SimpleRequested => Environment.GetEnvironmentVariable("ACTORS_ATTENTION_SIMPLE") == "1";

    /// <summary>Whether ACTORS_PREFILL_LAZY_RESCALE=0 asks the wgmma prefill to rescale at every new running max.</summary>
    public static bool LazyRescaleDisabledByEnvironment => Environment.GetEnvironmentVariable("ACTORS_PREFILL_LAZY_RESCALE") == "0";

    /// <summary>
    /// Whether the wgmma prefill keeps a warp's running max until a score exceeds it by more than 2^8 in weight units
    /// (WGP_LAZY_RESCALE, FlashAttention-4's conditional rescale): most tiles skip O's rescale. The price: a row's
    /// largest weight is then up to 256 and rounded to bf16 like the rest (2^-9 relative), where an eager rescale
    /// gives it exactly 1.
    /// </summary>
    public bool PrefillLazyRescale { get; }

    /// <param name="compiler">NVRTC compiler of the device.</param>
    /// <param name="simpleOnly">Compile and use only the simple kernels; null: <see cref="SimpleRequested"/>.</param>
    /// <param name="prefillLazyRescale"><see cref="PrefillLazyRescale"/>; null: on unless <see cref="LazyRescaleDisabledByEnvironment"/>.</param>
    public AttentionKernels(KernelCompiler compiler, bool? simpleOnly = null, bool? prefillLazyRescale = null)
    {
        PrefillLazyRescale = prefillLazyRescale ?? !LazyRescaleDisabledByEnvironment;
        string source = KernelSource.Load("attention.cu");
        var module = compiler.Load(source, "attention.cu");
        _kvWrite = module.Function("kv_write");
        _decodeSplit = module.Function("paged_decode_split");
        _decodeReduce = module.Function("paged_decode_reduce");
        _kvWrite.Programmatic = _decodeSplit.Programmatic = _decodeReduce.Programmatic = true; // PDL_ENTER in each
        foreach (int c in (int[])[1, 2, 4, 8])
        {
            var f = module.Function($"paged_decode_reduce_c{c}");
            f.Programmatic = true; // PDL_ENTER
            _decodeReduceWarp[c] = f;
        }
        _prefill = module.Function("paged_prefill");
        _maxSharedOptin = compiler.Device.MaxSharedMemoryPerBlockOptin;
        if (simpleOnly ?? SimpleRequested)
        {
            UseSimpleKernels = true;
            return;
        }
        // attention.cu first: the fast kernels share its params structs (and its layout static_asserts)
        string fastSource = $"{source}\n#line 1 \"attention_fast.cu\"\n{ReadSource("attention_fast.cu")}";
        var fast = compiler.Load(fastSource, "attention_fast.cu");
        _prefillFlash = fast.Function("paged_prefill_fa");
        _prefillFlash128 = fast.Function("paged_prefill_fa128");
        _prefillFlashGqa = fast.Function("paged_prefill_fa128g");
        _prefillSplit = fast.Function("paged_prefill_fa128g_split");
        _prefillSplitReduce = fast.Function("prefill_split_reduce");
        _prefillSplitReduceWarp = fast.Function("prefill_split_reduce_warp");
        _device = compiler.Device;
        if (WgmmaDisabledByEnvironment)
            WgmmaUnavailableReason = "ACTORS_ATTENTION_WGMMA=0";
        else if (_device.ComputeMajor != 9 || _device.ComputeMinor != 0)
            WgmmaUnavailableReason = $"the wgmma/TMA prefill is built for sm_90a; {_device.Name} is {_device.Architecture}";
        else if (_maxSharedOptin < WgmmaShared)
            WgmmaUnavailableReason = $"the wgmma/TMA prefill needs {WgmmaShared} bytes of shared memory per block; {_device.Name} allows {_maxSharedOptin}";
        else
        {
            // attention.cu and attention_fast.cu first: the Hopper kernel shares their params structs and PTX helpers; hopper.cuh
            // holds the sm_90a helpers it shares with gemm_hopper.cu.
            // A compiler or driver that cannot build it costs speed, not the engine: the mma.sync kernels serve, and the
            // reason (with the NVRTC log) stays in WgmmaUnavailableReason (a GPU test asserts it is null on sm_90).
            string stages = TmaDecodeStages == 4 ? "" : $"#define TD_STAGES {TmaDecodeStages}\n";
            if (!PrefillLazyRescale) stages += "#define WGP_LAZY_RESCALE 0\n";
            string hopperSource = $"{stages}{fastSource}\n#line 1 \"hopper.cuh\"\n{ReadSource("hopper.cuh")}\n#line 1 \"attention_hopper.cu\"\n{ReadSource("attention_hopper.cu")}";
            string key = $"{_device.Ordinal}:{compiler.CacheKey(hopperSource, [], "sm_90a")}";
            if (HopperFailures.TryGetValue(key, out var failure))
                WgmmaUnavailableReason = failure; // tried once in this process: no second compilation
            else
                try
                {
                    var hopper = compiler.Load(hopperSource, "attention_hopper.cu", architecture: "sm_90a");
                    _prefillWgmma = hopper.Function("paged_prefill_wgmma");
                    _decodeTma = hopper.Function("paged_decode_tma");
                    _decodeTma.Programmatic = true; // PDL_ENTER
                    UseWgmmaPrefill = UseTmaDecode = true;
                }
                catch (Exception e) when (e is NvrtcException or CudaException)
                {
                    WgmmaUnavailableReason = HopperFailures[key] = $"attention_hopper.cu for sm_90a: {e.Message}";
                }
        }
        UseGqaPrefill = GqaPrefillByDefault && !Flash128Requested;
        _flashRows = _maxSharedOptin >= FlashShared128 && !Flash64Requested ? 128 : 64;
        _decodeVector = [];
        foreach (int d in (int[])[64, 128])
            foreach (int g in (int[])[1, 2, 4, 8])
            {
                var f = fast.Function($"paged_decode_split_d{d}_g{g}");
                f.Programmatic = true; // PDL_ENTER
                _decodeVector[(d, g)] = f;
            }
    }

    /// <summary>
    /// Run the simple kernels even where a fast one applies (to compare them, or to bypass a broken fast path).
    /// Always true when the fast module was not compiled.
    /// </summary>
    public bool UseSimpleKernels
    {
        get => field || _prefillFlash is null;
        set;
    }

    /// <summary>
    /// Query rows per block of the FlashAttention-2 prefill: 128 (paged_prefill_fa128: 8 warps, 3-stage K/V pipeline,
    /// 102 KiB of shared memory; the default where the device allows that much per block) or 64 (paged_prefill_fa:
    /// 4 warps, 34 KiB; also with ACTORS_ATTENTION_FA64=1). Settable to compare or bypass the 128-row kernel; 0 when the
    /// fast module was not compiled.
    /// </summary>
    public int FlashPrefillRows
    {
        get => _prefillFlash is null ? 0 : _flashRows;
        set
        {
            if (_prefillFlash is null) throw new InvalidOperationException("the fast attention module was not compiled (simple kernels only)");
            if (value != 64 && value != 128) throw new ArgumentOutOfRangeException(nameof(value), value, "must be 64 or 128");
            if (value == 128 && _maxSharedOptin < FlashShared128)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"the 128-row prefill needs {FlashShared128} bytes of shared memory per block; the device allows {_maxSharedOptin}");
            _flashRows = value;
        }
    }

    /// <summary>
    /// Whether the 128-row prefill takes paged_prefill_fa128g (a block serves the group = heads / kvHeads query heads of
    /// one KV head at 128 / group positions, so each gathered K/V tile serves every head that reads it) where the group is
    /// 1, 2, 4 or 8; otherwise, or when false, paged_prefill_fa128 (128 rows of one head). Default
    /// <see cref="GqaPrefillByDefault"/> unless ACTORS_ATTENTION_FA128=1. Has no effect unless <see cref="FlashPrefillRows"/> is 128.
    /// </summary>
    public bool UseGqaPrefill { get; set; }

    /// <summary>Whether <see cref="Prefill"/> takes the GQA-shared 128-row kernel (paged_prefill_fa128g) for this shape.</summary>
    public bool PrefillUsesGqa(int headDim, int heads, int kvHeads) =>
        PrefillUsesFlash(headDim) && _flashRows == 128 && UseGqaPrefill && kvHeads > 0 && heads % kvHeads == 0
        && heads / kvHeads is 1 or 2 or 4 or 8;

    /// <summary>Whether <see cref="Prefill"/> takes the FlashAttention-2 tensor-core kernel for this head dim.</summary>
    public bool PrefillUsesFlash(int headDim) => !UseSimpleKernels && headDim == 128;

    /// <summary>Whether <see cref="Decode"/> takes the vectorised split kernel for this head dim and group.</summary>
    public bool DecodeUsesVector(int headDim, int group) => !UseSimpleKernels && _decodeVector!.ContainsKey((headDim, group));

    private static string ReadSource(string name)
    {
        using var stream = typeof(AttentionKernels).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded CUDA source '{name}' is missing from {typeof(AttentionKernels).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// Writes k, v (tokens, kvHeads, headDim) of one sequence into its pages at positions firstPosition …; token t of k
    /// starts at k[t * kRowStride] (v likewise), so k and v can be read straight out of a fused qkv projection.
    /// </summary>
    public void KvWrite(CudaStream stream, DeviceSpan<ushort> k, int kRowStride, DeviceSpan<ushort> v, int vRowStride, int tokens,
        DeviceSpan<ushort> kvPool, KvLayout layout, int layer, DeviceSpan<int> pageTable, int firstPosition)
    {
        CheckLayout(layout, layer, kvPool);
        ElementwiseKernels.NonNegative(tokens, nameof(tokens));
        ElementwiseKernels.NonNegative(firstPosition, nameof(firstPosition));
        if (tokens == 0) return;
        int perToken = layout.TokenStride;
        if (kRowStride < perToken) throw new ArgumentOutOfRangeException(nameof(kRowStride), kRowStride, $"must be at least kvHeads * headDim = {perToken}");
        if (vRowStride < perToken) throw new ArgumentOutOfRangeException(nameof(vRowStride), vRowStride, $"must be at least kvHeads * headDim = {perToken}");
        k.Require((long)(tokens - 1) * kRowStride + perToken, nameof(k), "(tokens - 1) * kRowStride + kvHeads * headDim");
        v.Require((long)(tokens - 1) * vRowStride + perToken, nameof(v), "(tokens - 1) * vRowStride + kvHeads * headDim");
        pageTable.Require((firstPosition + tokens - 1) / layout.PageSize + 1, nameof(pageTable), "pages covering every position");
        var p = new KvWriteParams
        {
            K = k.Pointer, V = v.Pointer, Kv = kvPool.Pointer, PageTable = pageTable.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Tokens = tokens, KvHeads = layout.KvHeads, HeadDim = layout.HeadDim,
            FirstPosition = firstPosition, KRowStride = kRowStride, VRowStride = vRowStride,
        };
        long total = (long)tokens * perToken;
        _kvWrite.Launch(stream, (checked((uint)((total + 255) / 256)), 1, 1), 256, 0, p);
    }

    /// <summary>Keys per split for a head group: as many as fit 48 KiB of shared memory, at most 256, a multiple of 32.</summary>
    public static int DecodeSplitSize(int group, int headDim)
    {
        int floats = SharedBudget / sizeof(float) - 32;
        int s = Math.Min(256, floats / group - headDim) / 32 * 32;
        if (s < 32)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"a group of {group} heads of dim {headDim} does not fit the decode kernel's shared memory");
        return s;
    }

    /// <summary>
    /// Keys per split of the vectorised decode: the largest of 512, 256, 128 that still gives seqs × kvHeads × splits ≥ 512
    /// blocks (several per SM, so even one sequence spreads over the GPU), else 64.
    /// </summary>
    public static int VectorDecodeSplitSize(int seqs, int kvHeads, int maxContext)
    {
        for (int s = VectorDecodeMaxSplit; s > VectorDecodeMinSplit; s /= 2)
            if ((long)seqs * kvHeads * ((maxContext + s - 1) / s) >= DecodeTargetBlocks) return s;
        return VectorDecodeMinSplit;
    }

    /// <summary>
    /// f32 elements of the decode workspace: (seqs, heads, splits) × (headDim + 2), enough for either decode kernel and
    /// for any call with at most <paramref name="seqs"/> sequences and <paramref name="maxContext"/>.
    /// </summary>
    public static long DecodeWorkspaceLength(int seqs, int heads, int kvHeads, int headDim, int maxContext)
    {
        int simple = DecodeSplitSize(heads / kvHeads, headDim);
        long rows = (long)seqs * Math.Max(1, (maxContext + simple - 1) / simple);
        // Vectorised: split s > 64 is chosen only when seqs × kvHeads × ceil(ctx / s) ≥ T while split 2s gave fewer, so
        // seqs × ceil(ctx / s) < 2 T / kvHeads + 2 seqs; split 64 is chosen only when seqs × kvHeads × ceil(ctx / 128) < T,
        // so seqs × ceil(ctx / 64) < 2 T / kvHeads + seqs; split 512 needs fewer rows than the simple kernel's split (≤ 256).
        // Every bound holds for fewer sequences and shorter contexts too.
        long vector = Math.Min((long)seqs * Math.Max(1, (maxContext + VectorDecodeMinSplit - 1) / VectorDecodeMinSplit),
            2L * DecodeTargetBlocks / kvHeads + 2L * seqs);
        return Math.Max(rows, vector) * heads * (headDim + 2);
    }

    /// <summary>
    /// f32 elements of the decode workspace for one call whose split size is chosen from <paramref name="splitContext"/>
    /// while its grid covers <paramref name="maxContext"/> (see <see cref="Decode"/>'s splitContext).
    /// </summary>
    public static long DecodeWorkspaceLength(int seqs, int heads, int kvHeads, int headDim, int maxContext, int splitContext)
    {
        int split = VectorDecodeSplitSize(seqs, kvHeads, Math.Clamp(splitContext, 1, maxContext));
        long vector = (long)seqs * ((maxContext + split - 1) / split) * heads * (headDim + 2);
        return Math.Max(DecodeWorkspaceLength(seqs, heads, kvHeads, headDim, maxContext), vector);
    }

    /// <summary>
    /// Decode attention: q (seqs, heads, headDim), one query per sequence attending its keys 0 .. contextLens[s] − 1;
    /// pageTables (seqs, pageTableStride); output (seqs, heads, headDim). maxContext bounds every contextLens[s]
    /// (the grid is sized from it, so a CUDA graph captured with it serves any shorter context); a longer context gives NaN rows.
    /// workspace: at least <see cref="DecodeWorkspaceLength(int, int, int, int, int)"/> floats. <paramref name="splitContext"/>
    /// (at most maxContext; default maxContext): the context the vectorised kernel sizes its key splits for. A graph
    /// captured for a context bucket passes the context it was captured at, so one sequence just past 8K keeps 512 splits
    /// of 128 keys in flight instead of 256 of 256 (the bucket's choice); the workspace then needs
    /// <see cref="DecodeWorkspaceLength(int, int, int, int, int, int)"/>. The TMA kernel with balanced splits (the default,
    /// <see cref="BalanceTmaSplits"/>) needs no splitContext: it sizes its grid from maxContext and cuts each sequence's
    /// keys evenly over it.
    /// </summary>
    public void Decode(CudaStream stream, DeviceSpan<ushort> q, int seqs, int heads, DeviceSpan<ushort> kvPool, KvLayout layout, int layer,
        DeviceSpan<int> pageTables, int pageTableStride, DeviceSpan<int> contextLens, int maxContext, float scale,
        DeviceSpan<float> workspace, DeviceSpan<ushort> output, int? splitContext = null)
    {
        CheckLayout(layout, layer, kvPool);
        CheckHeads(heads, layout);
        ElementwiseKernels.NonNegative(seqs, nameof(seqs));
        ElementwiseKernels.Positive(maxContext, nameof(maxContext));
        if (seqs == 0) return;
        if ((long)pageTableStride * layout.PageSize < maxContext)
            throw new ArgumentOutOfRangeException(nameof(pageTableStride), pageTableStride, $"page tables of {pageTableStride} pages cannot hold maxContext {maxContext}");
        int d = layout.HeadDim, group = heads / layout.KvHeads;
        q.Require((long)seqs * heads * d, nameof(q), "seqs * heads * headDim");
        output.Require((long)seqs * heads * d, nameof(output), "seqs * heads * headDim");
        pageTables.Require((long)seqs * pageTableStride, nameof(pageTables), "seqs * pageTableStride");
        contextLens.Require(seqs, nameof(contextLens), "seqs");
        bool aligned = kvPool.Pointer % 16 == 0 && q.Pointer % 16 == 0;
        bool tma = aligned && DecodeUsesTma(d, group, layout.PageSize, seqs, layout.KvHeads);
        bool vector = !tma && aligned && DecodeUsesVector(d, group);
        if (splitContext is < 1 || splitContext > maxContext)
            throw new ArgumentOutOfRangeException(nameof(splitContext), splitContext, $"splitContext must be in [1, maxContext = {maxContext}]");
        bool balanced = tma && BalanceTmaSplits;
        int splitSize = tma ? TmaDecodeSplitSize(seqs, layout.KvHeads, balanced ? maxContext : splitContext ?? maxContext, _device!.MultiprocessorCount)
            : vector ? VectorDecodeSplitSize(seqs, layout.KvHeads, splitContext ?? maxContext) : DecodeSplitSize(group, d);
        int maxSplits = (maxContext + splitSize - 1) / splitSize;
        long partial = (long)seqs * heads * maxSplits;
        workspace.Require(partial * (d + 2), nameof(workspace), "seqs * heads * splits * (headDim + 2) (see DecodeWorkspaceLength)");
        var p = new DecodeParams
        {
            Q = q.Pointer, Kv = kvPool.Pointer, PageTables = pageTables.Pointer, ContextLens = contextLens.Pointer,
            PartialAcc = workspace.Pointer,
            PartialMax = workspace.Slice(partial * d).Pointer,
            PartialSum = workspace.Slice(partial * (d + 1)).Pointer,
            Out = output.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Heads = heads, KvHeads = layout.KvHeads, HeadDim = d, PageTableStride = pageTableStride,
            SplitSize = splitSize, MaxSplits = maxSplits, Scale = scale, Balanced = balanced ? 1 : 0,
        };
        if (tma)
        {
            var t = new TmaDecodeParams { Map = KvTensorMap(kvPool, layout), P = p, Early = EarlyTmaDecodeLoads ? 1 : 0 };
            _decodeTma!.Launch(stream, ((uint)maxSplits, (uint)layout.KvHeads, (uint)seqs), TmaDecodeThreads, (uint)TmaDecodeShared, t);
        }
        else if (vector)
        {
            // per-warp softmax states: weighted V (4, group, d), max and sum (4, group), f32
            uint vshared = (uint)(4 * group * (d + 2) * sizeof(float));
            _decodeVector![(d, group)].Launch(stream, ((uint)maxSplits, (uint)layout.KvHeads, (uint)seqs), 128, vshared, p);
        }
        else
        {
            uint shared = (uint)((group * (d + splitSize) + 32) * sizeof(float));
            _decodeSplit.Launch(stream, ((uint)maxSplits, (uint)layout.KvHeads, (uint)seqs), 128, shared, p);
        }
        if (DecodeUsesWarpReduce(d, workspace.Pointer))
        {
            int warps = DecodeReduceWarps > 0 ? DecodeReduceWarps : (long)heads * seqs <= 512 ? 1 : 4;
            _decodeReduceWarp[d / 32].Launch(stream, ((uint)((heads + warps - 1) / warps), (uint)seqs, 1), (uint)(32 * warps), 0, p);
        }
        else
            _decodeReduce.Launch(stream, ((uint)heads, (uint)seqs, 1), ReduceThreads(maxSplits, d), 0, p);
    }

    /// <summary>
    /// Causal prefill of one sequence: q (queries, heads, headDim); query i at position firstPosition + i attends keys
    /// 0 ..= firstPosition + i, already written to the pool (see <see cref="KvWrite"/>). output (queries, heads, headDim).
    /// Matches <see cref="PagedAttention.Reference"/>.
    /// </summary>
    public void Prefill(CudaStream stream, DeviceSpan<ushort> q, int queries, int heads, int firstPosition, DeviceSpan<ushort> kvPool,
        KvLayout layout, int layer, DeviceSpan<int> pageTable, float scale, DeviceSpan<ushort> output)
    {
        CheckLayout(layout, layer, kvPool);
        CheckHeads(heads, layout);
        ElementwiseKernels.NonNegative(queries, nameof(queries));
        ElementwiseKernels.NonNegative(firstPosition, nameof(firstPosition));
        if (queries == 0) return;
        int d = layout.HeadDim;
        q.Require((long)queries * heads * d, nameof(q), "queries * heads * headDim");
        output.Require((long)queries * heads * d, nameof(output), "queries * heads * headDim");
        pageTable.Require((firstPosition + queries - 1) / layout.PageSize + 1, nameof(pageTable), "pages covering every position");
        var p = new PrefillParams
        {
            Q = q.Pointer, Kv = kvPool.Pointer, PageTable = pageTable.Pointer, Out = output.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride,
            PageSize = layout.PageSize, Queries = queries, Heads = heads, KvHeads = layout.KvHeads, HeadDim = d,
            FirstPosition = firstPosition, Scale = scale,
        };
        // The flash kernel reads K/V rows as 16-byte vectors and q / out as bf16 pairs.
        if (PrefillUsesFlash(d) && kvPool.Pointer % 16 == 0 && q.Pointer % 4 == 0 && output.Pointer % 4 == 0)
        {
            // the 128-row kernels keep the running max of unscaled scores, valid for scale > 0 only
            // (the wgmma kernel also writes its output rows as 16-byte vectors)
            if (scale > 0 && q.Pointer % 16 == 0 && output.Pointer % 16 == 0 && PrefillUsesWgmma(d, heads, layout.KvHeads, layout.PageSize))
            {
                PrefillWgmma(stream, p, queries, heads, firstPosition, kvPool, layout);
                return;
            }
            if (scale > 0 && PrefillUsesGqa(d, heads, layout.KvHeads))
            {
                // group query heads of one KV head x (128 / group) positions per block
                int rows = 128 / (heads / layout.KvHeads);
                int qBlocks = (queries + rows - 1) / rows;
                int tiles = (firstPosition + queries - 1) / 64 + 1;
                int splits = UseSplitPrefill ? PrefillSplits(qBlocks * layout.KvHeads, tiles, queries, heads, _device!.MultiprocessorCount) : 1;
                if (splits > 1)
                {
                    // A few rows over a long cached context: the key tiles are spread over `splits` blocks per row block
                    // and merged by prefill_split_reduce (see attention_fast.cu).
                    var sp = SplitParams(p, tiles, splits);
                    _prefillSplit!.Launch(stream, ((uint)qBlocks, (uint)layout.KvHeads, (uint)sp.Splits), 256, FlashShared128, sp);
                    PrefillSplitReduce(stream, sp, heads, queries);
                    return;
                }
                _prefillFlashGqa!.Launch(stream, ((uint)qBlocks, (uint)layout.KvHeads, 1), 256, FlashShared128, p);
            }
            else if (_flashRows == 128 && scale > 0)
                _prefillFlash128!.Launch(stream, ((uint)((queries + 127) / 128), (uint)heads, 1), 256, FlashShared128, p);
            else
                _prefillFlash!.Launch(stream, ((uint)((queries + 63) / 64), (uint)heads, 1), 128, FlashShared64, p);
            return;
        }
        uint shared = (uint)(PrefillWarps * d * sizeof(float) + 32 * (d + 2) * 2 + 32 * d * 2);
        _prefill.Launch(stream, ((uint)((queries + PrefillWarps - 1) / PrefillWarps), (uint)heads, 1), 32 * PrefillWarps, shared, p);
    }

    /// <summary>
    /// paged_prefill_wgmma: grid (query blocks of 128 / group positions, KV heads, key splits), 384 threads. A few query
    /// rows over a long context split the 128-key tiles over grid z as the mma.sync GQA kernel does (same workspace and
    /// reduce kernel).
    /// </summary>
    private void PrefillWgmma(CudaStream stream, PrefillParams p, int queries, int heads, int firstPosition, DeviceSpan<ushort> kvPool, KvLayout layout)
    {
        int rows = 128 / (heads / layout.KvHeads);
        int qBlocks = (queries + rows - 1) / rows;
        int tiles = (firstPosition + queries - 1) / 128 + 1;
        int splits = UseSplitPrefill ? PrefillSplits(qBlocks * layout.KvHeads, tiles, queries, heads, _device!.MultiprocessorCount) : 1;
        // acc null (no split): the kernel writes the normalised rows itself
        var sp = splits > 1 ? SplitParams(p, tiles, splits) : new PrefillSplitParams { P = p, Splits = 1 };
        var w = new WgmmaPrefillParams { Map = KvTensorMap(kvPool, layout), Split = sp };
        _prefillWgmma!.Launch(stream, ((uint)qBlocks, (uint)layout.KvHeads, (uint)sp.Splits), WgmmaThreads, WgmmaShared, w);
        if (sp.Splits > 1) PrefillSplitReduce(stream, sp, heads, queries);
    }

    /// <summary>Merges a split-KV prefill's splits: a warp per (query, head) (<see cref="UseWarpSplitMerge"/>) or a block.</summary>
    private void PrefillSplitReduce(CudaStream stream, PrefillSplitParams sp, int heads, int queries)
    {
        if (UseWarpSplitMerge && sp.Acc % 16 == 0)
            _prefillSplitReduceWarp!.Launch(stream, ((uint)((heads + 3) / 4), (uint)queries, 1), 128, 0, sp);
        else
            _prefillSplitReduce!.Launch(stream, ((uint)heads, (uint)queries, 1), 128, 0, sp);
    }

    /// <summary>
    /// Split-KV params over <paramref name="tiles"/> key tiles: the split count evened out so no split is empty, and
    /// the partial outputs (acc (queries, heads, splits, 128), then max and sum (queries, heads, splits)) in the
    /// workspace, allocated at first use.
    /// </summary>
    private PrefillSplitParams SplitParams(PrefillParams p, int tiles, int splits)
    {
        int perSplit = (tiles + splits - 1) / splits;
        splits = (tiles + perSplit - 1) / perSplit;
        _splitWorkspace ??= _device!.Allocate<float>(PrefillSplitWorkspaceFloats);
        long part = (long)p.Queries * p.Heads * splits;
        var ws = _splitWorkspace.Span;
        return new PrefillSplitParams
        {
            P = p, Acc = ws.Pointer, Max = ws.Slice(part * 128).Pointer, Sum = ws.Slice(part * 129).Pointer,
            Splits = splits, TilesPerSplit = perSplit,
        };
    }

    /// <summary>
    /// The TMA descriptor of a pool: 4-D, innermost first (KvHeads * HeadDim elements of a token, PageSize slots,
    /// 2 * Layers (K then V of each layer), pages), boxes of (64 dims, PageSize slots, 1, 1) in the 128-byte swizzle.
    /// Encoded once per pool (address, size, layout).
    /// </summary>
    private unsafe TensorMap KvTensorMap(DeviceSpan<ushort> kvPool, KvLayout layout)
    {
        long pages = kvPool.Length / layout.PageStride;
        var key = (kvPool.Pointer, pages, layout);
        lock (_tensorMaps)
        {
            if (_tensorMaps.TryGetValue(key, out var cached)) return cached;
            if (_tensorMaps.Count >= 64) _tensorMaps.Clear(); // pools come and go in tests; an engine keeps one
            var map = new TensorMap();
            ulong* dims = stackalloc ulong[4] { (ulong)layout.TokenStride, (ulong)layout.PageSize, 2UL * (ulong)layout.Layers, (ulong)pages };
            ulong* strides = stackalloc ulong[3] { 2UL * (ulong)layout.TokenStride, 2UL * (ulong)layout.PageSize * (ulong)layout.TokenStride, 2UL * (ulong)layout.PageStride };
            uint* box = stackalloc uint[4] { 64, (uint)layout.PageSize, 1, 1 };
            uint* elementStrides = stackalloc uint[4] { 1, 1, 1, 1 };
            _device!.MakeCurrent();
            Driver.Check(Driver.cuTensorMapEncodeTiled(map.Words, Driver.TensorMapDataTypeBfloat16, 4, kvPool.Pointer, dims, strides, box, elementStrides,
                    Driver.TensorMapInterleaveNone, Driver.TensorMapSwizzle128B, Driver.TensorMapL2Promotion256B, Driver.TensorMapOobFillNone),
                "cuTensorMapEncodeTiled", $"KV pool {layout} x {pages} pages at 0x{kvPool.Pointer:x}");
            _tensorMaps[key] = map;
            return map;
        }
    }

    private static void CheckLayout(KvLayout layout, int layer, DeviceSpan<ushort> kvPool)
    {
        if (layout.PageSize <= 0 || layout.Layers <= 0 || layout.KvHeads <= 0 || layout.HeadDim <= 0)
            throw new ArgumentException($"layout {layout} needs positive PageSize, Layers, KvHeads and HeadDim", nameof(layout));
        if (layout.HeadDim > MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(layout), layout.HeadDim, $"head dim above {MaxHeadDim} is not supported by the CUDA attention kernels");
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {layout.Layers})");
        kvPool.Require(layout.PageStride, nameof(kvPool), "one page (PageStride)");
    }

    private static void CheckHeads(int heads, KvLayout layout)
    {
        ElementwiseKernels.Positive(heads, nameof(heads));
        if (heads % layout.KvHeads != 0)
            throw new ArgumentException($"heads {heads} is not a multiple of KV heads {layout.KvHeads}", nameof(heads));
    }

    // Twins of the params structs in attention.cu.
    [StructLayout(LayoutKind.Sequential)]
    private struct KvWriteParams
    {
        public ulong K, V, Kv, PageTable;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Tokens, KvHeads, HeadDim, FirstPosition, KRowStride, VRowStride;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DecodeParams
    {
        public ulong Q, Kv, PageTables, ContextLens, PartialAcc, PartialMax, PartialSum, Out;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Heads, KvHeads, HeadDim, PageTableStride, SplitSize, MaxSplits;
        public float Scale;
        public int Balanced; // paged_decode_tma and paged_decode_reduce: decode_split_size
    }

    /// <summary>Twin of TmaDecodeParams (attention_hopper.cu): the pool's tensor map, then the decode params; 256 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    private struct TmaDecodeParams
    {
        public TensorMap Map;
        public DecodeParams P;
        public int Early; // EarlyTmaDecodeLoads
        public int Pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PrefillParams
    {
        public ulong Q, Kv, PageTable, Out;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Queries, Heads, KvHeads, HeadDim, FirstPosition;
        public float Scale;
    }

    /// <summary>
    /// Twin of WgmmaPrefillParams (attention_hopper.cu): the tensor map, then the prefill params and split outputs laid
    /// out as PrefillSplitParams (p, acc, max, sum, splits, tilesPerSplit); 256 bytes.
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    private struct WgmmaPrefillParams
    {
        public TensorMap Map;
        public PrefillSplitParams Split;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PrefillSplitParams
    {
        public PrefillParams P;
        public ulong Acc, Max, Sum;
        public int Splits, TilesPerSplit;
    }
}
