// Softmax microbenchmark for paged_prefill_wgmma (built by micro.sh beside it, after the attention sources): wgp_softmax
// alone and in parts, then beside another warpgroup's tensor products; cycles per call per warp. GPU machine only.
#include <cstdio>
#include <cstdlib>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)

// mode 0: wgp_softmax; 1: only the 64 FFMA + ex2; 2: only wgp_row_max (FMNMX, shuffles, vote); 3: softmax + pack
extern "C" __global__ void __launch_bounds__(256, 1) micro(float* out, long long* cyc, int iters, int mode)
{
    int lane = threadIdx.x & 31, tig = lane & 3;
    float s[64];
#pragma unroll
    for (int i = 0; i < 64; i++) s[i] = 0.01f * ((i * 7 + lane * 3) % 50) - 0.25f;
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f, cA = 1.f, cB = 1.f, acc = 0.f;
    bool rescale = false;
    unsigned int pa[32];
    float scale2 = 0.0883883f * 1.4426950f;
    __syncwarp();
    long long t0 = clock64();
    for (int it = 0; it < iters; it++)
    {
        wgmma_hold(s);
        if (mode == 0 || mode == 3)
        {
            wgp_softmax(s, 0, false, 1 << 30, 1 << 30, 1 << 30, tig, scale2, mA, mB, lA, lB, cA, cB, rescale);
            if (mode == 3)
            {
                wgp_pack(s, pa);
                unsigned int x = 0;
#pragma unroll
                for (int i = 0; i < 32; i++) x ^= pa[i]; // every packed word used (about 16 LOP3 more)
                acc += __uint_as_float(x & 0x3f7fffffu);
            }
        }
        else if (mode == 1)
        {
#pragma unroll
            for (int i = 0; i < 64; i++) s[i] = ex2(fmaf(s[i], scale2, -0.5f));
        }
        else
        {
            float mxA, mxB;
            wgp_row_max(s, mA, mB, scale2, mxA, mxB, rescale); // the kernel's own
            mA = mxA; mB = mxB;
#pragma unroll
            for (int i = 0; i < 64; i++) s[i] = s[i] * 0.999f; // keep s moving (64 FMUL)
        }
    }
    long long t1 = clock64();
    float sum = acc + mA + mB + lA + lB + cA + cB;
#pragma unroll
    for (int i = 0; i < 64; i++) sum += s[i];
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
    if (lane == 0) cyc[blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32] = t1 - t0;
}


// One warpgroup runs the softmax loop while the other keeps the tensor cores busy (m64n128k16 on zeroed shared memory,
// groups of 8 as S = Q K) or idles: how much the products running beside it slow the softmax.
extern "C" __global__ void __launch_bounds__(256, 1) micro2(float* out, long long* cyc, int iters, int tensorOn)
{
    extern __shared__ u32x4 fa_smem[];
    unsigned int base = (smem_addr(fa_smem) + 1023u) & ~1023u;
    for (int i = threadIdx.x; i < 32768 / 16; i += 256)
        asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};" ::"r"(base + 16 * i), "r"(0) : "memory");
    fence_async_shared();
    __syncthreads();
    int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    int lane = threadIdx.x & 31, tig = lane & 3;
    if (wg == 0)
    {
        float d[64];
#pragma unroll
        for (int i = 0; i < 64; i++) d[i] = 0.f;
        if (tensorOn)
            for (int it = 0; it < iters * 3; it++)
            {
                wgmma_hold(d);
                wgmma_fence();
#pragma unroll
                for (int kk = 0; kk < 8; kk++)
                {
                    unsigned int koff = (unsigned int)((kk >> 2) * WGP_HALF + (kk & 3) * 32);
                    wgmma_ss(d, wgp_desc(base + koff, 16, 1024), wgp_desc(base + koff, 16, 1024), 1);
                }
                wgmma_commit();
                wgmma_wait<0>();
                wgmma_hold(d);
            }
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < 64; i++) sum += d[i];
        out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
        return;
    }
    float s[64];
#pragma unroll
    for (int i = 0; i < 64; i++) s[i] = 0.01f * ((i * 7 + lane * 3) % 50) - 0.25f;
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f, cA = 1.f, cB = 1.f;
    bool rescale = false;
    float scale2 = 0.0883883f * 1.4426950f;
    long long t0 = clock64();
    for (int it = 0; it < iters; it++)
    {
        wgmma_hold(s);
        wgp_softmax(s, 0, false, 1 << 30, 1 << 30, 1 << 30, tig, scale2, mA, mB, lA, lB, cA, cB, rescale);
    }
    long long t1 = clock64();
    float sum = mA + mB + lA + lB + cA + cB;
#pragma unroll
    for (int i = 0; i < 64; i++) sum += s[i];
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
    if (lane == 0) cyc[blockIdx.x * 4 + (threadIdx.x - 128) / 32] = t1 - t0;
}

int main()
{
    setvbuf(stdout, NULL, _IONBF, 0);
    float* out; long long* cyc;
    CK(cudaMalloc(&out, 132 * 256 * 4)); CK(cudaMalloc(&cyc, 132 * 8 * 8));
    const char* names[] = {"wgp_softmax", "64 FFMA + ex2 only", "max + shuffles + vote + 64 FMUL", "wgp_softmax + pack"};
    int iters = 2000;
    for (int mode = 0; mode < 4; mode++)
        for (int threads : {32, 128, 256})
        {
            micro<<<132, threads>>>(out, cyc, 10, mode); CK(cudaDeviceSynchronize());
            micro<<<132, threads>>>(out, cyc, iters, mode); CK(cudaDeviceSynchronize());
            std::vector<long long> h(132 * threads / 32);
            CK(cudaMemcpy(h.data(), cyc, h.size() * 8, cudaMemcpyDeviceToHost));
            double m = 0; for (auto v : h) m += v; m /= h.size();
            printf("%-34s %3d threads a block (%d warp(s) a quarter): %.0f cycles a call\n", names[mode], threads,
                   threads == 256 ? 2 : 1, m / iters);
        }
    for (int on = 0; on < 2; on++)
    {
        micro2<<<132, 256, 34 * 1024>>>(out, cyc, 10, on); CK(cudaDeviceSynchronize());
        micro2<<<132, 256, 34 * 1024>>>(out, cyc, iters, on); CK(cudaDeviceSynchronize());
        std::vector<long long> h(132 * 4);
        CK(cudaMemcpy(h.data(), cyc, h.size() * 8, cudaMemcpyDeviceToHost));
        double m = 0; for (auto v : h) m += v; m /= h.size();
        printf("wgp_softmax, the other warpgroup %s: %.0f cycles a call\n", on ? "running m64n128k16 products" : "idle", m / iters);
    }
    return 0;
}
