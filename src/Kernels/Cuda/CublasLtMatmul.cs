using System.Collections.Concurrent;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// bf16 matrix products through cuBLASLt: y (rows, n) = x (rows, k) · wᵀ, w (n, k) row-major as a PyTorch Linear
/// stores it, bf16 in and out, f32 accumulation and scale (CUBLAS_COMPUTE_32F).
/// cuBLASLt is column-major; a row-major (r, c) matrix is the column-major (c, r) matrix, so the product is computed
/// as yᵀ (n, rows) = op(A) · B with A = w viewed column-major (k, n) transposed (TRANSA = T) and B = xᵀ viewed
/// column-major (k, rows) (TRANSB = N): the "TN" form cuBLASLt's fastest kernels use.
/// Plans (descriptors + heuristic algorithm) are cached per shape; the fixed workspace keeps launches capturable in graphs.
/// </summary>
public sealed unsafe class CublasLtMatmul : IDisposable
{
    private readonly SafeCublasLtHandle _handle;
    private readonly DeviceBuffer<byte> _workspace;
    private readonly ConcurrentDictionary<(int Rows, int K, int N), Plan> _plans = new();

    public CublasLtMatmul(CudaDevice device, long workspaceBytes = 32L << 20)
    {
        Device = device;
        NativeLibraries.EnsureResolver();
        device.MakeCurrent();
        IntPtr h;
        CublasLt.Check(CublasLt.cublasLtCreate(&h), "cublasLtCreate");
        _handle = new SafeCublasLtHandle(device.Context, h);
        _workspace = device.Allocate<byte>(workspaceBytes);
    }

    public CudaDevice Device { get; }

    /// <summary>Enqueues y = x · wᵀ on <paramref name="stream"/>. x: (rows, k), w: (n, k), y: (rows, n), all bf16 row-major.</summary>
    public void Bf16(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n)
    {
        if (rows < 0 || k <= 0 || n <= 0)
            throw new ArgumentOutOfRangeException(nameof(rows), $"matmul shape rows {rows}, k {k}, n {n}: rows ≥ 0, k and n > 0");
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require((long)n * k, nameof(w), "n * k");
        y.Require((long)rows * n, nameof(y), "rows * n");
        if (rows == 0) return;
        var plan = _plans.GetOrAdd((rows, k, n), s => CreatePlan(s.Rows, s.K, s.N));
        Device.MakeCurrent();
        float alpha = 1f, beta = 0f;
        CublasLt.Check(CublasLt.cublasLtMatmul(_handle.DangerousGetHandle(), plan.Operation, &alpha, w.Pointer, plan.A, x.Pointer, plan.B,
                &beta, y.Pointer, plan.C, y.Pointer, plan.C, plan.Algo, _workspace.Pointer, (nuint)_workspace.Bytes, stream.Handle),
            "cublasLtMatmul", $"bf16 rows {rows}, k {k}, n {n}");
    }

    private Plan CreatePlan(int rows, int k, int n)
    {
        Device.MakeCurrent();
        var plan = new Plan();
        try
        {
            IntPtr op, a, b, c, pref;
            CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(&op, CublasLt.ComputeF32, CublasLt.DataF32), "cublasLtMatmulDescCreate", "COMPUTE_32F, scale R_32F");
            plan.Operation = op;
            int transA = CublasLt.OpT, transB = CublasLt.OpN;
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(op, CublasLt.DescTransA, &transA, sizeof(int)), "cublasLtMatmulDescSetAttribute", "TRANSA = T");
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(op, CublasLt.DescTransB, &transB, sizeof(int)), "cublasLtMatmulDescSetAttribute", "TRANSB = N");
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&a, CublasLt.DataBf16, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate", $"A = w: bf16 ({k}, {n}) ld {k}");
            plan.A = a;
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&b, CublasLt.DataBf16, (ulong)k, (ulong)rows, k), "cublasLtMatrixLayoutCreate", $"B = x: bf16 ({k}, {rows}) ld {k}");
            plan.B = b;
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&c, CublasLt.DataBf16, (ulong)n, (ulong)rows, n), "cublasLtMatrixLayoutCreate", $"C = y: bf16 ({n}, {rows}) ld {n}");
            plan.C = c;
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
            try
            {
                ulong ws = (ulong)_workspace.Bytes;
                CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.PrefMaxWorkspaceBytes, &ws, sizeof(ulong)),
                    "cublasLtMatmulPreferenceSetAttribute", $"MAX_WORKSPACE_BYTES {ws}");
                CublasLtHeuristicResult result;
                int found;
                CublasLt.Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(_handle.DangerousGetHandle(), op, a, b, c, c, pref, 1, &result, &found),
                    "cublasLtMatmulAlgoGetHeuristic", $"bf16 rows {rows}, k {k}, n {n}");
                if (found == 0)
                    throw new CublasException("cublasLtMatmulAlgoGetHeuristic", $"bf16 rows {rows}, k {k}, n {n}", 15, "CUBLAS_STATUS_NOT_SUPPORTED", "no algorithm for this shape");
                for (int i = 0; i < 8; i++) plan.Algo[i] = result.Algo[i];
            }
            finally
            {
                CublasLt.cublasLtMatmulPreferenceDestroy(pref);
            }
            return plan;
        }
        catch
        {
            plan.Destroy();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var p in _plans.Values) p.Destroy();
        _plans.Clear();
        _workspace.Dispose();
        _handle.Dispose();
    }

    private sealed class Plan
    {
        public IntPtr Operation, A, B, C;
        public readonly ulong* Algo = (ulong*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(8 * sizeof(ulong));

        public void Destroy()
        {
            if (C != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(C);
            if (B != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(B);
            if (A != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(A);
            if (Operation != IntPtr.Zero) CublasLt.cublasLtMatmulDescDestroy(Operation);
            C = B = A = Operation = IntPtr.Zero;
            System.Runtime.InteropServices.NativeMemory.Free(Algo);
        }
    }
}
