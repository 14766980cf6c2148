using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Cuda;

/// <summary>
/// The CUDA backend: bf16 weights and activations, f32 accumulation, a bf16 paged KV pool in the same page layout as
/// the CPU's (<see cref="Kernels.Cpu.KvLayout"/>). Per step, the chunks are reordered so single-token (decode) rows come
/// first: those attend in one split-K decode launch for all sequences, each longer chunk in one causal prefill launch.
/// Per layer: (add +) RMSNorm → fused qkv GEMM → one qkv_rope launch (bias, q/k norm, RoPE on q and k, q copy, KV
/// write; <see cref="UseFusedQkv"/>) → attention →
/// o_proj GEMM → add + RMSNorm → fused gate_up GEMM → SwiGLU → down GEMM; then final norm and lm_head over the
/// requested rows only. Step inputs go up in one pinned copy; logits come back as bf16 and are widened on the host.
/// CUDA graphs for decode are not used yet (EngineOptions.CudaGraphs must be false). Not thread-safe.
/// </summary>
public sealed partial class CudaModelRunner : IModelRunner
{
    /// <summary>Device memory kept free beside the KV pool (cuBLASLt, module loads, late buffer growth).</summary>
    public const long WorkspaceReserveBytes = 1L << 30;

    private readonly CudaDevice _device;
    private readonly bool _ownsDevice;
    private readonly CudaWeights _w;
    private readonly bool _ownsWeights;
    private readonly CudaStream _stream;
    private readonly KernelCompiler _compiler;
    private readonly ElementwiseKernels _ew;
    private readonly AttentionKernels _attn;
    private readonly CublasLtMatmul _mm;
    private readonly EngineKernels _ek;
    private readonly DeviceBuffer<ushort> _pool;
    private readonly bool _dynamicRope;
    private readonly int _contextLength;
    private readonly float[]? _invFreq;
    private readonly float _ropeScaling;
    private readonly RopeTable _ropeVariants;
    private readonly DeviceBuffer<float>? _cos, _sin;  // (context, headDim/2) for every position; null with dynamic RoPE
    // Per-token activations, carved from one arena (_tokenArena) sized for _tokenCapacity tokens.
    private DeviceSpan<ushort> _x, _h, _qkv, _q, _a, _o, _gu, _act;
    private DeviceSpan<int> _identity;   // 0, 1, …, capacity − 1: row index of a plain strided copy
    private DeviceArena? _tokenArena;
    private DeviceBuffer<ushort> _sel = null!, _logits = null!;
    private DeviceBuffer<float> _decodeWs = null!;
    private DeviceBuffer<int> _meta = null!;
    private PinnedBuffer<int> _metaHost = null!;
    private PinnedBuffer<ushort> _logitsHost = null!;
    private PinnedBuffer<float> _ropeHost = null!;
    private int _tokenCapacity;
    private int _generation;  // bumped whenever a buffer a captured graph points at is reallocated
    private readonly Dictionary<(int Rows, int Context), (CudaGraph Graph, int Generation)> _decodeGraphs = [];
    private readonly CudaEvent _staged;  // recorded after the step's uploads from pinned memory
    private bool _stagedRecorded;

    private CudaModelRunner(CudaDevice device, bool ownsDevice, CudaWeights weights, bool ownsWeights, EngineOptions options, int contextLength,
        KernelCompiler compiler, EngineKernels ek)
    {
        _device = device;
        _ownsDevice = ownsDevice;
        _w = weights;
        _ownsWeights = ownsWeights;
        _compiler = compiler;
        _ek = ek;
        var c = Config = weights.Config;
        _contextLength = contextLength;
        _stream = device.CreateStream();
        _stream.ProgrammaticLaunch = Environment.GetEnvironmentVariable("ACTORS_PDL") != "0";
        _staged = new CudaEvent(device, timing: false);
        _ew = new ElementwiseKernels(compiler);
        _attn = new AttentionKernels(compiler);
        _mm = new CublasLtMatmul(device);
        _gemm = GemmKernels.TryCreate(compiler, out var gemmReason);
        FusedSwiGluUnavailableReason = gemmReason;
        _ropeVariants = new RopeTable(c);
        _hasOBias = weights.Layers.Any(l => l.OBias is not null);
        _dynamicRope = _ropeVariants.IsDynamic;
        KvLayout = new KvLayout(options.PageSize, c.NumLayers, c.NumKvHeads, c.HeadDim);
        int half = c.HeadDim / 2;

        // Activations for the largest step the scheduler makes, allocated before the pool takes what is left.
        EnsureTokens(Math.Max(options.MaxBatchTokens, options.PrefillChunkTokens));
        EnsureLogitsRows(Math.Max(1, options.MaxSequences));
        _attn.PrepareSplitWorkspace();
        _decodeWs = device.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(Math.Max(1, options.MaxSequences), c.NumHeads, c.NumKvHeads, c.HeadDim, contextLength));
        if (_dynamicRope)
        {
            _cos = _sin = null; // per-step rows live in _ropeDyn (EnsureTokens)
        }
        else
        {
            // One table for every position of the context: uploaded once, indexed by the step's positions.
            (_invFreq, _ropeScaling) = RopeFrequencies.Compute(c, c.MaxPositionEmbeddings);
            var pos = Enumerable.Range(0, contextLength).ToArray();
            var cos = new float[(long)contextLength * half];
            var sin = new float[cos.Length];
            RopeFrequencies.CosSin(_invFreq, _ropeScaling, pos, cos, sin);
            _cos = device.Allocate<float>(cos.Length);
            _sin = device.Allocate<float>(sin.Length);
            _cos.Upload(cos);
            _sin.Upload(sin);
        }

