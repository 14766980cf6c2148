namespace Actors.Engine.Model;

/// <summary>Element types this engine reads from safetensors files (the names are the header's `dtype` strings).</summary>
public enum SafeTensorsDType { F32, F16, BF16 }

public static class SafeTensorsDTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.F32 => 4,
        SafeTensorsDType.F16 => 2,
        SafeTensorsDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The header spelling: "F32", "F16", "BF16".</summary>
    public static string HeaderName(this SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.F32 => "F32",
        SafeTensorsDType.F16 => "F16",
        SafeTensorsDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };
}

/// <summary>One tensor's header entry. Begin/End are byte offsets into the data region (after the header).</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorsDType DType, IReadOnlyList<long> Shape, long Begin, long End)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    public long ByteLength => End - Begin;
}
