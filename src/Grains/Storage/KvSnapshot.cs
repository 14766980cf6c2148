using System.Text;

namespace Actors.Grains.Storage;

/// <summary>Element type of the K/V values in a snapshot's pages.</summary>
public enum KvDType : ushort
{
    F32 = 1,
    BF16 = 2,
}

/// <summary>
/// What a snapshot holds: the identity of the model and RoPE profile that produced the K/V values, the page
/// geometry (the engine's KvLayout: page → layer → { K (slot, kvHead, headDim), V (slot, kvHead, headDim) }),
/// and the token ids whose K/V the pages hold (tokens i*PageSize .. i*PageSize+PageSize-1 live in page i; the
/// slots of the last page past <see cref="TokenIds"/>.Count are padding).
/// </summary>
public sealed record KvSnapshotHeader(
    string ModelId,
    string RopeProfile,
    KvDType DType,
    int PageSize,
    int LayerCount,
    int KvHeads,
    int HeadDim,
    IReadOnlyList<int> TokenIds)
{
    public int TokenCount => TokenIds.Count;

    /// <summary>ceil(TokenCount / PageSize): every token lives in exactly one page.</summary>
    public int PageCount => (TokenCount + PageSize - 1) / PageSize;

    public int ElementSize => DType == KvDType.F32 ? 4 : 2;

    /// <summary>Bytes of one page block: LayerCount * 2 (K, V) * PageSize * KvHeads * HeadDim * ElementSize.</summary>
    public long PageBytes => (long)LayerCount * 2 * PageSize * KvHeads * HeadDim * ElementSize;

    /// <summary>Throws ArgumentException naming the field when the header is outside what the format allows.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(DType)) throw new ArgumentException($"DType {(ushort)DType} is not f32 (1) or bf16 (2)");
        KvSnapshotFormat.CheckString(nameof(ModelId), ModelId);
        KvSnapshotFormat.CheckString(nameof(RopeProfile), RopeProfile);
        Check(nameof(PageSize), PageSize, KvSnapshotFormat.MaxPageSize);
        Check(nameof(LayerCount), LayerCount, KvSnapshotFormat.MaxLayers);
        Check(nameof(KvHeads), KvHeads, KvSnapshotFormat.MaxKvHeads);
        Check(nameof(HeadDim), HeadDim, KvSnapshotFormat.MaxHeadDim);
        ArgumentNullException.ThrowIfNull(TokenIds);
        if (TokenCount is < 1 or > KvSnapshotFormat.MaxTokens) throw new ArgumentException($"TokenIds has {TokenCount} tokens; a snapshot holds 1..{KvSnapshotFormat.MaxTokens}");
        if (PageBytes > KvSnapshotFormat.MaxPageBytes) throw new ArgumentException($"a page of {PageBytes} bytes is over the format limit of {KvSnapshotFormat.MaxPageBytes}");

        static void Check(string field, int value, int max)
        {
            if (value < 1 || value > max) throw new ArgumentException($"{field} = {value} is outside 1..{max}");
        }
    }

    /// <summary>Bytes of the whole snapshot stream with this header.</summary>
    public long TotalBytes => KvSnapshotFormat.HeaderLength(this) + KvSnapshotFormat.HeaderChecksumSize + PageCount * PageBytes + KvSnapshotFormat.TrailerSize;
}

/// <summary>What a caller needs a snapshot to match before it may use its pages; null shape fields are not checked.</summary>
public sealed record KvSnapshotExpectation(string ModelId, string RopeProfile)
{
    public KvDType? DType { get; init; }
    public int? PageSize { get; init; }
    public int? LayerCount { get; init; }
    public int? KvHeads { get; init; }
    public int? HeadDim { get; init; }
}

/// <summary>
/// Layout of a KV snapshot stream, version 1 (all integers little-endian):
/// <code>
/// offset  size  field
///  0      8     magic "ACTKVSNP"
///  8      2     format version (1)
/// 10      2     dtype (1 = f32, 2 = bf16)
/// 12      4     header length H (bytes from offset 0 to the end of the token ids)
/// 16      4     page size P (tokens per page)
/// 20      4     layer count L
/// 24      4     kv heads
/// 28      4     head dim
/// 32      4     token count T
/// 36      4     page count N = ceil(T / P)
/// 40      8     page bytes B = L * 2 * P * kvHeads * headDim * sizeof(dtype)
/// 48      2+m   model id (u16 byte length, UTF-8)
/// ..      2+r   RoPE profile (u16 byte length, UTF-8)
/// ..      4*T   token ids (i32)
/// H       8     XxHash3-64 of bytes [0, H): the header is trusted before any page is read
/// H+8     N*B   pages, one contiguous block each (page → layer → K (P, kvHeads, headDim), V (same))
/// end-16  16    XxHash128 of every byte before it
/// </code>
/// </summary>
public static class KvSnapshotFormat
{
    public static ReadOnlySpan<byte> Magic => "ACTKVSNP"u8;
    public const ushort Version = 1;
    public const int FixedHeaderSize = 48;
    public const int HeaderChecksumSize = 8;
    public const int TrailerSize = 16;
    public const int MaxStringBytes = 1024;
    public const int MaxPageSize = 1 << 16;
    public const int MaxLayers = 1024;
    public const int MaxKvHeads = 1024;
    public const int MaxHeadDim = 4096;
    public const int MaxTokens = 1 << 22;          // 4M tokens: 16 MiB of token ids at most
    public const long MaxPageBytes = 1L << 30;     // a page block must fit one buffer

    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    internal static long HeaderLength(KvSnapshotHeader h) =>
        FixedHeaderSize + 2 + StrictUtf8.GetByteCount(h.ModelId) + 2 + StrictUtf8.GetByteCount(h.RopeProfile) + 4L * h.TokenCount;

    internal static void CheckString(string field, string? value)
    {
        if (string.IsNullOrEmpty(value)) throw new ArgumentException($"{field} is empty");
        int n;
        try { n = StrictUtf8.GetByteCount(value); }
        catch (EncoderFallbackException e) { throw new ArgumentException($"{field} is not valid Unicode: {e.Message}", e); }
        if (n > MaxStringBytes) throw new ArgumentException($"{field} is {n} UTF-8 bytes, over the limit of {MaxStringBytes}");
    }
}

/// <summary>Base of snapshot errors: the snapshot cannot be used and the session should recompute.</summary>
public abstract class KvSnapshotException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The bytes are not a valid snapshot (bad magic/version, truncated, checksum mismatch, sizes that disagree).</summary>
public sealed class KvSnapshotFormatException(string source, string field, long offset, string problem)
    : KvSnapshotException($"KV snapshot {source}: {field} at offset {offset}: {problem}")
{
    public string SnapshotName { get; } = source;
    public string Field { get; } = field;
    public long Offset { get; } = offset;
}

/// <summary>A valid snapshot of some other model, RoPE profile or page geometry than the caller expects.</summary>
public sealed class SnapshotMismatchException(string source, string field, string expected, string actual)
    : KvSnapshotException($"KV snapshot {source}: {field} is '{actual}', expected '{expected}'")
{
    public string SnapshotName { get; } = source;
    public string Field { get; } = field;
    public string Expected { get; } = expected;
    public string Actual { get; } = actual;
}
