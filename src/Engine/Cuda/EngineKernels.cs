using System.Runtime.InteropServices;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Cuda;

/// <summary>
/// Small kernels the CUDA model runner needs beside src/Kernels/Cuda's: bias add, per-head q/k RMSNorm inside a fused
/// qkv row, one-launch KV write of a whole batch by global slot, row gather, and random bf16 init on the device (for
/// benchmarks of full-size shapes without a host transfer). bf16 as raw bits; f32 math.
/// </summary>
public sealed class EngineKernels
{
    private const uint Block = 256;
    private readonly CudaFunction _bias, _qkNorm, _kvWrite, _gather, _init, _argmax;

    public EngineKernels(KernelCompiler compiler)
    {
        ArgumentNullException.ThrowIfNull(compiler);
        var module = compiler.Load(Source, "engine_kernels.cu");
        _bias = module.Function("bias_add");
        _qkNorm = module.Function("qk_norm");
        _kvWrite = module.Function("kv_write_slots");
        _gather = module.Function("gather_rows");
        _init = module.Function("random_init");
        _argmax = module.Function("argmax_rows");
        foreach (var f in new[] { _bias, _qkNorm, _kvWrite, _gather, _argmax }) f.Programmatic = true;
    }

    /// <summary>output[r] = argmax of row r of x (rows, cols) bf16, lowest index on ties (as the CPU Sampler); NaN never wins.</summary>
    public void ArgmaxRows(CudaStream stream, DeviceSpan<ushort> x, int rows, int cols, DeviceSpan<int> output)
    {
        if (rows == 0) return;
        x.Require((long)rows * cols, nameof(x), "rows * cols");
        output.Require(rows, nameof(output), "rows");
        var p = new ArgmaxParams { X = x.Pointer, Out = output.Pointer, Rows = rows, Cols = cols };
        _argmax.Launch(stream, ((uint)rows, 1, 1), 1024, 0, p);
    }

    /// <summary>y[r, c] += bias[c] for r &lt; rows, c &lt; cols; rows of y are stride apart.</summary>
    public void BiasAdd(CudaStream stream, DeviceSpan<ushort> y, DeviceSpan<ushort> bias, int rows, int cols, int stride)
    {
        if (rows == 0) return;
        y.Require((long)(rows - 1) * stride + cols, nameof(y), "(rows - 1) * stride + cols");
        bias.Require(cols, nameof(bias), "cols");
        var p = new BiasParams { Y = y.Pointer, Bias = bias.Pointer, Rows = rows, Cols = cols, Stride = stride };
        _bias.Launch(stream, (Grid((long)rows * cols), 1, 1), Block, 0, p);
    }

    /// <summary>
    /// Qwen3 q/k norm in place: in each token row of a fused qkv (rows stride apart: q heads, then k heads, then v),
    /// every q head is RMS-normed with qWeight and every k head with kWeight (both (headDim)).
    /// </summary>
    public void QkNorm(CudaStream stream, DeviceSpan<ushort> qkv, int tokens, int stride, int heads, int kvHeads, int headDim,
        DeviceSpan<ushort> qWeight, DeviceSpan<ushort> kWeight, float eps)
    {
        if (tokens == 0) return;
        qkv.Require((long)(tokens - 1) * stride + (heads + kvHeads) * headDim, nameof(qkv), "rows of q and k heads");
        qWeight.Require(headDim, nameof(qWeight), "headDim");
        kWeight.Require(headDim, nameof(kWeight), "headDim");
        var p = new QkNormParams
        {
            X = qkv.Pointer, QWeight = qWeight.Pointer, KWeight = kWeight.Pointer, Tokens = tokens, Stride = stride,
            Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Eps = eps,
        };
        long rows = (long)tokens * (heads + kvHeads); // one warp per head row
        _qkNorm.Launch(stream, (Grid(rows * 32), 1, 1), Block, 0, p);
    }

    /// <summary>
    /// Writes K and V of every token of a step: token t's k at src[t * stride + kOffset ..], v at src[t * stride + vOffset ..]
    /// (kvHeads * headDim each) go to global slot slots[t] = page * pageSize + slot of the pool (KvLayout, bf16).
    /// </summary>
    public void KvWrite(CudaStream stream, DeviceSpan<ushort> src, int stride, int kOffset, int vOffset, int tokens,
        DeviceSpan<ushort> pool, Kernels.Cpu.KvLayout layout, int layer, DeviceSpan<int> slots)
    {
        if (tokens == 0) return;
        slots.Require(tokens, nameof(slots), "tokens");
        var p = new KvWriteParams
        {
            Src = src.Pointer, Kv = pool.Pointer, Slots = slots.Pointer, PageStride = layout.PageStride,
            LayerOffset = (long)layer * layout.LayerStride, TokenStride = layout.TokenStride, PageSize = layout.PageSize,
            Tokens = tokens, Stride = stride, KOffset = kOffset, VOffset = vOffset,
        };
        _kvWrite.Launch(stream, (Grid((long)tokens * layout.TokenStride), 1, 1), Block, 0, p);
    }

