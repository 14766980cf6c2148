// Standalone check and timing of paged_prefill_wgmma against paged_prefill_fa128g (itself checked against the CPU
// reference by the C# kernel tests) on random paged KV pools; built by run.sh beside it, on the GPU machine only.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <random>
#include <cmath>
#include <cuda.h>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)
static unsigned short h2bf(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return (unsigned short)(u >> 16); }
static float bf2h(unsigned short b) { unsigned u = (unsigned)b << 16; float f; memcpy(&f, &u, 4); return f; }

struct Case { int queries, first, splits; };

#ifdef HARNESS_HEAT
// HARNESS_HEAT (link -lcublas): times the 8K attention between cuBLAS products of the gate/up shape, as in a prefill,
// where the card runs at its power limit.
#include <cublas_v2.h>
__global__ void fill_bf16(unsigned short* p, size_t n, unsigned seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    {
        unsigned h = (unsigned)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        float f = ((h & 0xffff) / 32768.f - 1.f) * scale;
        p[i] = (unsigned short)(__float_as_uint(f) >> 16);
    }
}
#endif

int main(int argc, char** argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
#ifndef HARNESS_PAGE
#define HARNESS_PAGE 16
#endif
#ifndef HARNESS_LAYERS
#define HARNESS_LAYERS 1 // layers of the pool (a page holds K and V of every layer, as KvLayout)
#endif
#ifndef HARNESS_PAD
#define HARNESS_PAD 0    // elements added to the page stride
#endif
#ifndef HARNESS_SEQ
#define HARNESS_SEQ 0    // 1: pages in order, as a fresh engine allocates them; 0: shuffled
#endif
    const int heads = 32, kvHeads = 8, d = 128, pageSize = HARNESS_PAGE, tokenStride = kvHeads * d;
    const int layers = HARNESS_LAYERS, layer = layers / 2;
    const long long layerStride = 2LL * pageSize * tokenStride, pageStride = layers * layerStride + HARNESS_PAD;
    printf("pool: %d layers (layer %d used), page stride %lld bytes, pages %s\n", layers, layer, pageStride * 2, HARNESS_SEQ ? "in order" : "shuffled");
    int fa128Shared = 3 * 2 * 64 * 136 * 2;
    CK(cudaFuncSetAttribute(paged_prefill_fa128g, cudaFuncAttributeMaxDynamicSharedMemorySize, fa128Shared));
    CK(cudaFuncSetAttribute(paged_prefill_wgmma, cudaFuncAttributeMaxDynamicSharedMemorySize, WGP_SHARED));
    printf("CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = %d, SWIZZLE_128B = %d, L2_256B = %d\n", (int)CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, (int)CU_TENSOR_MAP_SWIZZLE_128B, (int)CU_TENSOR_MAP_L2_PROMOTION_L2_256B);
    std::mt19937 rng(1234);
    std::vector<Case> cases = { {1, 0, 1}, {5, 3, 1}, {128, 0, 1}, {1000, 0, 1}, {77, 300, 1}, {333, 1000, 1}, {2049, 17, 1}, {19, 32749, 1}, {19, 32749, 16}, {200, 5000, 4}, {8192, 0, 1}, {32768, 0, 1} };
    bool allOk = true;
    int only = argc > 1 ? atoi(argv[1]) : 0;
    for (auto c : cases)
    {
        if (only && c.queries != only) continue;
        int total = c.first + c.queries;
        int pages = (total + pageSize - 1) / pageSize;
        int poolPages = pages + 7;
        size_t poolElems = (size_t)poolPages * pageStride, hostElems = (size_t)poolPages * layerStride;
        std::vector<unsigned short> hkv(hostElems), hq((size_t)c.queries * heads * d);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        // keys scaled so scores have spread: q, k in [-1,1] * 1.0
        for (auto& x : hkv) x = h2bf(u(rng));
        for (auto& x : hq) x = h2bf(u(rng) * 1.5f);

        std::vector<int> perm(poolPages); for (int i = 0; i < poolPages; i++) perm[i] = i; if (!HARNESS_SEQ) std::shuffle(perm.begin(), perm.end(), rng);
        // unwritten slots of the last page and the spare pages hold NaN: the kernels must not let them into O
        for (int pos = total; pos < pages * pageSize; pos++)
            for (int half = 0; half < 2; half++)
                for (int e = 0; e < tokenStride; e++)
                    hkv[(size_t)perm[pos / pageSize] * layerStride + (size_t)half * pageSize * tokenStride + (size_t)(pos % pageSize) * tokenStride + e] = 0x7fc0;
        for (int pg = pages; pg < poolPages; pg++)
            for (long long e = 0; e < layerStride; e++) hkv[(size_t)perm[pg] * layerStride + e] = 0x7fc0;
        unsigned short *kv, *q, *o1, *o2; int* pt; float* ws;
        CK(cudaMalloc(&kv, poolElems * 2)); CK(cudaMalloc(&q, hq.size() * 2)); CK(cudaMalloc(&o1, hq.size() * 2)); CK(cudaMalloc(&o2, hq.size() * 2));
        CK(cudaMalloc(&pt, pages * 4)); CK(cudaMalloc(&ws, (8LL << 20) * 4));
        CK(cudaMemset(kv, 0xff, poolElems * 2)); // other layers: NaN
        CK(cudaMemcpy2D(kv + layer * layerStride, pageStride * 2, hkv.data(), layerStride * 2, layerStride * 2, poolPages, cudaMemcpyHostToDevice)); CK(cudaMemcpy(q, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(pt, perm.data(), pages * 4, cudaMemcpyHostToDevice));
        CK(cudaMemset(o1, 0, hq.size() * 2)); CK(cudaMemset(o2, 0xff, hq.size() * 2));
        PrefillParams p{};
        p.q = q; p.kv = kv; p.pageTable = pt; p.pageStride = pageStride; p.layerOffset = layer * layerStride; p.tokenStride = tokenStride; p.pageSize = pageSize;
        p.queries = c.queries; p.heads = heads; p.kvHeads = kvHeads; p.headDim = d; p.firstPosition = c.first; p.scale = 1.f / sqrtf((float)d);
        int rows = 128 / (heads / kvHeads), qBlocks = (c.queries + rows - 1) / rows;
        auto runRef = [&]() { p.out = o1; paged_prefill_fa128g<<<dim3(qBlocks, kvHeads), 256, fa128Shared>>>(p); };
        WgmmaPrefillParams wp{};
        {
            cuuint64_t dims[4] = { (cuuint64_t)tokenStride, (cuuint64_t)pageSize, (cuuint64_t)(2 * layers), (cuuint64_t)poolPages };
            cuuint64_t strides[3] = { (cuuint64_t)tokenStride * 2, (cuuint64_t)pageSize * tokenStride * 2, (cuuint64_t)pageStride * 2 };
            cuuint32_t box[4] = { 64, (cuuint32_t)pageSize, 1, 1 }, es[4] = { 1, 1, 1, 1 };
            CUresult r = cuTensorMapEncodeTiled((CUtensorMap*)&wp.kvMap, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, kv, dims, strides, box, es,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
            if (r != CUDA_SUCCESS) { printf("cuTensorMapEncodeTiled failed %d\n", (int)r); exit(1); }
        }
        auto runNew = [&]() {
            p.out = o2;
            wp.p = p;
            if (c.splits <= 1) { wp.acc = nullptr; paged_prefill_wgmma<<<dim3(qBlocks, kvHeads, 1), WGP_THREADS, WGP_SHARED>>>(wp); }
            else
            {
                int tiles = (total - 1) / 128 + 1, per = (tiles + c.splits - 1) / c.splits, splits = (tiles + per - 1) / per;
                long long part = (long long)c.queries * heads * splits;
                PrefillSplitParams sp{}; sp.p = p; sp.acc = ws; sp.max = ws + part * 128; sp.sum = ws + part * 129; sp.splits = splits; sp.tilesPerSplit = per;
                wp.acc = sp.acc; wp.max = sp.max; wp.sum = sp.sum; wp.splits = splits; wp.tilesPerSplit = per;
                paged_prefill_wgmma<<<dim3(qBlocks, kvHeads, splits), WGP_THREADS, WGP_SHARED>>>(wp);
                prefill_split_reduce<<<dim3(heads, c.queries), 128>>>(sp);
            }
        };
        runRef(); CK(cudaGetLastError()); runNew(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
        std::vector<unsigned short> r1(hq.size()), r2(hq.size());
        CK(cudaMemcpy(r1.data(), o1, hq.size() * 2, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(r2.data(), o2, hq.size() * 2, cudaMemcpyDeviceToHost));
        double maxErr = 0, sumErr = 0; long bad = 0; long worst = -1;
        for (size_t i = 0; i < r1.size(); i++)
        {
            float a = bf2h(r1[i]), b = bf2h(r2[i]);
            double e = std::isfinite(b) ? fabs(a - b) : 1e9;
            if (e > maxErr) { maxErr = e; worst = (long)i; }
            sumErr += e; if (e > 2e-2) bad++;
        }
        bool ok = maxErr < 2e-2;
        allOk &= ok;
        printf("case q=%d first=%d splits=%d: max|diff| %.3g mean %.3g bad %ld %s", c.queries, c.first, c.splits, maxErr, sumErr / r1.size(), bad, ok ? "OK" : "FAIL");
        if (!ok && worst >= 0) printf(" (worst at row %ld head %ld dim %ld: ref %g new %g)", worst / (heads * d), (worst / d) % heads, worst % d, bf2h(r1[worst]), bf2h(r2[worst]));
        printf("\n");
        if (c.queries >= 8192)
        {
            cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
            double flops = 4.0 * d * heads * ((double)c.queries * (c.queries + 1) / 2);
            for (int which = 0; which < 2; which++)
            {
                for (int w = 0; w < 2; w++) { if (which) runNew(); else runRef(); }
                int reps = c.queries >= 32768 ? 10 : 40;
                cudaEventRecord(e0);
                for (int r = 0; r < reps; r++) { if (which) runNew(); else runRef(); }
                cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
                float ms; cudaEventElapsedTime(&ms, e0, e1); ms /= reps;
                printf("  %s %dK: %.3f ms, %.1f TFLOP/s\n", which ? "wgmma " : "fa128g", c.queries / 1024, ms, flops / ms / 1e9);
            }
#ifdef WGP_TIMING
            {
                // One more launch with the counters zeroed: each consumer warp's cycles per part, per loop tile.
                unsigned long long z[16] = {0}, t[16];
                CK(cudaMemcpyToSymbol(wgp_timing, z, sizeof z)); runNew(); CK(cudaDeviceSynchronize());
                CK(cudaMemcpyFromSymbol(t, wgp_timing, sizeof t));
                const char* names[] = {"prologue", "full wait", "zero V", "turn wait", "issue", "wait S", "softmax", "wait PV", "pack+loop", "epilogue"};
                double tiles = (double)t[10], warps = (double)t[11], total = 0;
                for (int i = 0; i < 10; i++) total += t[i];
                printf("  timing %dK: %.0f warps, %.1f loop tiles a warp, %.0f cycles a warp in all:", c.queries / 1024, warps, tiles / warps, total / warps);
                for (int i = 0; i < 10; i++)
                    printf(" %s %.1f%% (%.0f a %s)", names[i], 100.0 * t[i] / total, (i == 0 || i == 9) ? t[i] / warps : t[i] / tiles, (i == 0 || i == 9) ? "warp" : "tile");
                printf("\n  producer: %llu tiles, empty waits %.0f cycles a tile, the rest %.0f a tile\n", t[14], (double)t[12] / t[14], (double)t[13] / t[14]);
            }
#endif
#ifdef HARNESS_HEAT
            if (c.queries == 8192)
            {
                const int M = 8192, K = 4096, N = 28672;
                unsigned short *A, *B, *C;
                CK(cudaMalloc(&A, (size_t)M * K * 2)); CK(cudaMalloc(&B, (size_t)K * N * 2)); CK(cudaMalloc(&C, (size_t)M * N * 2));
                fill_bf16<<<1024, 256>>>(A, (size_t)M * K, 1, 1.f); fill_bf16<<<1024, 256>>>(B, (size_t)K * N, 2, 0.02f);
                cublasHandle_t h; cublasCreate(&h);
                float alpha = 1, beta = 0;
                auto gemm = [&]() { cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_16BF, K, A, CUDA_R_16BF, K, &beta, C, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT); };
                auto timeIt = [&](auto f, int reps) { cudaEventRecord(e0); for (int r = 0; r < reps; r++) f(); cudaEventRecord(e1); cudaEventSynchronize(e1); float ms; cudaEventElapsedTime(&ms, e0, e1); return ms / reps; };
                for (int w = 0; w < 5; w++) gemm();
                for (int round = 0; round < 2; round++)
                {
                    float g = timeIt(gemm, 30), a = timeIt(runNew, 30), m = timeIt([&]() { gemm(); runNew(); }, 30), g2 = timeIt(gemm, 30);
                    printf("  heat: gemm %.3f ms (%.0f TFLOP/s), attention alone %.3f ms, gemm + attention %.3f ms: attention in the mix %.3f ms (%.1f TFLOP/s); gemm again %.3f ms\n",
                           g, 2.0 * M * N * K / g / 1e9, a, m, m - g, flops / (m - g) / 1e9, g2);
                }
                cublasDestroy(h); cudaFree(A); cudaFree(B); cudaFree(C);
            }
#endif
        }
        cudaFree(kv); cudaFree(q); cudaFree(o1); cudaFree(o2); cudaFree(pt); cudaFree(ws);
    }
    printf(allOk ? "ALL OK\n" : "SOME FAILED\n");
    return 0;
}
