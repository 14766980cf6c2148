using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Actors.Engine.Model;

/// <summary>
/// RoPE frequencies of one model by sequence length, cached: one entry for every scaling type except dynamic NTK,
/// whose frequencies depend on the length. Shared by the CPU and CUDA backends so both pick identical tables.
/// </summary>
public sealed class RopeTable(ModelConfig config)
{
    private readonly Dictionary<int, (float[] InvFreq, float Scaling, string Variant)> _cache = [];

    public ModelConfig Config { get; } = config ?? throw new ArgumentNullException(nameof(config));

    public bool IsDynamic { get; } = string.Equals(config.RopeScaling?.Type, "dynamic", StringComparison.OrdinalIgnoreCase);

    /// <summary>Inverse frequencies (headDim/2) and attention scaling for a sequence of <paramref name="seqLen"/> tokens.</summary>
    public (float[] InvFreq, float Scaling) Frequencies(int seqLen)
    {
        var e = Get(seqLen);
        return (e.InvFreq, e.Scaling);
    }

    /// <summary>Empty unless the frequencies depend on the length (dynamic NTK); else a digest of them.</summary>
    public string Variant(int seqLen) => Get(seqLen).Variant;

    private (float[] InvFreq, float Scaling, string Variant) Get(int seqLen)
    {
        int key = IsDynamic ? Math.Max(seqLen, 1) : -1;
        lock (_cache)
        {
            if (_cache.TryGetValue(key, out var entry)) return entry;
            var (invFreq, scaling) = RopeFrequencies.Compute(Config, IsDynamic ? key : Config.MaxPositionEmbeddings);
            string variant = "";
            if (IsDynamic)
            {
                var bytes = new byte[invFreq.Length * 4 + 4];
                MemoryMarshal.AsBytes(invFreq.AsSpan()).CopyTo(bytes);
                BitConverter.TryWriteBytes(bytes.AsSpan(invFreq.Length * 4), scaling);
                variant = "rope:" + Convert.ToHexString(SHA256.HashData(bytes), 0, 16);
            }
            entry = (invFreq, scaling, variant);
            _cache[key] = entry;
            return entry;
        }
    }
}