    /// <summary>dst[i, :cols] = src[index[i], :cols] for i &lt; rows; src rows srcStride apart, dst rows dstStride apart.</summary>
    public void GatherRows(CudaStream stream, DeviceSpan<ushort> src, int srcStride, DeviceSpan<int> index, int rows, int cols,
        DeviceSpan<ushort> dst, int dstStride)
    {
        if (rows == 0) return;
        index.Require(rows, nameof(index), "rows");
        dst.Require((long)(rows - 1) * dstStride + cols, nameof(dst), "(rows - 1) * dstStride + cols");
        var p = new GatherParams { Src = src.Pointer, Index = index.Pointer, Dst = dst.Pointer, Rows = rows, Cols = cols, SrcStride = srcStride, DstStride = dstStride };
        _gather.Launch(stream, ((uint)rows, 1, 1), Block, 0, p);
    }

    /// <summary>y[i] = bf16(offset + scale · u(seed, i)) with u uniform in [−1, 1) from a counter hash: reproducible, no host data.</summary>
    public void RandomInit(CudaStream stream, DeviceSpan<ushort> y, ulong seed, float scale, float offset)
    {
        if (y.Length == 0) return;
        var p = new InitParams { Y = y.Pointer, Count = y.Length, Seed = seed, Scale = scale, Offset = offset };
        _init.Launch(stream, (Math.Min(Grid(y.Length), 65535u * 16), 1, 1), Block, 0, p);
    }

    private static uint Grid(long threads) => checked((uint)Math.Max(1, (threads + Block - 1) / Block));

    [StructLayout(LayoutKind.Sequential)]
    private struct BiasParams { public ulong Y, Bias; public int Rows, Cols, Stride, Pad; }

    [StructLayout(LayoutKind.Sequential)]
    private struct QkNormParams { public ulong X, QWeight, KWeight; public int Tokens, Stride, Heads, KvHeads, HeadDim; public float Eps; }

    [StructLayout(LayoutKind.Sequential)]
    private struct KvWriteParams
    {
        public ulong Src, Kv, Slots;
        public long PageStride, LayerOffset;
        public int TokenStride, PageSize, Tokens, Stride, KOffset, VOffset;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct GatherParams { public ulong Src, Index, Dst; public int Rows, Cols, SrcStride, DstStride; }

    [StructLayout(LayoutKind.Sequential)]
    private struct ArgmaxParams { public ulong X, Out; public int Rows, Cols; }

    [StructLayout(LayoutKind.Sequential)]
    private struct InitParams { public ulong Y; public long Count; public ulong Seed; public float Scale, Offset; }

