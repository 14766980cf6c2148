using System.Runtime.InteropServices;
using Actors.Engine.Model;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Cuda;

/// <summary>
/// A model's weights on the device as bf16, laid out for the runner: per layer a fused qkv matrix (q rows, then k,
/// then v: (qDim + 2 kvDim, hidden)) and a fused gate_up matrix ((2 intermediate, hidden): gate rows then up rows),
/// so each is one cuBLASLt call. Loaded from an <see cref="IWeightSource"/> (safetensors BF16 tensors uploaded as
/// stored, other dtypes converted on the host) or generated randomly on the device.
/// </summary>
public sealed class CudaWeights : IDisposable
{
    public sealed class Layer : IDisposable
    {
        internal DeviceBuffer<ushort> InputNorm = null!, PostNorm = null!, Qkv = null!, O = null!, GateUp = null!, Down = null!;
        internal DeviceBuffer<ushort>? QkvBias, OBias, QNorm, KNorm;

        public void Dispose()
        {
            foreach (var b in new[] { InputNorm, PostNorm, Qkv, O, GateUp, Down, QkvBias, OBias, QNorm, KNorm }) b?.Dispose();
        }
    }

    private CudaWeights(ModelConfig config) => Config = config;

    public ModelConfig Config { get; }
    internal DeviceBuffer<ushort> Embed { get; private set; } = null!;   // (vocab, hidden)
    internal DeviceBuffer<ushort> Norm { get; private set; } = null!;    // (hidden)
    internal DeviceBuffer<ushort> LmHead { get; private set; } = null!;  // (vocab, hidden); Embed when tied
    internal Layer[] Layers { get; private set; } = [];

    /// <summary>Bytes of device memory the weights take.</summary>
    public long Bytes { get; private set; }

    /// <summary>Uploads every tensor of <paramref name="source"/> the model needs (shapes checked against the config).</summary>
    public static CudaWeights Load(CudaDevice device, ModelConfig config, IWeightSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return Build(device, config, (buffer, offset, name, shape) => Upload(buffer, offset, source, name, shape));
    }

    /// <summary>
    /// Random weights generated on the device (uniform with std 0.02 as transformers' initializer_range; norms 1,
    /// biases 0): full-size shapes for benchmarks without moving gigabytes from the host.
    /// </summary>
    public static CudaWeights Random(CudaDevice device, ModelConfig config, EngineKernels kernels, ulong seed = 1)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        using var stream = device.CreateStream();
        ulong n = seed;
        var w = Build(device, config, (buffer, offset, name, shape) =>
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            bool norm = name.EndsWith("norm.weight", StringComparison.Ordinal);
            bool bias = name.EndsWith(".bias", StringComparison.Ordinal);
            float scale = norm || bias ? 0f : 0.02f * MathF.Sqrt(3f);
            kernels.RandomInit(stream, buffer.Span.Slice(offset, count), n++ * 0x1000003UL, scale, norm ? 1f : 0f);
        });
        stream.Synchronize();
        return w;
    }

    private delegate void Fill(DeviceBuffer<ushort> buffer, long offset, string name, long[] shape);

    private static CudaWeights Build(CudaDevice device, ModelConfig c, Fill fill)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(c);
        var w = new CudaWeights(c);
        long h = c.HiddenSize, inter = c.IntermediateSize, d = c.HeadDim;
        long qDim = c.NumHeads * d, kvDim = c.NumKvHeads * d;
        try
        {
            DeviceBuffer<ushort> One(string name, params long[] shape)
            {
                var b = device.Allocate<ushort>(shape.Aggregate(1L, (a, x) => a * x));
                w.Bytes += b.Bytes;
                try { fill(b, 0, name, shape); }
                catch { b.Dispose(); throw; }
                return b;
            }
            // Rows of several tensors stacked in one (rows, cols) matrix.
            DeviceBuffer<ushort> Stack(long cols, params (string Name, long Rows)[] parts)
            {
                var b = device.Allocate<ushort>(parts.Sum(p => p.Rows) * Math.Max(cols, 1));
                w.Bytes += b.Bytes;
                try
                {
                    long offset = 0;
                    foreach (var (name, rows) in parts)
                    {
                        fill(b, offset, name, cols == 0 ? [rows] : [rows, cols]);
                        offset += rows * Math.Max(cols, 1);
                    }
                }
                catch { b.Dispose(); throw; }
                return b;
            }
            w.Embed = One("model.embed_tokens.weight", c.VocabSize, h);
            w.Norm = One("model.norm.weight", h);
            w.LmHead = c.TieWordEmbeddings ? w.Embed : One("lm_head.weight", c.VocabSize, h);
            w.Layers = new Layer[c.NumLayers];
            for (int i = 0; i < c.NumLayers; i++)
            {
                string p = $"model.layers.{i}.";
                var L = w.Layers[i] = new Layer();
                L.InputNorm = One(p + "input_layernorm.weight", h);
                L.PostNorm = One(p + "post_attention_layernorm.weight", h);
                L.Qkv = Stack(h, (p + "self_attn.q_proj.weight", qDim), (p + "self_attn.k_proj.weight", kvDim), (p + "self_attn.v_proj.weight", kvDim));
                if (c.AttentionBias)
                    L.QkvBias = Stack(0, (p + "self_attn.q_proj.bias", qDim), (p + "self_attn.k_proj.bias", kvDim), (p + "self_attn.v_proj.bias", kvDim));
                L.O = One(p + "self_attn.o_proj.weight", h, qDim);
                if (c.OutputBias) L.OBias = One(p + "self_attn.o_proj.bias", h);
                if (c.QkNorm)
                {
                    L.QNorm = One(p + "self_attn.q_norm.weight", d);
                    L.KNorm = One(p + "self_attn.k_norm.weight", d);
                }
                L.GateUp = Stack(h, (p + "mlp.gate_proj.weight", inter), (p + "mlp.up_proj.weight", inter));
                L.Down = One(p + "mlp.down_proj.weight", h, inter);
            }
            return w;
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    private static void Upload(DeviceBuffer<ushort> buffer, long offset, IWeightSource source, string name, long[] shape)
    {
        if (source is SafeTensorsModel st && st.Contains(name))
        {
            var info = st.Info(name);
            if (info.DType == SafeTensorsDType.BF16)
            {
                if (!info.Shape.SequenceEqual(shape))
                    throw new ModelFormatException(st.FileOf(name).Path, $"tensor '{name}'", $"shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", shape)}]");
                // Stored bf16 goes up as is: no rounding, no f32 copy of the whole tensor on the host.
                buffer.Upload(MemoryMarshal.Cast<byte, ushort>(st.FileOf(name).RawBytes(name)), offset);
                return;
            }
        }
        var f32 = source.ReadFloat32(name, shape);
        buffer.Upload(Bf16.FromSingles(f32), offset);
    }

    public void Dispose()
    {
        foreach (var l in Layers) l?.Dispose();
        if (!ReferenceEquals(LmHead, Embed)) LmHead?.Dispose();
        Embed?.Dispose();
        Norm?.Dispose();
    }
}
