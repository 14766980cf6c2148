namespace Actors.Kernels.Cuda;

/// <summary>
/// bfloat16 as raw bits (<see cref="ushort"/>), the storage type of weights, activations and KV on the GPU.
/// Conversions match the kernels' <c>f2bf</c>/<c>bf2f</c> in common.cuh bit for bit.
/// </summary>
public static class Bf16
{
    /// <summary>Exact widening: the bf16 bits are the upper half of the f32.</summary>
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest even (NaN stays a quiet NaN), as torch's float → bfloat16 cast.</summary>
    public static ushort FromSingle(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((u >> 16) | 0x40);
        u += 0x7FFF + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    public static ushort[] FromSingles(ReadOnlySpan<float> values)
    {
        var r = new ushort[values.Length];
        for (int i = 0; i < r.Length; i++) r[i] = FromSingle(values[i]);
        return r;
    }

    public static float[] ToSingles(ReadOnlySpan<ushort> bits)
    {
        var r = new float[bits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = ToSingle(bits[i]);
        return r;
    }

    /// <summary>Rounds every value to the nearest bf16 in place, so a CPU reference sees exactly what the GPU sees.</summary>
    public static void Round(Span<float> values)
    {
        for (int i = 0; i < values.Length; i++) values[i] = ToSingle(FromSingle(values[i]));
    }
}