        long pageBytes = (long)KvLayout.PageStride * sizeof(ushort);
        long pages;
        if (options.KvPages is { } p) pages = p;
        else
        {
            var (free, _) = device.MemoryInfo();
            long bytes = options.KvMemoryBytes ?? (long)(Math.Max(0, free - WorkspaceReserveBytes) * options.KvMemoryFraction);
            pages = bytes / pageBytes;
            if (options.KvMemoryBytes is null)
                pages = Math.Min(pages, (long)options.MaxSequences * ((contextLength + options.PageSize - 1) / options.PageSize));
        }
        pages = Math.Min(pages, int.MaxValue / Math.Max(1, options.PageSize));
        if (pages < 1)
        {
            var (free, total) = device.MemoryInfo();
            throw new InvalidOperationException(
                $"no room for the KV pool on {device.Name}: a page of {options.PageSize} tokens takes {pageBytes} bytes; {free >> 20} MiB of {total >> 20} MiB are free after {weights.Bytes >> 20} MiB of weights and activations, and {WorkspaceReserveBytes >> 20} MiB are kept as workspace");
        }
        UseDecodeGraphs = options.CudaGraphs;
        KvPages = (int)pages;
        _pool = device.Allocate<ushort>(pages * KvLayout.PageStride);
        TunePrefillProducts(Math.Max(options.MaxBatchTokens, options.PrefillChunkTokens));
        var prepared = System.Diagnostics.Stopwatch.StartNew();
        PreparedProductPlans = PrepareProducts();
        prepared.Stop();
        var (f, t) = device.MemoryInfo();
        // the card's sensors for the engine's metrics; a card without NVML serves without them
        if (PowerMeter.TryOpen(device, out var meter, out var meterReason))
        {
            _powerMeter = meter;
            Power = new EngineMeters.DevicePower(meter!.PciBusId, meter.EnergyJoules, meter.PowerWatts);
        }
        Description = $"CUDA: {device}, weights {weights.Bytes >> 20} MiB bf16, KV {KvPages} pages of {options.PageSize} tokens ({(pages * pageBytes) >> 20} MiB bf16), {f >> 20} of {t >> 20} MiB free, {PreparedProductPlans} product plans prepared in {prepared.Elapsed.TotalMilliseconds:F0} ms" +
                      (_powerMeter is null ? $", no power sensors ({meterReason})" : $", power sensors: {meterReason}");
    }

    private readonly PowerMeter? _powerMeter;

    /// <summary>The card's energy and power through NVML (<see cref="PowerMeter"/>), for the engine's metrics; null
    /// without NVML.</summary>
    public EngineMeters.DevicePower? Power { get; }

    public ModelConfig Config { get; }
    public int KvPages { get; }
    public KvLayout KvLayout { get; }
    public string Description { get; }
    public CudaDevice Device => _device;

    /// <summary>
    /// Replay decode-only greedy steps (every chunk one token, every chunk's last row asked for) from CUDA graphs
    /// captured per batch size and context bucket (the longest sequence's length rounded up to a power of two, at least
    /// 64, at most the context length: a new bucket captures a new graph). From EngineOptions.CudaGraphs (on by default);
    /// profiled steps (<see cref="Profile"/>) need it off.
    /// </summary>
    public bool UseDecodeGraphs { get; set; }

    /// <summary>
    /// When set, every step not replayed from a graph records GPU time per stage (projections, attention, norms, ...)
    /// into it; for benchmarks and diagnosis (each stage boundary costs a timing event).
    /// </summary>
    public StepProfile? Profile { get; set; }

    /// <summary>
    /// Whether each layer's bias, q/k norm, RoPE, q copy and KV write run as one launch (qkv_rope.cu) instead of up to
    /// six; on by default (head dims up to <see cref="QkvRopeKernels.MaxHeadDim"/>). Tests compare the two paths.
    /// Changing it retires the captured decode graphs (they hold the launches of the other path).
    /// </summary>
    public bool UseFusedQkv
    {
        get => _useFusedQkv;
        set => SetGraphSwitch(_useFusedQkv, value, v => _useFusedQkv = v);
    }

    private bool _useFusedQkv = true;

    /// <summary>
    /// Sets a switch the captured decode graphs depend on (they hold the launches it chooses): a change retires them.
    /// </summary>
    private void SetGraphSwitch(bool current, bool value, Action<bool> set)
    {
        if (value == current) return;
        set(value);
        _generation++;
    }

    /// <summary>
    /// Whether cuBLASLt products take their tuned algorithms (<see cref="CublasLtMatmul.UseTunedAlgorithms"/>; default
    /// true) or the heuristic's first picks, which benchmarks compare. Changing it retires the captured decode graphs
    /// (they hold the launches of the other algorithms).
    /// </summary>
    public bool UseTunedProducts
    {
        get => _mm.UseTunedAlgorithms;
        set => SetGraphSwitch(_mm.UseTunedAlgorithms, value, v => _mm.UseTunedAlgorithms = v);
    }

    /// <summary>
    /// Whether decode attention may take paged_decode_tma where it applies (the default where it compiled); tests compare
    /// it with the register and simple kernels. Changing it retires the captured decode graphs.
    /// </summary>
    internal bool UseTmaDecode
    {
        get => _attn.UseTmaDecode;
        set => SetGraphSwitch(_attn.UseTmaDecode, value, v => _attn.UseTmaDecode = v);
    }

    /// <summary>
    /// Whether paged_decode_tma loads its key tiles before it waits for the qkv kernel (<see cref="AttentionKernels.EarlyTmaDecodeLoads"/>,
    /// default on); the bench compares both. Changing it retires the captured decode graphs.
    /// </summary>
    public bool EarlyTmaDecodeLoads
    {
        get => _attn.EarlyTmaDecodeLoads;
        set => SetGraphSwitch(_attn.EarlyTmaDecodeLoads, value, v => _attn.EarlyTmaDecodeLoads = v);
    }

    /// <summary>
    /// Whether decode attention and split-KV prefills merge their splits with a warp per (row, head)
    /// (<see cref="AttentionKernels.UseWarpSplitMerge"/>, default on); the bench compares both. Changing it retires the
    /// captured decode graphs.
    /// </summary>
    public bool WarpSplitMerge
    {
        get => _attn.UseWarpSplitMerge;
        set => SetGraphSwitch(_attn.UseWarpSplitMerge, value, v => _attn.UseWarpSplitMerge = v);
    }

    /// <summary>
    /// Whether the folded qkv product lets the attention start at its wait (<see cref="GemvKernels.EarlyQkvLaunch"/>);
    /// the bench compares both. Changing it retires the captured decode graphs.
    /// </summary>
    public bool EarlyQkvLaunch
    {
        get => Gemv.EarlyQkvLaunch;
        set => SetGraphSwitch(Gemv.EarlyQkvLaunch, value, v => Gemv.EarlyQkvLaunch = v);
    }

    /// <summary>Whether a decode step of one sequence of this model takes paged_decode_tma.</summary>
    internal bool DecodeUsesTma => _attn.DecodeUsesTma(Config.HeadDim, Config.NumHeads / Config.NumKvHeads, KvLayout.PageSize, 1, Config.NumKvHeads);

    private readonly GemmKernels? _gemm;

    /// <summary>Why the gate/up GEMM with SwiGLU in its epilogue (gemm_hopper.cu) is not available here (null when it is).</summary>
    public string? FusedSwiGluUnavailableReason { get; }

    /// <summary>Steps of at least this many rows take the fused gate/up + SwiGLU GEMM (<see cref="UseFusedSwiGlu"/>); smaller
    /// ones keep cuBLASLt and the SwiGLU kernel (a 128-row tile would be mostly empty).</summary>
    public const int FusedSwiGluMinRows = 512;

    /// <summary>
    /// Whether prefill steps of <see cref="FusedSwiGluMinRows"/> rows or more run the MLP's gate/up product with SwiGLU
    /// in the GEMM's epilogue (gemm_hopper.cu, compute capability 9.0: the 2·inter-column product is never written and
    /// read back) instead of cuBLASLt followed by the SwiGLU kernel. On by default where the kernel built
    /// (ACTORS_GEMM_WGMMA=0 keeps it out); settable to compare the two.
    /// </summary>
    public bool UseFusedSwiGlu
    {
        get => _useFusedSwiGlu && _gemm is not null;
        set
        {
            if (value == _useFusedSwiGlu) return;
            _useFusedSwiGlu = value;
            _generation++;
            if (!UseFusedSwiGlu) EnsureGateUpRows(_tokenCapacity, tune: true);
            else ReleaseGateUpRows();
        }
    }

    private bool _useFusedSwiGlu = true;

    /// <summary>
    /// Rows the unfused gate/up product's output buffer (2 x intermediate columns) holds. With the fused GEMM a step of
    /// FusedSwiGluMinRows rows or more never writes that product, so the buffer covers only the smaller steps (470 MB less
    /// at 8192-token steps of the Llama-3-8B shape, left to the KV pool); turning the fused path off grows it, turning it
    /// back on gives the growth back.
    /// </summary>
    internal int GateUpRows { get; private set; }
    private DeviceBuffer<ushort>? _guOwn;  // the gate/up buffer when it outgrew its share of the token arena
    private DeviceSpan<ushort> _guArena;   // that share

    /// <summary>
    /// Programmatic dependent launch of the step's kernels (compute capability 9.0+; on by default, ACTORS_PDL=0 turns it
    /// off): each kernel's blocks start while the previous kernel drains (~0.05 ms per token of a decode step after 8K on
    /// an H100, docs/benchmarks.md). Changing it retires the captured decode graphs.
    /// </summary>
    public bool ProgrammaticLaunch
    {
        get => _stream.ProgrammaticLaunch;
        set => SetGraphSwitch(_stream.ProgrammaticLaunch, value, v => _stream.ProgrammaticLaunch = v);
    }

    /// <summary>
    /// In steps the decode products take (<see cref="UseGemv"/>, at most <see cref="GemvKernels.MaxRows"/> rows), fold each
    /// RMSNorm into the product that reads its output, each residual add into the product before it, and (without q/k
    /// norm) the qkv bias, RoPE and KV write into the qkv product (gemv.cu), so a layer runs 6 kernels instead of 9 (on by
    /// default; ACTORS_GEMV_FOLD=0 turns it off). Same roundings as the separate kernels; only the order of the sum of
    /// squares differs. Changing it retires the captured decode graphs.
    /// </summary>
    public bool FoldNorms
    {
        get => _foldNorms;
        set => SetGraphSwitch(_foldNorms, value, v => _foldNorms = v);
    }

    private bool _foldNorms = Environment.GetEnvironmentVariable("ACTORS_GEMV_FOLD") != "0";

    /// <summary>
    /// In steps through cuBLASLt (prefill), the o and down projections add their output to the residual stream in the
    /// GEMM epilogue (y = bf16(x + acc), one rounding where the separate add rounds the product first), so the next
    /// norm reads one tensor instead of two and writes one instead of two (on by default; ACTORS_GEMM_RESIDUAL=0 turns
    /// it off).
    /// </summary>
    public bool ResidualInGemm { get; set; } = Environment.GetEnvironmentVariable("ACTORS_GEMM_RESIDUAL") != "0";

    private readonly bool _hasOBias; // an o bias is added before the residual: no residual in the GEMM epilogue then

    /// <summary>
    /// In prefill-shaped steps whose logits rows are few (at most <see cref="GemvKernels.MaxRows"/>, none for the earlier
    /// chunks of a chunked prefill), the last layer writes every row's K and V and then runs its attention, o product and
    /// MLP on the logits rows alone: nothing else reads that layer's output. A 32-layer prefill skips 1/32 of its
    /// attention and MLP (on by default; ACTORS_TRIM_LAST_LAYER=0 turns it off). Benchmarks and tests toggle it.
    /// </summary>
    public bool TrimLastLayer { get; set; } = Environment.GetEnvironmentVariable("ACTORS_TRIM_LAST_LAYER") != "0";

    /// <summary>Steps that ran their last layer on the logits rows alone (<see cref="TrimLastLayer"/>).</summary>
    public long TrimmedSteps { get; private set; }

    private QkvRopeKernels? _qkvRope;
    public CudaStream Stream => _stream;
    /// <summary>The runner's matrix products (for benchmarks: its plans and autotuning).</summary>
    public CublasLtMatmul Matmul => _mm;

    /// <summary>The device pool, (pages, layers, {K,V}, pageSize, kvHeads, headDim) bf16.</summary>
    public DeviceSpan<ushort> Pool => _pool.Span;

    public string RopeVariant(int seqLen) => _ropeVariants.Variant(seqLen);

    /// <summary><see cref="CudaDevice.TryOpen"/> (compute capability ≥ 8.0, ACTORS_DISABLE_CUDA honoured).</summary>
    public static bool TryOpenDevice(int ordinal, out CudaDevice? device, out string reason) =>
        CudaDevice.TryOpen(ordinal, out device, out reason);

    /// <summary>Uploads <paramref name="weights"/> and builds the runner; it owns <paramref name="device"/> from here on.</summary>
    public static CudaModelRunner Create(CudaDevice device, ModelConfig config, IWeightSource weights, EngineOptions options, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        var compiler = new KernelCompiler(device);
        var ek = new EngineKernels(compiler);
        var w = CudaWeights.Load(device, config, weights);
        try
        {
            return new CudaModelRunner(device, true, w, true, options, contextLength, compiler, ek);
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    /// <summary>A runner over weights already on the device (benchmarks: <see cref="CudaWeights.Random"/>); owns neither.</summary>
    public static CudaModelRunner Create(CudaDevice device, CudaWeights weights, EngineOptions options, int contextLength, KernelCompiler compiler, EngineKernels kernels) =>
        new(device, false, weights, false, options, contextLength, compiler, kernels);

    public float[] Forward(IReadOnlyList<ForwardChunk> batch)
    {
        var (_, rows) = ForwardBf16(batch, download: true);
        var result = new float[(long)rows * Config.VocabSize];
        Widen(_logitsHost.Span[..result.Length], result);
        return result;
    }

    public int[] ForwardArgmax(IReadOnlyList<ForwardChunk> batch)
    {
        var (logits, rows) = ForwardBf16(batch, download: false);
        if (rows == 0) { _stream.Synchronize(); return []; }
        if (_argmax is null || _argmax.Length < rows)
        {
            _argmax?.Dispose();
            _argmaxHost?.Dispose();
            _argmax = _device.Allocate<int>(Math.Max(rows, 64));
            _argmaxHost = _device.AllocatePinned<int>(_argmax.Length);
        }
        _ek.ArgmaxRows(_stream, logits, rows, Config.VocabSize, _argmax);
        _argmax.DownloadAsync(_argmaxHost!, rows, _stream);
        _stream.Synchronize();
        return _argmaxHost!.Span[..rows].ToArray();
    }

    private DeviceBuffer<int>? _argmax;
    private PinnedBuffer<int>? _argmaxHost;

    /// <summary>
    /// The step's tokens picked on the device (sampling.cu) under rows[r], one per logits row: only the ids cross to the
    /// host. All-greedy steps take <see cref="ForwardArgmax"/>. Same picks as the CPU Sampler on these (bf16) logits
    /// with the same uniforms, up to rounding at a boundary (see sampling.cu).
    /// </summary>
    public int[] ForwardSample(IReadOnlyList<ForwardChunk> batch, ReadOnlySpan<SamplingRow> rows)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int expected = 0;
        foreach (var ch in batch) expected += ch.LogitsRowCount;
        if (rows.Length != expected) throw new ArgumentException($"{rows.Length} sampling rows for {expected} logits rows", nameof(rows));
        var host = new SamplingKernels.SampleRow[rows.Length];
        bool greedy = true;
        for (int r = 0; r < rows.Length; r++)
        {
            host[r] = new SamplingKernels.SampleRow(rows[r].Uniform, rows[r].Temperature, rows[r].TopK, rows[r].TopP);
            greedy &= host[r].IsGreedy;
        }
        SamplingKernels.Validate(host); // before the step runs: the kernel cannot report bad parameters
        if (greedy) return ForwardArgmax(batch);

        var (logits, n) = ForwardBf16(batch, download: false);
        _sampling ??= new SamplingKernels(_compiler);
        if (_sampleRows is null || _sampleRows.Length < n)
        {
            _stream.Synchronize();
            _sampleRows?.Dispose();
            _sampleRowsHost?.Dispose();
            _picked?.Dispose();
            _pickedHost?.Dispose();
            int cap = Math.Max(n, 64);
            _sampleRows = _device.Allocate<SamplingKernels.SampleRow>(cap);
            _sampleRowsHost = _device.AllocatePinned<SamplingKernels.SampleRow>(cap);
            _picked = _device.Allocate<int>(cap);
            _pickedHost = _device.AllocatePinned<int>(cap);
        }
        // One 256 KiB histogram per row sampled in parallel; more rows than that loop over the blocks.
        _sampleWs ??= _device.Allocate<int>(SamplingKernels.WorkspaceLength(SampleBlocks));
        host.CopyTo(_sampleRowsHost!.Span);
        _sampleRows.UploadAsync(_sampleRowsHost, n, _stream);
        _sampling.Sample(_stream, logits, n, Config.VocabSize, _sampleRows.Span, _sampleWs.Span, _picked!.Span);
        _picked.DownloadAsync(_pickedHost!, n, _stream);
        _stream.Synchronize();
        return _pickedHost!.Span[..n].ToArray();
    }

    /// <summary>Rows the sampling kernel runs in parallel (its workspace is 256 KiB per row).</summary>
    private const int SampleBlocks = 64;
    private SamplingKernels? _sampling;
    private DeviceBuffer<SamplingKernels.SampleRow>? _sampleRows;
    private PinnedBuffer<SamplingKernels.SampleRow>? _sampleRowsHost;
    private DeviceBuffer<int>? _sampleWs, _picked;
    private PinnedBuffer<int>? _pickedHost;

    /// <summary>bf16 bits → f32: the bits are the upper half, so widen and shift (vectorised; 4M values per 32-row step).</summary>
    private static void Widen(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        var d = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(dst);
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            int w = System.Numerics.Vector<ushort>.Count, h = w / 2;
            for (; i <= src.Length - w; i += w)
            {
                System.Numerics.Vector.Widen(new System.Numerics.Vector<ushort>(src.Slice(i)), out var lo, out var hi);
                (lo << 16).CopyTo(d.Slice(i));
                (hi << 16).CopyTo(d.Slice(i + h));
            }
        }
        for (; i < src.Length; i++) d[i] = (uint)src[i] << 16;
    }

    /// <summary>
    /// Enqueues one step; with <paramref name="download"/> waits and leaves the bf16 logits in the pinned host buffer.
    /// Without it the step stays in flight on <see cref="Stream"/> (benchmarks time it with events).
    /// Returns the device logits (rows, vocab) and the row count.
    /// </summary>
    public (DeviceSpan<ushort> Logits, int Rows) ForwardBf16(IReadOnlyList<ForwardChunk> batch, bool download)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var c = Config;
        var layout = KvLayout;
        int n = 0, outRows = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var ch = batch[i];
            if (ch.Tokens.Length == 0) throw new ArgumentException($"chunk {i} has no tokens", nameof(batch));
            if (ch.FirstPosition < 0) throw new ArgumentException($"chunk {i} starts at negative position {ch.FirstPosition}", nameof(batch));
            long last = ch.FirstPosition + ch.Tokens.Length - 1;
            if ((long)ch.PageTable.Length * layout.PageSize <= last)
                throw new ArgumentException($"chunk {i}: page table of {ch.PageTable.Length} pages does not cover position {last}", nameof(batch));
            if (last >= _contextLength)
                throw new ArgumentException($"chunk {i}: position {last} is beyond the runner's context length {_contextLength}", nameof(batch));
            foreach (int page in ch.PageTable.Span)
                if ((uint)page >= (uint)KvPages) throw new ArgumentException($"chunk {i}: page {page} is outside the pool of {KvPages} pages", nameof(batch));
            foreach (int id in ch.Tokens.Span)
                if ((uint)id >= (uint)c.VocabSize) throw new ArgumentException($"chunk {i}: token id {id} is outside the vocabulary (size {c.VocabSize})", nameof(batch));
            n += ch.Tokens.Length;
            outRows += ch.LogitsRowCount;
        }
        if (n == 0) return (default, 0);
        _device.MakeCurrent();
        EnsureTokens(n);
        if (!(UseFusedSwiGlu && n >= FusedSwiGluMinRows)) EnsureGateUpRows(n, tune: false);
        EnsureLogitsRows(outRows);

        int hid = c.HiddenSize, d = c.HeadDim, nh = c.NumHeads, nkv = c.NumKvHeads, inter = c.IntermediateSize, half = d / 2;
        int qDim = nh * d, kvDim = nkv * d, qkvDim = qDim + 2 * kvDim;
        float eps = c.RmsNormEps, scale = 1f / MathF.Sqrt(d);

        // Internal order: single-token chunks (decode) first, so their q rows are contiguous for one decode launch.
        var order = Enumerable.Range(0, batch.Count).Where(i => batch[i].Tokens.Length == 1)
            .Concat(Enumerable.Range(0, batch.Count).Where(i => batch[i].Tokens.Length > 1)).ToArray();
        int decodes = order.TakeWhile(i => batch[i].Tokens.Length == 1).Count();
        // A decode-only step can replay a CUDA graph captured for its batch size and context bucket: its kernel
        // parameters must not change between steps, so page tables get the stride of the bucket and the decode grid
        // covers the whole bucket (splits beyond a sequence's length exit at once).
        bool graph = UseDecodeGraphs && decodes == batch.Count && outRows == batch.Count;
        int stride = 1, maxContext = 1, longest = 1;
        if (graph)
        {
            foreach (var ch in batch) longest = Math.Max(longest, ch.FirstPosition + 1);
            maxContext = (int)Math.Min(_contextLength, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(longest, 64)));
            stride = (maxContext + layout.PageSize - 1) / layout.PageSize;
        }
        for (int j = 0; j < decodes; j++)
        {
            var ch = batch[order[j]];
            stride = Math.Max(stride, (ch.FirstPosition + layout.PageSize) / layout.PageSize);
            maxContext = Math.Max(maxContext, ch.FirstPosition + 1);
        }
        int prefillTables = 0;
        for (int j = decodes; j < order.Length; j++)
        {
            var ch = batch[order[j]];
            prefillTables += (ch.FirstPosition + ch.Tokens.Length - 1) / layout.PageSize + 1;
        }

        // Step inputs in one int buffer: ids, positions, KV slots, decode page tables (decodes × stride), decode
        // context lengths, prefill page tables, logits row index. (tokens and rows in internal order)
        long oIds = 0, oPos = n, oSlots = 2L * n, oTables = 3L * n, oLens = oTables + (long)decodes * stride,
            oPre = oLens + decodes, oRows = oPre + prefillTables, total = oRows + outRows;
        EnsureMeta(total);
        // The pinned stage of the previous step may still be on its way to the device (steps enqueued without a
        // download): wait for that copy before overwriting it.
        if (_stagedRecorded) _staged.Synchronize();
        var m = _metaHost.Span;
        var chunkRow = new int[batch.Count];
        var chunkTable = new long[batch.Count];
        int row = 0;
        long pre = oPre;
        for (int j = 0; j < order.Length; j++)
        {
            var ch = batch[order[j]];
            chunkRow[order[j]] = row;
            var toks = ch.Tokens.Span;
            var table = ch.PageTable.Span;
            for (int t = 0; t < toks.Length; t++)
            {
                int pos = ch.FirstPosition + t;
                m[(int)(oIds + row + t)] = toks[t];
                m[(int)(oPos + row + t)] = pos;
                m[(int)(oSlots + row + t)] = table[pos / layout.PageSize] * layout.PageSize + pos % layout.PageSize;
            }
            if (j < decodes)
            {
                for (int pg = 0; pg < stride; pg++)
                    m[(int)(oTables + (long)j * stride + pg)] = pg < table.Length ? table[pg] : 0;
                m[(int)(oLens + j)] = ch.FirstPosition + 1;
            }
            else
            {
                int need = (ch.FirstPosition + toks.Length - 1) / layout.PageSize + 1;
                chunkTable[order[j]] = pre;
                for (int pg = 0; pg < need; pg++) m[(int)(pre + pg)] = table[pg];
                pre += need;
            }
            row += toks.Length;
        }
        int sel = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var ch = batch[i];
            for (int t = 0; t < ch.LogitsRowCount; t++) m[(int)(oRows + sel++)] = chunkRow[i] + ch.FirstLogitsToken + t;
        }
        _meta.UploadAsync(_metaHost, total, _stream);
        var meta = _meta.Span;
        var ids = meta.Slice(oIds, n);
        var positions = meta.Slice(oPos, n);
        var slots = meta.Slice(oSlots, n);

        int tableRows = _contextLength;
        DeviceSpan<int> ropePositions = positions;
        DeviceSpan<float> cosSpan = _cos?.Span ?? default, sinSpan = _sin?.Span ?? default;
        if (_dynamicRope)
        {
            // Frequencies depend on each chunk's RopeSeqLen: one table row per step row, computed on the host;
            // the pinned stage holds n cos rows then n sin rows.
            var cs = _ropeHost.Span;
            row = 0;
            foreach (int i in order)
            {
                var ch = batch[i];
                var (inv, sc) = _ropeVariants.Frequencies(ch.RopeSeqLen);
                var pos = Enumerable.Range(ch.FirstPosition, ch.Tokens.Length).ToArray();
                RopeFrequencies.CosSin(inv, sc, pos, cs.Slice(row * half, pos.Length * half), cs.Slice((n + row) * half, pos.Length * half));
                row += pos.Length;
            }
            _ropeDyn!.UploadAsync(_ropeHost, 2L * n * half, _stream);
            cosSpan = _ropeDyn!.Span.Slice(0, (long)n * half);
            sinSpan = _ropeDyn!.Span.Slice((long)n * half, (long)n * half);
            tableRows = n;
            ropePositions = default;
        }
        _staged.Record(_stream);
        _stagedRecorded = true;

        int splitContext = maxContext;
        if (decodes > 0)
        {
            // key splits sized for the context at hand, not the graph's bucket (see AttentionKernels.Decode)
            splitContext = graph ? Math.Min(longest, maxContext) : maxContext;
            long need = AttentionKernels.DecodeWorkspaceLength(decodes, nh, nkv, d, maxContext, splitContext);
            if (_decodeWs.Length < need)
            {
                _stream.Synchronize();
                _decodeWs.Dispose();
                _decodeWs = _device.Allocate<float>(need);
                _generation++;
            }
        }
        var logitsSpan = _logits.Span.Slice(0, (long)outRows * c.VocabSize);
        bool fused = UseFusedQkv && d <= QkvRopeKernels.MaxHeadDim;
        if (fused) _qkvRope ??= new QkvRopeKernels(_compiler);
        // Norms and residual adds folded into the decode products; the logits product then reads the residual stream
        // directly when the step's logits rows are its rows in order (every decode step).
        bool fold = _foldNorms && _useGemv && n <= GemvKernels.MaxRows && hid % 8 == 0 && qDim % 8 == 0 && inter % 8 == 0;
        // Residual adds in the cuBLASLt epilogue (prefill-shaped steps; an o bias is added before the residual, so not then)
        bool gemmResidual = ResidualInGemm && !(_useGemv && n <= GemvKernels.MaxRows) && !_hasOBias;
        bool rowsInOrder = outRows == n;
        for (int k = 0; rowsInOrder && k < outRows; k++) rowsInOrder = m[(int)(oRows + k)] == k;
        // The last layer past its KV write on the logits rows alone, through the folded decode products (TrimLastLayer)
        bool trim = TrimLastLayer && !fold && !graph && outRows < n && outRows <= GemvKernels.MaxRows
            && _foldNorms && _useGemv && hid % 8 == 0 && qDim % 8 == 0 && inter % 8 == 0;
        if (trim) TrimmedSteps++;

        // The o product, post-attention norm, MLP and residual adds folded into gemv.cu launches, on `rows` rows of
        // attention output `att` and residual stream `res` (decode steps, and a trimmed last layer's logits rows).
        void FoldedTail(CudaStream st, CudaWeights.Layer L, DeviceSpan<ushort> att, DeviceSpan<ushort> res, int rows, StepProfile? p)
        {
            Gemv.Matmul(st, att, L.O, res, rows, qDim, hid, bias: L.OBias?.Span ?? default, residual: res);
            p?.Mark(st, "o projection");
            Gemv.SwiGlu(st, res, L.GateUp, _act, rows, hid, inter, norm: L.PostNorm, eps: eps);
            p?.Mark(st, "gate/up projection + swiglu");
            Gemv.Matmul(st, _act, L.Down, res, rows, inter, hid, residual: res);
            p?.Mark(st, "down projection");
        }

        // Every launch of the step; the step's inputs are already staged (uploads above, on the same stream).
        void Enqueue(CudaStream st)
        {
            var x = _x; var h = _h; var qkv = _qkv; var q = _q; var a = _a; var o = _o; var gu = _gu; var act = _act;
            var p = graph ? null : Profile;
            p?.Start(st);
            _ew.EmbeddingGather(st, _w.Embed, c.VocabSize, hid, ids, n, x);
            p?.Mark(st, "embedding");
            for (int li = 0; li < c.NumLayers; li++)
            {
                var L = _w.Layers[li];
                bool prologueDone = false;
                if (fold && fused && L.QNorm is null && Gemv.SupportsQkvRope(d))
                {
                    // the previous layer's down projection already added its output into x; norm, product, bias, RoPE
                    // and the KV write in one launch
                    Gemv.QkvRope(st, x, L.InputNorm, eps, L.Qkv, L.QkvBias?.Span ?? default, n, hid, nh, nkv, d,
                        cosSpan, sinSpan, tableRows, ropePositions, slots, q, _pool, layout, li);
                    p?.Mark(st, "qkv projection + rope, kv write");
                    prologueDone = true;
                }
                else if (fold)
                {
                    Gemv.Matmul(st, x, L.Qkv, qkv, n, hid, qkvDim, norm: L.InputNorm, eps: eps);
                    p?.Mark(st, "qkv projection");
                }
                else
                {
                    if (li == 0 || gemmResidual) _ew.RmsNorm(st, x, L.InputNorm, h, n, hid, eps);
                    else _ew.AddRmsNorm(st, x, o, L.InputNorm, h, n, hid, eps);
                    p?.Mark(st, "residual + norm");
                    Project(st, h, L.Qkv, qkv, n, hid, qkvDim);
                    p?.Mark(st, "qkv projection");
                }
                if (!prologueDone)
                {
                    if (fused)
                    {
                        // One launch: bias, q/k norm, RoPE, q into (tokens, heads, headDim), k and v into the pool.
                        _qkvRope!.Apply(st, qkv, n, qkvDim, nh, nkv, d, L.QkvBias?.Span ?? default, L.QNorm?.Span ?? default, L.KNorm?.Span ?? default, eps,
                            cosSpan, sinSpan, tableRows, ropePositions, slots, q, _pool, layout, li);
                    }
                    else
                    {
                        if (L.QkvBias is { } qb) _ek.BiasAdd(st, qkv, qb, n, qkvDim, qkvDim);
                        if (L.QNorm is { } qn) _ek.QkNorm(st, qkv, n, qkvDim, nh, nkv, d, qn, L.KNorm!, eps);
                        _ew.Rope(st, qkv, n, nh, d, qkvDim, cosSpan, sinSpan, tableRows, ropePositions);
                        _ew.Rope(st, qkv.Slice(qDim), n, nkv, d, qkvDim, cosSpan, sinSpan, tableRows, ropePositions);
                        _ek.KvWrite(st, qkv, qkvDim, qDim, qDim + kvDim, n, _pool, layout, li, slots);
                        // q out of the fused rows into (tokens, heads, headDim), as the attention kernels read it.
                        _ek.GatherRows(st, qkv, qkvDim, _identity.Slice(0, n), n, qDim, q, qDim);
                    }
                    p?.Mark(st, "qkv bias/norm, rope, kv write");
                }
                bool trimHere = trim && li == c.NumLayers - 1;
                if (trimHere && outRows == 0) return; // every row's K and V are written; no row needs the rest
                if (decodes > 0)
                    _attn.Decode(st, q, decodes, nh, _pool, layout, li, meta.Slice(oTables, (long)decodes * stride), stride,
                        meta.Slice(oLens, decodes), maxContext, scale, _decodeWs, a, splitContext);
                if (decodes > 0) p?.Mark(st, "decode attention");
                for (int j = decodes; j < order.Length; j++)
                {
                    var ch = batch[order[j]];
                    int r0 = chunkRow[order[j]], len = ch.Tokens.Length;
                    int need = (ch.FirstPosition + len - 1) / layout.PageSize + 1;
                    if (trimHere && ch.Rows != LogitsRows.All)
                    {
                        if (ch.Rows == LogitsRows.None) continue;
                        r0 += len - 1; // the chunk's last row only, over every key before it
                        _attn.Prefill(st, q.Slice((long)r0 * qDim, qDim), 1, nh, ch.FirstPosition + len - 1, _pool, layout, li,
                            meta.Slice(chunkTable[order[j]], need), scale, a.Slice((long)r0 * qDim, qDim));
                        continue;
                    }
                    _attn.Prefill(st, q.Slice((long)r0 * qDim, (long)len * qDim), len, nh, ch.FirstPosition, _pool, layout, li,
                        meta.Slice(chunkTable[order[j]], need), scale, a.Slice((long)r0 * qDim, (long)len * qDim));
                }
                if (order.Length > decodes) p?.Mark(st, "prefill attention");
                if (trimHere)
                {
                    // The logits rows of the attention output (into q: its rows are read) and of the residual stream,
                    // in the logits' order; the rest of the model on those rows alone.
                    var rowsSel = meta.Slice(oRows, outRows);
                    var att = q.Slice(0, (long)outRows * qDim);
                    var res = _sel.Span.Slice(0, (long)outRows * hid);
                    _ek.GatherRows(st, a, qDim, rowsSel, outRows, qDim, att, qDim);
                    _ek.GatherRows(st, x, hid, rowsSel, outRows, hid, res, hid);
                    p?.Mark(st, "logits rows");
                    FoldedTail(st, L, att, res, outRows, p);
                    Gemv.Matmul(st, res, _w.LmHead, logitsSpan, outRows, hid, c.VocabSize, norm: _w.Norm, eps: eps);
                    p?.Mark(st, "logits");
                    return;
                }
                if (fold)
                {
                    FoldedTail(st, L, a, x, n, p);
                    continue;
                }
                if (gemmResidual)
                {
                    Product(st, a, L.O, x, n, qDim, hid, accumulate: true);
                    p?.Mark(st, "o projection");
                    _ew.RmsNorm(st, x, L.PostNorm, h, n, hid, eps);
                }
                else
                {
                    Project(st, a, L.O, o, n, qDim, hid);
                    if (L.OBias is { } ob) _ek.BiasAdd(st, o, ob, n, hid, hid);
                    p?.Mark(st, "o projection");
                    _ew.AddRmsNorm(st, x, o, L.PostNorm, h, n, hid, eps);
                }
                p?.Mark(st, "residual + norm");
                if (UseFusedSwiGlu && n >= FusedSwiGluMinRows)
                {
                    _gemm!.SwiGlu(st, h, L.GateUp, act, n, hid, inter);
                    p?.Mark(st, "gate/up projection + swiglu");
                }
                else if (!TryGateUpSwiGlu(st, h, L.GateUp, act, n, hid, inter))
                {
                    Product(st, h, L.GateUp, gu, n, hid, 2 * inter);
                    p?.Mark(st, "gate/up projection");
                    _ew.SwiGlu(st, gu, gu.Slice(inter), act, n, inter, 2 * inter, inter);
                    p?.Mark(st, "swiglu");
                }
                else p?.Mark(st, "gate/up projection + swiglu");
                if (gemmResidual) Product(st, act, L.Down, x, n, inter, hid, accumulate: true);
                else Project(st, act, L.Down, o, n, inter, hid);
                p?.Mark(st, "down projection");
            }
            if (outRows == 0) return;
            if (fold && rowsInOrder)
            {
                Gemv.Matmul(st, x, _w.LmHead, logitsSpan, n, hid, c.VocabSize, norm: _w.Norm, eps: eps);
                p?.Mark(st, "logits");
                return;
            }
            if (fold || gemmResidual) _ew.RmsNorm(st, x, _w.Norm, h, n, hid, eps);
            else _ew.AddRmsNorm(st, x, o, _w.Norm, h, n, hid, eps);
            _ek.GatherRows(st, h, hid, meta.Slice(oRows, outRows), outRows, hid, _sel, hid);
            p?.Mark(st, "final norm");
            Project(st, _sel.Span.Slice(0, (long)outRows * hid), _w.LmHead, logitsSpan, outRows, hid, c.VocabSize);
            p?.Mark(st, "logits");
        }

        if (graph)
        {
            if (!_decodeGraphs.TryGetValue((n, maxContext), out var g) || g.Generation != _generation)
            {
                g.Graph?.Dispose();
                g = (CudaGraph.Capture(_stream, Enqueue), _generation);
                _decodeGraphs[(n, maxContext)] = g;
            }
            g.Graph.Launch(_stream);
        }
        else Enqueue(_stream);
        if (outRows == 0)
        {
            if (download) _stream.Synchronize();
            return (default, 0);
        }
        var logits = logitsSpan;
        if (download)
        {
            _logits.DownloadAsync(_logitsHost, logits.Length, _stream);
            _stream.Synchronize();
        }
        return (logits, outRows);
    }

    private DeviceBuffer<float>? _ropeDyn;  // dynamic RoPE: (2, capacity, headDim/2) cos rows then sin rows

    /// <summary>
    /// Tunes the prefill's qkv and gate/up products now (<see cref="CublasLtMatmul.Autotune"/>: cuBLASLt's candidates
    /// timed hot, about half a second per shape), not inside the first long request: at the largest step's row count,
    /// on layer 0's weights and the activation buffers filled with random values. Later steps of that (k, n) reuse the
    /// choice. Skipped for steps under AutotuneMinRows rows or products under AutotuneMinFlops (small models).
    /// </summary>
    private void TunePrefillProducts(int rows, bool qkv = true)
    {
        if (!_mm.Autotune || rows < _mm.AutotuneMinRows || Config.NumLayers == 0) return;
        var c = Config;
        int hid = c.HiddenSize, qkvDim = (c.NumHeads + 2 * c.NumKvHeads) * c.HeadDim, inter = c.IntermediateSize;
        var L = _w.Layers[0];
        _ek.RandomInit(_stream, _h.Slice(0, (long)rows * hid), 17, 1f, 0f);
        if (qkv) _mm.Bf16(_stream, _h, L.Qkv, _qkv, rows, hid, qkvDim);
        if (rows <= GateUpRows) _mm.Bf16(_stream, _h, L.GateUp, _gu, rows, hid, 2 * inter); // else the fused GEMM serves these rows
        _stream.Synchronize();
    }

    /// <summary>
    /// Rows a cuBLASLt product of <paramref name="rows"/> rows runs with: rounded up to 16 up to 64 rows, to 32 up to 512,
    /// then to 64. A step's row count is its batch's tokens, so a server sees every count; each new one cost a plan and,
    /// where cuBLASLt picks a kernel not yet run, milliseconds of first launch (an H200 measured a device-hit turn of 14
    /// new tokens on a 4K session at 20.5 ms the first time, 6.4 ms the next). Buckets bound the plans to about 140 per product for
    /// 8K-token steps, all made when the runner starts (<see cref="PrepareProducts"/>). The extra rows cost nothing that
    /// matters: below ~300 rows the products stream the weights (bandwidth-bound), and above it cuBLASLt's tiles are 64
    /// or 128 rows anyway. Row i of a product reads only row i of its input, so the padding rows (scratch past the step's
    /// tokens) never reach the step's rows.
    /// </summary>
    internal static int MatmulBucket(int rows) =>
        rows <= 64 ? (rows + 15) / 16 * 16 : rows <= 512 ? (rows + 31) / 32 * 32 : (rows + 63) / 64 * 64;

    /// <summary>The rows a product of x (k columns) into y (n columns) runs with: <see cref="MatmulBucket"/>, within what both buffers hold.</summary>
    private static int PaddedRows(int rows, DeviceSpan<ushort> x, int k, DeviceSpan<ushort> y, int n) =>
        Math.Max(rows, (int)Math.Min(MatmulBucket(rows), Math.Min(x.Length / k, y.Length / n)));

    /// <summary>y = x wᵀ (or y += with <paramref name="accumulate"/>) through cuBLASLt over the bucketed row count.</summary>
    private void Product(CudaStream st, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate = false) =>
        _mm.Bf16(st, x, w, y, PadProductRows ? PaddedRows(rows, x, k, y, n) : rows, k, n, accumulate);

    /// <summary>Whether products run over <see cref="MatmulBucket"/> rows (default true; tests compare without).</summary>
    internal bool PadProductRows { get; set; } = true;

    /// <summary>cuBLASLt plans made when the runner started (<see cref="PrepareProducts"/>).</summary>
    public int PreparedProductPlans { get; private set; }

    /// <summary>
    /// Makes the cuBLASLt plan of every row bucket a step of this runner can run, for the qkv, o, gate/up (the steps under
    /// <see cref="FusedSwiGluMinRows"/> when the fused GEMM serves the rest) and down products, on layer 0's weights and
    /// the activation buffers, and runs each algorithm not yet run once (<see cref="CublasLtMatmul.Prepare"/>), so no
    /// request pays a plan or a kernel's first launch. Returns the number of plans.
    /// </summary>
    private int PrepareProducts()
    {
        if (Config.NumLayers == 0) return 0;
        var c = Config;
        var L = _w.Layers[0];
        int hid = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, qkvDim = qDim + 2 * c.NumKvHeads * c.HeadDim, inter = c.IntermediateSize;
        bool residual = ResidualInGemm && !_hasOBias;
        bool fusedGateUp = UseFusedSwiGlu;
        var shapes = new (DeviceSpan<ushort> X, DeviceSpan<ushort> W, DeviceSpan<ushort> Y, int K, int N, bool Acc, int MaxRows)[]
        {
            (_h, L.Qkv, _qkv, hid, qkvDim, false, _tokenCapacity),
            (_a, L.O, residual ? _x : _o, qDim, hid, residual, _tokenCapacity),
            (_h, L.GateUp, _gu, hid, 2 * inter, false, fusedGateUp ? Math.Min(_tokenCapacity, FusedSwiGluMinRows - 1) : _tokenCapacity),
            (_act, L.Down, residual ? _x : _o, inter, hid, residual, _tokenCapacity),
        };
        int plans = 0;
        foreach (var sh in shapes)
        {
            var rows = new SortedSet<int>();
            for (int r = 1; r <= sh.MaxRows; r++) rows.Add(PaddedRows(r, sh.X, sh.K, sh.Y, sh.N));
            foreach (int r in rows)
            {
                _mm.Prepare(_stream, sh.X, sh.W, sh.Y, r, sh.K, sh.N, sh.Acc);
                plans++;
            }
        }
        _stream.Synchronize();
        return plans;
    }

    /// <summary>Gives back the gate/up buffer's growth (<see cref="EnsureGateUpRows"/>): the arena's share serves again.</summary>
    private void ReleaseGateUpRows()
    {
        if (_guOwn is null) return;
        _stream.Synchronize();
        _guOwn.Dispose();
        _guOwn = null;
        _gu = _guArena;
        GateUpRows = (int)(_guArena.Length / (2L * Config.IntermediateSize));
        _generation++;
    }

    /// <summary>
    /// Makes the gate/up buffer hold <paramref name="rows"/> rows (a buffer of its own past the arena's share) and, with
    /// <paramref name="tune"/>, tunes the gate/up product at that row count as <see cref="TunePrefillProducts"/> does at start.
    /// </summary>
    private void EnsureGateUpRows(int rows, bool tune)
    {
        if (rows <= GateUpRows) return;
        ReleaseGateUpRows(); // if the allocation below fails, the arena's share stays in place
        _guOwn = _device.Allocate<ushort>(rows * 2L * Config.IntermediateSize);
        _gu = _guOwn.Span;
        GateUpRows = rows;
        _generation++;
        if (tune) TunePrefillProducts(rows, qkv: false);
    }

    private void EnsureTokens(int n)
    {
        if (n <= _tokenCapacity) return;
        _stream.Synchronize();
        var c = Config;
        long hid = c.HiddenSize, qDim = (long)c.NumHeads * c.HeadDim, kvDim = (long)c.NumKvHeads * c.HeadDim;
        _tokenArena?.Dispose();
        _tokenArena = null;
        long inter = c.IntermediateSize;
        // gate/up rows: only the steps the unfused path takes (see GateUpRows)
        int guRows = UseFusedSwiGlu ? Math.Min(n, FusedSwiGluMinRows - 1) : n;
        _guOwn?.Dispose();
        _guOwn = null;
        // Bytes of x, h, qkv, q, a, o, gate_up, act (bf16) and the identity rows (int), in the order taken below.
        long[] bytes = [n * hid * 2, n * hid * 2, n * (qDim + 2 * kvDim) * 2, n * qDim * 2, n * qDim * 2, n * hid * 2, guRows * 2 * inter * 2, n * inter * 2, n * 4L];
        var arena = new DeviceArena(_device, DeviceArena.Plan(bytes).Total);
        _tokenArena = arena;
        _x = arena.Take<ushort>(n * hid);
        _h = arena.Take<ushort>(n * hid);
        _qkv = arena.Take<ushort>(n * (qDim + 2 * kvDim));
        _q = arena.Take<ushort>(n * qDim);
        _a = arena.Take<ushort>(n * qDim);
        _o = arena.Take<ushort>(n * hid);
        _gu = _guArena = arena.Take<ushort>(guRows * 2 * inter);
        GateUpRows = guRows;
        _act = arena.Take<ushort>(n * inter);
        _generation++;
        _identity = arena.Take<int>(n);
        arena.Upload(_identity, Enumerable.Range(0, n).ToArray());
        _tokenCapacity = n;
        if (_dynamicRope)
        {
            int half = c.HeadDim / 2;
            _ropeHost?.Dispose();
            _ropeDyn?.Dispose();
            _ropeHost = _device.AllocatePinned<float>(2L * n * half);
            _ropeDyn = _device.Allocate<float>(2L * n * half);
        }
    }

    private void EnsureLogitsRows(int rows)
    {
        if (_logits is not null && _logits.Length >= (long)rows * Config.VocabSize) return;
        _stream.Synchronize();
        _sel?.Dispose();
        _logits?.Dispose();
        _logitsHost?.Dispose();
        rows = Math.Max(rows, 1);
        _generation++;
        _sel = _device.Allocate<ushort>((long)rows * Config.HiddenSize);
        _logits = _device.Allocate<ushort>((long)rows * Config.VocabSize);
        _logitsHost = _device.AllocatePinned<ushort>((long)rows * Config.VocabSize);
    }

    private void EnsureMeta(long count)
    {
        if (_meta is not null && _meta.Length >= count) return;
        _stream.Synchronize();
        _meta?.Dispose();
        _metaHost?.Dispose();
        long size = Math.Max(count, 4096);
        _generation++;
        _meta = _device.Allocate<int>(size);
        _metaHost = _device.AllocatePinned<int>(size);
    }

    public void Dispose()
    {
        try { _stream.Synchronize(); } catch (Exception) { /* a faulted context: free what we can */ }
        foreach (var b in new IDisposable?[] { _tokenArena, _guOwn, _sel, _logits, _decodeWs, _meta, _ropeDyn, _argmax, _sampleRows, _sampleWs, _picked, _cos, _sin, _pool, _mm })
            b?.Dispose();
        foreach (var b in new IDisposable?[] { _metaHost, _logitsHost, _ropeHost, _argmaxHost, _sampleRowsHost, _pickedHost }) b?.Dispose();
        foreach (var (g, _) in _decodeGraphs.Values) g.Dispose();
        _staged.Dispose();
        _stream.Dispose();
        _powerMeter?.Dispose();
        if (_ownsWeights) _w.Dispose();
        if (_ownsDevice) _device.Dispose();
    }
}
