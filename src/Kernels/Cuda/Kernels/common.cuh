// Shared helpers for every kernel of src/Kernels/Cuda/Kernels. KernelSource prepends this text to each .cu before
// NVRTC compiles it (NVRTC gets no include files), so kernels need no CUDA headers at all:
// bf16 is stored as raw bits (unsigned short) and converted here exactly as Actors.Kernels.Cuda.Bf16 does on the host.
// Every kernel takes one params struct by value; its C# twin in the launcher has the same field order, so the two
// layouts match (pointers and 64-bit integers first, then 32-bit fields, padded to 8 bytes).
typedef unsigned short bf16_t;
typedef unsigned long long u64;

#define NEG_INF __uint_as_float(0xff800000u)

// Exact widening: bf16 bits are the upper half of an f32.
__device__ __forceinline__ float bf2f(bf16_t b) { return __uint_as_float(((unsigned int)b) << 16); }

// Round to nearest even, NaN kept quiet (as torch's float -> bfloat16 cast).
__device__ __forceinline__ bf16_t f2bf(float f)
{
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

// Programmatic dependent launch (compute capability 9.0+; CudaFunction.Programmatic, CudaStream.ProgrammaticLaunch).
// A kernel launched programmatically may start while the previous kernel of its stream still runs: PDL_WAIT blocks
// until that kernel has finished and its writes are visible, so it comes before the kernel reads or writes any buffer
// another kernel touches (only weights may be read before it). PDL_LAUNCH lets the next kernel's blocks start (they
// still wait for this one to end). Without a programmatic launch, and below sm_90, both are no-ops.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define PDL_LAUNCH() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#else
#define PDL_WAIT() do { } while (0)
#define PDL_LAUNCH() do { } while (0)
#endif
#define PDL_ENTER() do { PDL_WAIT(); PDL_LAUNCH(); } while (0)

// 16 bytes = 8 bf16, one vector load or store (NVRTC's own uint4 is not relied on). Element 2i is the low half of
// word i (little-endian).
struct alignas(16) vec16 { unsigned int x, y, z, w; };

__device__ __forceinline__ void unpack8(vec16 v, float* f)
{
    const unsigned int a[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        f[2 * i] = __uint_as_float(a[i] << 16);
        f[2 * i + 1] = __uint_as_float(a[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ vec16 pack8(const float* f)
{
    unsigned int a[4];
#pragma unroll
    for (int i = 0; i < 4; i++) a[i] = (unsigned int)f2bf(f[2 * i]) | ((unsigned int)f2bf(f[2 * i + 1]) << 16);
    vec16 v;
    v.x = a[0]; v.y = a[1]; v.z = a[2]; v.w = a[3];
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block, returned to every thread. blockDim.x must be a multiple of 32; scratch holds 32 floats.
// Must be reached by every thread of the block.
__device__ float block_sum(float v, float* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // earlier readers of scratch are done
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? scratch[lane] : 0.f);
}

__device__ float block_max(float v, float* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_max(lane < warps ? scratch[lane] : NEG_INF);
}

// 32-bit shared-window address of a generic pointer into shared memory (what cp.async / ldmatrix take).
__device__ __forceinline__ unsigned int smem_addr(const void* p)
{
    unsigned int r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

// Two floats (sm_80+) -> packed bf16 pair (round to nearest even), lo in the low half. cvt.rn.bf16x2.f32 d, a, b puts a in the high half.
__device__ __forceinline__ unsigned int pack_bf16(float lo, float hi)
{
    unsigned int r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
