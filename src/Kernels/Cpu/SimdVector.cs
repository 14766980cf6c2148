using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Actors.Kernels.Cpu;

/// <summary>
/// One SIMD width, as a type, so that each kernel body is written once and the JIT specialises it per width
/// (generic over a struct: no boxing, no virtual calls). System.Runtime.Intrinsics.ISimdVector is not public in
/// .NET 10, hence this small internal copy of the few operations the kernels need.
/// </summary>
internal unsafe interface ISimdVector<TSelf> where TSelf : struct, ISimdVector<TSelf>
{
    static abstract int Count { get; }
    static abstract bool IsHardwareAccelerated { get; }
    static abstract TSelf Zero { get; }
    static abstract TSelf Load(float* p);
    static abstract void Store(TSelf v, float* p);
    static abstract TSelf Broadcast(float value);
    static abstract TSelf operator +(TSelf a, TSelf b);
    static abstract TSelf operator -(TSelf a, TSelf b);
    static abstract TSelf operator *(TSelf a, TSelf b);
    static abstract TSelf operator /(TSelf a, TSelf b);
    /// <summary>a · b + c, fused where the hardware has FMA.</summary>
    static abstract TSelf MultiplyAdd(TSelf a, TSelf b, TSelf c);
    /// <summary>Lane-wise maximum, NaN-propagating like <see cref="MathF.Max(float, float)"/>.</summary>
    static abstract TSelf Max(TSelf a, TSelf b);
    static abstract TSelf Exp(TSelf v);
    static abstract float Sum(TSelf v);
    static abstract float MaxAcross(TSelf v);
    /// <summary>All-ones in the last <paramref name="keep"/> lanes, zero elsewhere (for overlapped tail loads).</summary>
    static abstract TSelf TailMask(int keep);
    static abstract TSelf And(TSelf a, TSelf b);
    /// <summary>Bit i set where a[i] == b[i].</summary>
    static abstract ulong EqualsBits(TSelf a, TSelf b);
    /// <summary>Count bfloat16 values (raw bits) widened to f32: a bf16 is the upper half of an f32, so this is exact.</summary>
    static abstract TSelf LoadBf16(ushort* p);
}

internal readonly unsafe struct V512(Vector512<float> v) : ISimdVector<V512>
{
    private readonly Vector512<float> _v = v;
    public static int Count => Vector512<float>.Count;
    public static bool IsHardwareAccelerated => Vector512.IsHardwareAccelerated;
    public static V512 Zero => new(Vector512<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Broadcast(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator +(V512 a, V512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a, V512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator *(V512 a, V512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator /(V512 a, V512 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 MultiplyAdd(V512 a, V512 b, V512 c) => new(Vector512.MultiplyAddEstimate(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Max(V512 a, V512 b) => new(Vector512.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Exp(V512 v) => new(Vector512.Exp(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V512 v) => Vector512.Sum(v._v);
    public static float MaxAcross(V512 v) => V256.MaxAcross(new V256(Vector256.Max(v._v.GetLower(), v._v.GetUpper())));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 TailMask(int keep) =>
        new(Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(Count - keep)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 And(V512 a, V512 b) => new(a._v & b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ulong EqualsBits(V512 a, V512 b) => Vector512.Equals(a._v, b._v).ExtractMostSignificantBits();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 LoadBf16(ushort* p)
    {
        Vector256<ushort> h = Vector256.Load(p);
        Vector512<uint> u = Avx512F.IsSupported ? Avx512F.ConvertToVector512UInt32(h) : Vector512.Create(Vector256.WidenLower(h), Vector256.WidenUpper(h));
        return new((u << 16).AsSingle());
    }
}

internal readonly unsafe struct V256(Vector256<float> v) : ISimdVector<V256>
{
    private readonly Vector256<float> _v = v;
    public static int Count => Vector256<float>.Count;
    public static bool IsHardwareAccelerated => Vector256.IsHardwareAccelerated;
    public static V256 Zero => new(Vector256<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Broadcast(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator +(V256 a, V256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a, V256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator *(V256 a, V256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator /(V256 a, V256 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 MultiplyAdd(V256 a, V256 b, V256 c) => new(Vector256.MultiplyAddEstimate(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Max(V256 a, V256 b) => new(Vector256.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Exp(V256 v) => new(Vector256.Exp(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V256 v) => Vector256.Sum(v._v);
    public static float MaxAcross(V256 v) => V128.MaxAcross(new V128(Vector128.Max(v._v.GetLower(), v._v.GetUpper())));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 TailMask(int keep) =>
        new(Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(Count - keep)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 And(V256 a, V256 b) => new(a._v & b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ulong EqualsBits(V256 a, V256 b) => Vector256.Equals(a._v, b._v).ExtractMostSignificantBits();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 LoadBf16(ushort* p)
    {
        Vector128<ushort> h = Vector128.Load(p);
        Vector256<uint> u = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h).AsUInt32() : Vector256.Create(Vector128.WidenLower(h), Vector128.WidenUpper(h));
        return new((u << 16).AsSingle());
    }
}

internal readonly unsafe struct V128(Vector128<float> v) : ISimdVector<V128>
{
    private readonly Vector128<float> _v = v;
    public static int Count => Vector128<float>.Count;
    public static bool IsHardwareAccelerated => Vector128.IsHardwareAccelerated;
    public static V128 Zero => new(Vector128<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Load(float* p) => new(Vector128.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V128 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Broadcast(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator +(V128 a, V128 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator -(V128 a, V128 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator *(V128 a, V128 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator /(V128 a, V128 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 MultiplyAdd(V128 a, V128 b, V128 c) => new(Vector128.MultiplyAddEstimate(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Max(V128 a, V128 b) => new(Vector128.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Exp(V128 v) => new(Vector128.Exp(v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V128 v) => Vector128.Sum(v._v);
    public static float MaxAcross(V128 v) => MathF.Max(MathF.Max(v._v[0], v._v[1]), MathF.Max(v._v[2], v._v[3]));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 TailMask(int keep) =>
        new(Vector128.GreaterThanOrEqual(Vector128<int>.Indices, Vector128.Create(Count - keep)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 And(V128 a, V128 b) => new(a._v & b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ulong EqualsBits(V128 a, V128 b) => Vector128.Equals(a._v, b._v).ExtractMostSignificantBits();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 LoadBf16(ushort* p) =>
        new((Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt16()) << 16).AsSingle()); // reads exactly 4 values
}
