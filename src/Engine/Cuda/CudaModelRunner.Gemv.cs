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

    /// <summary>Use gemv.cu for steps of 1..4 rows (default; ACTORS_GEMV=0 turns it off). Benchmarks toggle it.</summary>
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

    private GemvKernels Gemv => _gemv ??= new GemvKernels(_compiler);

    /// <summary>y (rows, n) = x (rows, k) · wᵀ.</summary>
    private void Project(CudaStream st, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n)
    {
        if (_useGemv && GemvKernels.Supports(rows, k, x, w, y)) Gemv.Matmul(st, x, w, y, rows, k, n);
        else Product(st, x, w, y, rows, k, n);
    }

    /// <summary>act (rows, inter) = SwiGLU of x · gateUpᵀ in one kernel when the step is decode-shaped; false otherwise.</summary>
    private bool TryGateUpSwiGlu(CudaStream st, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> act, int rows, int k, int inter)
    {
        if (!_useGemv || !GemvKernels.Supports(rows, k, x, gateUp, act)) return false;
        Gemv.SwiGlu(st, x, gateUp, act, rows, k, inter);
        return true;
    }
}
