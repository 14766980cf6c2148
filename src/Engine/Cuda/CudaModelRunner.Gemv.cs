using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Cuda;

/// <summary>
/// Decode-shaped products: steps of at most <see cref="GemvKernels.MaxRows"/> rows stream the weights through gemv.cu
/// (and the MLP's gate/up product is fused with SwiGLU there); larger steps use cuBLASLt.
/// </summary>
public sealed partial class CudaModelRunner
{
    private GemvKernels? _gemv;
    private bool _useGemv = Environment.GetEnvironmentVariable("ACTORS_GEMV") != "0";

    /// <summary>Use gemv.cu for steps of 1..<see cref="GemvMaxRows"/> rows (default; ACTORS_GEMV=0 turns it off). Benchmarks toggle it.</summary>
    public bool UseGemv
    {
        get => _useGemv;
        set
        {
            if (value == _useGemv) return;
            _useGemv = value;
            _generation++; // captured graphs hold the other kernels
        }
    }

    private int _gemvMaxRows = GemvKernels.MaxRows;

    /// <summary>
    /// Steps of at most this many rows (decode batches) take gemv.cu, with the norms and residual adds folded in; larger
    /// ones cuBLASLt (default <see cref="GemvKernels.MaxRows"/>, 8; benchmarks compare 4, the earlier limit).
    /// </summary>
    public int GemvMaxRows
    {
        get => _gemvMaxRows;
        set
        {
            if (value is < 0 or > GemvKernels.MaxRows)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"gemv takes 0..{GemvKernels.MaxRows} rows");
            if (value == _gemvMaxRows) return;
            _gemvMaxRows = value;
            _generation++; // captured graphs hold the other kernels
        }
    }

    private GemvKernels Gemv => _gemv ??= new GemvKernels(_compiler);

    private bool GemvTakes(int rows) => _useGemv && rows <= _gemvMaxRows;

    /// <summary>y (rows, n) = x (rows, k) · wᵀ.</summary>
    private void Project(CudaStream st, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n)
    {
        if (GemvTakes(rows) && GemvKernels.Supports(rows, k, x, w, y)) Gemv.Matmul(st, x, w, y, rows, k, n);
        else Product(st, x, w, y, rows, k, n);
    }

    /// <summary>act (rows, inter) = SwiGLU of x · gateUpᵀ in one kernel when the step is decode-shaped; false otherwise.</summary>
    private bool TryGateUpSwiGlu(CudaStream st, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> act, int rows, int k, int inter)
    {
        if (!GemvTakes(rows) || !GemvKernels.Supports(rows, k, x, gateUp, act)) return false;
        Gemv.SwiGlu(st, x, gateUp, act, rows, k, inter);
        return true;
    }
}
