// Hopper (sm_90a) PTX helpers shared by the wgmma/TMA kernels: attention_hopper.cu (after attention.cu and
// attention_fast.cu) and gemm_hopper.cu (after common.cuh). Asynchronous matrix products (wgmma), shared-memory matrix
// descriptors in the 128-byte swizzle, mbarriers, tensor-memory-accelerator loads (TMA) and named barriers.

// A CUtensorMap (opaque, 128 bytes, 64-byte aligned), made by cuTensorMapEncodeTiled on the host.
struct alignas(64) TmaMap { u64 v[16]; };

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
// Keeps the compiler from moving reads or writes of the accumulators across the asynchronous wgmma window.
template <int N = 64> __device__ __forceinline__ void wgmma_hold(float* d)
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
// Makes this thread's shared-memory writes (cp.async included) visible to the tensor cores' async proxy.
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// Shared-memory matrix descriptor: start address, leading / stride byte offsets (16-byte units), swizzle mode (1: 128-byte,
// 2: 64-byte, 3: 32-byte).
__device__ __forceinline__ u64 wgp_desc(unsigned int addr, unsigned int lbo, unsigned int sbo, u64 swizzle = 1)
{
    return (u64)((addr & 0x3FFFFu) >> 4) | ((u64)(lbo >> 4) << 16) | ((u64)(sbo >> 4) << 32) | (swizzle << 62);
}

__device__ __forceinline__ void mbar_init(unsigned int bar, unsigned int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned int bar, unsigned int bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned int bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Spins until the phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(unsigned int bar, unsigned int parity)
{
    asm volatile("{\n.reg .pred P1;\nWAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
                 "@!P1 bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// One 4-D box of the tensor map into shared memory, completing bytes on the mbarrier.
__device__ __forceinline__ void tma_load_4d(unsigned int dst, const TmaMap* map, int c0, int c1, int c2, int c3, unsigned int bar)
{
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
                 ::"r"(dst), "l"((u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
}
__device__ __forceinline__ void named_barrier(int id, int threads) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory"); }
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) { asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory"); }
