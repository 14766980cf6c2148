using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>The host-side parts of the CUDA backend, testable without a GPU.</summary>
public class CudaHostTests
{
    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(-2.5f, (ushort)0xC020)]
    [InlineData(0f, (ushort)0x0000)]
    [InlineData(float.PositiveInfinity, (ushort)0x7F80)]
    // 1 + 2^-8 is exactly half-way between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0)
    [InlineData(1.00390625f, (ushort)0x3F80)]
    // 1 + 3·2^-8 is half-way between 1.0078125 (odd) and 1.015625 (even): rounds up
    [InlineData(1.01171875f, (ushort)0x3F82)]
    // just above half-way rounds up
    [InlineData(1.0039065f, (ushort)0x3F81)]
    public void Bf16_rounds_to_nearest_even(float value, ushort bits) => Assert.Equal(bits, Bf16.FromSingle(value));

    [Fact]
    public void Bf16_keeps_nan_and_round_trips_every_finite_pattern()
    {
        Assert.True(float.IsNaN(Bf16.ToSingle(Bf16.FromSingle(float.NaN))));
        for (int b = 0; b < 0x10000; b++)
        {
            float f = Bf16.ToSingle((ushort)b);
            if (float.IsNaN(f)) continue;
            Assert.Equal((ushort)b, Bf16.FromSingle(f));
        }
    }

    [Fact]
    public void Bf16_widening_matches_the_cpu_matmul_reference() =>
        Assert.Equal(Actors.Kernels.Cpu.MatMul.Bf16ToSingle(0xBEEF), Bf16.ToSingle(0xBEEF));

    [Fact]
    public void Tma_decode_stages_come_from_the_environment_variable_or_default_to_four()
    {
        Assert.Equal(4, Actors.Kernels.Cuda.Kernels.AttentionKernels.ParseStages(null));
        Assert.Equal(4, Actors.Kernels.Cuda.Kernels.AttentionKernels.ParseStages(""));
        Assert.Equal(6, Actors.Kernels.Cuda.Kernels.AttentionKernels.ParseStages("6"));
        foreach (string bad in new[] { "1", "7", "four" })
            Assert.Contains("ACTORS_TMA_DECODE_STAGES", Assert.Throws<ArgumentException>(() => Actors.Kernels.Cuda.Kernels.AttentionKernels.ParseStages(bad)).Message);
    }

    [Fact]
    public void Norm_pieces_per_thread_rejects_counts_the_kernel_cannot_take()
    {
        foreach (int bad in new[] { 0, 5 })
            Assert.Contains("NormPiecesPerThread", Assert.Throws<ArgumentOutOfRangeException>(() => Actors.Kernels.Cuda.Kernels.ElementwiseKernels.NormPiecesPerThread = bad).Message);
    }

    [Fact]
    public void Device_spans_slice_and_check_lengths()
    {
        var s = new DeviceSpan<float>(0x1000, 10);
        var t = s.Slice(3, 4);
        Assert.Equal(0x1000UL + 12, t.Pointer);
        Assert.Equal(4, t.Length);
        Assert.Equal(16, t.Bytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Slice(8, 3));
        var e = Assert.Throws<ArgumentException>(() => s.Require(11, "x", "rows * dim"));
        Assert.Contains("'x'", e.Message);
        Assert.Contains("rows * dim = 11", e.Message);
        Assert.Throws<ArgumentException>(() => default(DeviceSpan<float>).Require(1, "y", "one"));
    }

    [Fact]
    public void Steady_power_is_read_between_the_counters_steps()
    {
        // a counter that moves only every 40 ms by what 500 W adds in that time, as NVML's does every ~100 ms: read
        // around a 3 ms job it says 0 or 20 J; read between its steps over back-to-back jobs it says 500 W
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double Energy() => 1000 + 500 * 0.040 * Math.Floor(clock.Elapsed.TotalMilliseconds / 40);
        var p = PowerMeter.MeasureSteady(Energy, () => Thread.Sleep(3), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(800));
        Assert.InRange(p.Watts, 475, 525);
        Assert.InRange(p.SecondsPerUnit, 0.003, 0.1);
        Assert.True(p.Seconds >= 0.04 && p.Units > 0, p.ToString());
        Assert.Equal(p.Watts * p.SecondsPerUnit, p.JoulesPerUnit, 9);
    }

    [Fact]
    public void Steady_power_reports_a_counter_that_fails()
    {
        var e = Assert.Throws<InvalidOperationException>(() => PowerMeter.MeasureSteady(
            () => throw new InvalidOperationException("sensor gone"), () => Thread.Sleep(1), TimeSpan.Zero, TimeSpan.FromMilliseconds(50), "card 7"));
        Assert.Contains("card 7", e.Message);
        Assert.Equal("sensor gone", e.InnerException?.Message);
    }

    [Fact]
    public void Native_libraries_are_tried_newest_soname_first()
    {
        Assert.Equal(["libcuda.so.1", "libcuda.so"], NativeLibraries.Candidates(NativeLibraries.Cuda));
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], NativeLibraries.Candidates(NativeLibraries.Nvrtc));
        Assert.Equal(["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], NativeLibraries.Candidates(NativeLibraries.CublasLt));
        Assert.Equal(["libnvidia-ml.so.1", "libnvidia-ml.so"], NativeLibraries.Candidates(NativeLibraries.Nvml));
    }

    [Fact]
    public void Kernel_sources_are_embedded_with_the_common_header_and_line_markers()
    {
        foreach (var (file, kernels) in new[]
                 {
                     ("elementwise.cu", new[] { "embedding_gather", "add_rmsnorm", "rope", "swiglu" }),
                     ("attention.cu", new[] { "kv_write", "paged_decode_split", "paged_decode_reduce", "paged_prefill" }),
                 })
        {
            string src = KernelSource.Load(file);
            Assert.StartsWith("#line 1 \"common.cuh\"", src);
            Assert.Contains($"#line 1 \"{file}\"", src);
            Assert.Contains("__device__ __forceinline__ bf16_t f2bf", src);
            foreach (var k in kernels) Assert.Contains($"extern \"C\" __global__ void {k}(", src);
        }
        // kernels with launch bounds: the name follows __launch_bounds__(…)
        Assert.Contains("__launch_bounds__(SAMPLE_THREADS) sample_rows(SampleParams p)", KernelSource.Load("sampling.cu"));
        Assert.Contains("__launch_bounds__(QKV_WARPS * 32) qkv_rope_kv(QkvRopeParams p)", KernelSource.Load("qkv_rope.cu"));
    }

    [Fact]
    public void TryOpen_either_opens_a_usable_device_or_says_why_not()
    {
        bool ok = CudaDevice.TryOpen(0, out var device, out var reason);
        Assert.False(string.IsNullOrWhiteSpace(reason));
        if (ok)
        {
            Assert.NotNull(device);
            Assert.True(device!.ComputeMajor >= CudaDevice.MinimumComputeMajor);
            device.Dispose();
        }
        else
        {
            Assert.Null(device);
        }
    }

    [Fact]
    public void TryOpen_reports_a_missing_ordinal()
    {
        bool ok = CudaDevice.TryOpen(4096, out var device, out var reason);
        Assert.False(ok);
        Assert.Null(device);
        Assert.False(string.IsNullOrWhiteSpace(reason));
    }

    [Fact]
    public void Cuda_errors_name_the_call_and_arguments()
    {
        var e = new CudaException("cuMemAlloc_v2", "1024 bytes", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        Assert.Contains("cuMemAlloc_v2(1024 bytes)", e.Message);
        Assert.Contains("CUDA_ERROR_OUT_OF_MEMORY", e.Message);
        Assert.True(e.IsOutOfMemory);
        var n = new NvrtcException("nvrtcCompileProgram", "x.cu", 6, "NVRTC_ERROR_COMPILATION", "x.cu(3): error: identifier \"y\" is undefined");
        Assert.Contains("identifier \"y\" is undefined", n.Message);
    }

    /// <summary>The C# params structs must have the byte layout of their CUDA twins (static_asserts in the .cu files and scripts/gpu/layout-asserts*.h).</summary>
    [Theory]
    [InlineData(typeof(ElementwiseKernels), "EmbeddingParams", 40, "Vocab", 32)]
    [InlineData(typeof(ElementwiseKernels), "RmsNormParams", 48, "Eps", 40)]
    [InlineData(typeof(ElementwiseKernels), "RopeParams", 48, "RowStride", 44)]
    [InlineData(typeof(ElementwiseKernels), "SwiGluParams", 40, "OutStride", 36)]
    [InlineData(typeof(AttentionKernels), "KvWriteParams", 80, "PageStride", 32)]
    [InlineData(typeof(AttentionKernels), "KvWriteParams", 80, "VRowStride", 76)]
    [InlineData(typeof(AttentionKernels), "DecodeParams", 120, "PageStride", 64)]
    [InlineData(typeof(AttentionKernels), "DecodeParams", 120, "Scale", 112)]
    [InlineData(typeof(AttentionKernels), "PrefillParams", 80, "PageStride", 32)]
    [InlineData(typeof(AttentionKernels), "PrefillParams", 80, "Scale", 76)]
    [InlineData(typeof(AttentionKernels), "PrefillSplitParams", 112, "Acc", 80)]
    [InlineData(typeof(AttentionKernels), "PrefillSplitParams", 112, "Splits", 104)]
    [InlineData(typeof(AttentionKernels), "WgmmaPrefillParams", 256, "Split", 128)] // p 128, acc 208, splits 232 in the kernel
    [InlineData(typeof(AttentionKernels), "TmaDecodeParams", 256, "P", 128)]
    [InlineData(typeof(GemmKernels), "GemmParams", 448, "C", 256)]
    [InlineData(typeof(GemmKernels), "GemmParams", 448, "Y", 384)]
    [InlineData(typeof(GemmKernels), "GemmParams", 448, "Rows", 392)]
    [InlineData(typeof(GemmKernels), "GemmParams", 448, "Group", 424)]
    [InlineData(typeof(GemmKernels), "GemmParams", 448, "TmaStore", 428)]
    [InlineData(typeof(QkvRopeKernels), "QkvRopeParams", 128, "Kv", 72)]
    [InlineData(typeof(QkvRopeKernels), "QkvRopeParams", 128, "PageStride", 80)]
    [InlineData(typeof(QkvRopeKernels), "QkvRopeParams", 128, "Tokens", 96)]
    [InlineData(typeof(QkvRopeKernels), "QkvRopeParams", 128, "Eps", 124)]
    [InlineData(typeof(SamplingKernels), "SampleParams", 40, "Out", 24)]
    [InlineData(typeof(GemvKernels), "GemvParams", 64, "Norm", 24)]
    [InlineData(typeof(GemvKernels), "GemvParams", 64, "Eps", 60)]
    [InlineData(typeof(GemvKernels), "GemvRopeParams", 152, "Cos", 64)]
    [InlineData(typeof(GemvKernels), "GemvRopeParams", 152, "PageStride", 112)]
    [InlineData(typeof(GemvKernels), "GemvRopeParams", 152, "Heads", 128)]
    [InlineData(typeof(SamplingKernels), "SampleParams", 40, "Vocab", 36)]
    [InlineData(typeof(SamplingKernels), "SampleRow", 24, "TopK", 12)]
    [InlineData(typeof(SamplingKernels), "SampleRow", 24, "TopP", 16)]
    public void Params_structs_match_the_cuda_layout(Type launcher, string name, int size, string field, int offset)
    {
        var t = launcher.GetNestedType(name, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public);
        Assert.NotNull(t);
        Assert.Equal(size, System.Runtime.InteropServices.Marshal.SizeOf(t!));
        Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf(t!, field));
    }

    [Fact]
    public void Decode_split_size_fits_shared_memory()
    {
        foreach (var (group, d) in new[] { (1, 64), (4, 128), (7, 64), (8, 128), (16, 256) })
        {
            int s = AttentionKernels.DecodeSplitSize(group, d);
            Assert.True(s >= 32 && s <= 256 && s % 32 == 0, $"group {group}, d {d}: split {s}");
            Assert.True((group * (d + s) + 32) * 4 <= 48 * 1024, $"group {group}, d {d}: split {s} overflows 48 KiB");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionKernels.DecodeSplitSize(64, 256));
    }
}
