using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Actors.Engine.Model;

/// <summary>
/// Conversions between the stored weight dtypes and f32. bf16 is the top half of an f32, so widening is a
/// 16-bit shift (exact); narrowing rounds to nearest, ties to even, and keeps NaN a (quiet) NaN.
/// f16 uses System.Half, whose conversions are exact widening and round-to-nearest-even narrowing.
/// </summary>
public static class DTypeConversion
{
    /// <summary>Tensors at least this large are converted on several threads (reads are memory-bound).</summary>
    const long ParallelThreshold = 1 << 21;
    const int Chunk = 1 << 18;

    /// <summary>bf16 bits to f32: bits &lt;&lt; 16. Vector256/128 ladder, then a scalar tail.</summary>
    // AggressiveOptimization: weights are converted once, in few calls of up to a gigabyte each, so tiered
    // compilation would never get to replace the unoptimized first version.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Bf16ToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, source {source.Length}", nameof(destination));
        int n = source.Length, i = 0;
        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref float dst = ref MemoryMarshal.GetReference(destination);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref src, (nuint)i));
                Vector256.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref dst, (nuint)i);
                Vector256.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref dst, (nuint)(i + Vector256<uint>.Count));
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<ushort>.Count; i += Vector128<ushort>.Count)
            {
                var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref src, (nuint)i));
                Vector128.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref dst, (nuint)i);
                Vector128.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref dst, (nuint)(i + Vector128<uint>.Count));
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref dst, i) = Bf16ToFloat32(Unsafe.Add(ref src, i));
    }

    public static float Bf16ToFloat32(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>f32 to bf16 bits, round to nearest even; NaN stays NaN (sign kept, quiet bit set).</summary>
    public static ushort Float32ToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((bits >> 16) | 0x0040);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Float32ToBf16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, source {source.Length}", nameof(destination));
        for (int i = 0; i < source.Length; i++) destination[i] = Float32ToBf16(source[i]);
    }

    public static void F16ToFloat32(ReadOnlySpan<Half> source, Span<float> destination) =>
        TensorPrimitives.ConvertToSingle(source, destination);

    public static void Float32ToF16(ReadOnlySpan<float> source, Span<Half> destination) =>
        TensorPrimitives.ConvertToHalf(source, destination);

    /// <summary>Converts <paramref name="count"/> elements of <paramref name="dtype"/> at src (any alignment) to f32.</summary>
    internal static unsafe void ToFloat32(SafeTensorsDType dtype, byte* src, float* dst, long count)
    {
        if (count <= 0) return;
        if (count < ParallelThreshold)
        {
            ConvertRange(dtype, (nint)src, (nint)dst, 0, (int)count);
            return;
        }
        long chunks = (count + Chunk - 1) / Chunk;
        nint s = (nint)src, d = (nint)dst;
        Parallel.For(0L, chunks, c =>
        {
            long start = c * Chunk;
            int len = (int)Math.Min(Chunk, count - start);
            ConvertRange(dtype, s, d, start, len);
        });
    }

    static unsafe void ConvertRange(SafeTensorsDType dtype, nint src, nint dst, long start, int len)
    {
        var to = new Span<float>((float*)dst + start, len);
        int size = dtype.Size();
        byte* from = (byte*)src + start * size;
        switch (dtype)
        {
            case SafeTensorsDType.F32:
                new ReadOnlySpan<byte>(from, len * 4).CopyTo(MemoryMarshal.AsBytes(to));
                break;
            case SafeTensorsDType.BF16:
                // ushort loads through unaligned refs (LoadUnsafe tolerates misalignment)
                Bf16ToFloat32(new ReadOnlySpan<ushort>(from, len), to);
                break;
            case SafeTensorsDType.F16:
                F16ToFloat32(new ReadOnlySpan<Half>(from, len), to);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }
}