    // Params structs: pointers and 64-bit fields first, then 32-bit fields, padded to 8 bytes (twins above).
    internal const string Source = """
        typedef unsigned short bf16_t;
        typedef unsigned long long u64;
        // Programmatic dependent launch, as in common.cuh: wait for the previous kernel before touching its buffers.
        #if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        #define PDL_ENTER() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
        #else
        #define PDL_ENTER() do { } while (0)
        #endif
        __device__ __forceinline__ float bf2f(bf16_t b) { return __uint_as_float(((unsigned int)b) << 16); }
        __device__ __forceinline__ bf16_t f2bf(float f)
        {
            unsigned int u = __float_as_uint(f);
            if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
            u += 0x7fffu + ((u >> 16) & 1u);
            return (bf16_t)(u >> 16);
        }

        struct BiasParams { bf16_t* y; const bf16_t* bias; int rows, cols, stride, pad; };
        extern "C" __global__ void bias_add(BiasParams p)
        {
            PDL_ENTER();
            u64 total = (u64)p.rows * p.cols;
            u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
            if (i >= total) return;
            u64 r = i / p.cols, c = i % p.cols;
            bf16_t* y = p.y + r * p.stride + c;
            *y = f2bf(bf2f(*y) + bf2f(p.bias[c]));
        }

        // One warp per (token, head) among the q and k heads of a fused qkv row.
        struct QkNormParams { bf16_t* x; const bf16_t* qw; const bf16_t* kw; int tokens, stride, heads, kvHeads, headDim; float eps; };
        extern "C" __global__ void qk_norm(QkNormParams p)
        {
            PDL_ENTER();
            u64 warp = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
            int lane = threadIdx.x & 31;
            int per = p.heads + p.kvHeads;
            if (warp >= (u64)p.tokens * per) return;
            u64 t = warp / per;
            int h = (int)(warp % per);
            bf16_t* row = p.x + t * p.stride + (u64)h * p.headDim;
            const bf16_t* w = h < p.heads ? p.qw : p.kw;
            float ss = 0.f;
            for (int i = lane; i < p.headDim; i += 32) { float v = bf2f(row[i]); ss += v * v; }
            for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
            float inv = rsqrtf(ss / p.headDim + p.eps);
            for (int i = lane; i < p.headDim; i += 32) row[i] = f2bf(bf2f(w[i]) * bf2f(f2bf(bf2f(row[i]) * inv)));
        }

        struct KvWriteParams { const bf16_t* src; bf16_t* kv; const int* slots; long long pageStride, layerOffset; int tokenStride, pageSize, tokens, stride, kOffset, vOffset; };
        extern "C" __global__ void kv_write_slots(KvWriteParams p)
        {
            PDL_ENTER();
            u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
            if (i >= (u64)p.tokens * p.tokenStride) return;
            u64 t = i / p.tokenStride;
            int e = (int)(i % p.tokenStride);
            int s = p.slots[t];
            int page = s / p.pageSize, slot = s % p.pageSize;
            u64 k = (u64)page * p.pageStride + p.layerOffset + (u64)slot * p.tokenStride + e;
            const bf16_t* row = p.src + t * p.stride;
            p.kv[k] = row[p.kOffset + e];
            p.kv[k + (u64)p.pageSize * p.tokenStride] = row[p.vOffset + e];
        }

        struct GatherParams { const bf16_t* src; const int* index; bf16_t* dst; int rows, cols, srcStride, dstStride; };
        extern "C" __global__ void gather_rows(GatherParams p)
        {
            PDL_ENTER();
            int r = blockIdx.x;
            const bf16_t* s = p.src + (u64)p.index[r] * p.srcStride;
            bf16_t* d = p.dst + (u64)r * p.dstStride;
            for (int c = threadIdx.x; c < p.cols; c += blockDim.x) d[c] = s[c];
        }

        // One block per row: each thread keeps its best (value, lowest index), then warps and the block reduce.
        struct ArgmaxParams { const bf16_t* x; int* out; int rows, cols; };
        __device__ __forceinline__ bool better(float v, int i, float bv, int bi)
        {
            return v > bv || (v == bv && i < bi);
        }
        extern "C" __global__ void argmax_rows(ArgmaxParams p)
        {
            PDL_ENTER();
            __shared__ float sv[32];
            __shared__ int si[32];
            const bf16_t* row = p.x + (u64)blockIdx.x * p.cols;
            float bv = -__int_as_float(0x7f800000); int bi = 0x7fffffff;
            for (int i = threadIdx.x; i < p.cols; i += blockDim.x)
            {
                float v = bf2f(row[i]);
                if (better(v, i, bv, bi)) { bv = v; bi = i; }
            }
            for (int o = 16; o > 0; o >>= 1)
            {
                float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
            }
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
            __syncthreads();
            if (warp == 0)
            {
                int warps = blockDim.x >> 5;
                bv = lane < warps ? sv[lane] : -__int_as_float(0x7f800000);
                bi = lane < warps ? si[lane] : 0x7fffffff;
                for (int o = 16; o > 0; o >>= 1)
                {
                    float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                    int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                    if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
                }
                if (lane == 0) p.out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
            }
        }

        struct InitParams { bf16_t* y; long long count; u64 seed; float scale, offset; };
        extern "C" __global__ void random_init(InitParams p)
        {
            for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)p.count; i += (u64)gridDim.x * blockDim.x)
            {
                u64 z = p.seed + (i + 1) * 0x9E3779B97F4A7C15ull;   // splitmix64 of the counter
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                z ^= z >> 31;
                float u = (float)(z >> 40) * (1.0f / 8388608.0f) - 1.0f;  // 24 bits -> [-1, 1)
                p.y[i] = f2bf(p.offset + p.scale * u);
            }
        }
        """;
}
