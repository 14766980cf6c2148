using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>A CUtensorMap (TMA descriptor): 128 opaque bytes, passed to kernels inside their params struct.</summary>
internal unsafe struct TensorMap
{
    public fixed ulong Words[16];

    /// <summary>
    /// A 2-D row-major bf16 matrix of <paramref name="rows"/> x <paramref name="columns"/> (columns contiguous, a multiple
    /// of 8 so rows are 16-byte aligned) read in boxes of <paramref name="boxColumns"/> x <paramref name="boxRows"/> in the
    /// 128-byte swizzle; reads past either end return zeros.
    /// </summary>
    public static TensorMap Matrix(CudaDevice device, ulong pointer, long rows, int columns, uint boxColumns, uint boxRows, string what)
    {
        var map = new TensorMap();
        ulong* dims = stackalloc ulong[2] { (ulong)columns, (ulong)rows };
        ulong* strides = stackalloc ulong[1] { 2UL * (ulong)columns };
        uint* box = stackalloc uint[2] { boxColumns, boxRows };
        uint* elementStrides = stackalloc uint[2] { 1, 1 };
        device.MakeCurrent();
        Driver.Check(Driver.cuTensorMapEncodeTiled(map.Words, Driver.TensorMapDataTypeBfloat16, 2, pointer, dims, strides, box, elementStrides,
                Driver.TensorMapInterleaveNone, Driver.TensorMapSwizzle128B, Driver.TensorMapL2Promotion256B, Driver.TensorMapOobFillNone),
            "cuTensorMapEncodeTiled", $"{what}: {rows} x {columns} bf16 at 0x{pointer:x}");
        return map;
    }
}
