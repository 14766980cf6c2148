// Standalone check and timing of gemm_wgmma (src/Kernels/Cuda/Kernels/gemm_hopper.cu) against cuBLAS, built by
// wgmma.sh beside it with the kernel sources in front of it, on the GPU machine only.
// Check: every output element against a cuBLAS product in f32 (SwiGLU, plain and accumulating), on prefill shapes and
// odd ones (row tails, an odd row-tile count, k not a multiple of 64, n not a multiple of the tile).
// Timing: at the card's power limit (after seconds of products), the gate/up product + SwiGLU as gemm_wgmma against
// cuBLAS's product followed by a 16-byte SwiGLU kernel, and the plain shapes against cuBLAS, alternating, with NVML's
// power and SM clock read while each runs.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <functional>
#include <chrono>
#include <thread>
#include <cuda.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <nvml.h>
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("CUDA %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); exit(1); } } while (0)
#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { printf("cuBLAS %d at %s:%d\n", (int)s_, __FILE__, __LINE__); exit(1); } } while (0)
#define CU(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { printf("driver %d at %s:%d\n", (int)r_, __FILE__, __LINE__); exit(1); } } while (0)

__global__ void fill(unsigned short* p, size_t n, unsigned seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    {
        unsigned h = (unsigned)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15; h *= 0x27d4eb2du; h ^= h >> 16;
        float f = ((h & 0xffff) / 32768.f - 1.f) * scale;
        p[i] = (unsigned short)(__float_as_uint(f) >> 16);
    }
}
// y (rows, n) from the f32 reference ref (rows, refLd): SwiGLU of its two halves, or ref + y0 (accumulate), or ref.
// Counts elements outside |y - want| <= 1e-2 |want| + 1e-2 rms and records the largest error relative to rms.
__global__ void check(const unsigned short* y, const unsigned short* y0, const float* ref, long long rows, int n, int refLd,
                      int mode, float rms, unsigned long long* bad, unsigned int* worst)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < rows * n; i += (long long)gridDim.x * blockDim.x)
    {
        long long r = i / n; int c = (int)(i % n);
        float want;
        if (mode == 1) { float g = ref[r * refLd + c], u = ref[r * refLd + n + c]; want = g / (1.f + expf(-g)) * u; }
        else want = ref[r * refLd + c] + (mode == 2 ? __uint_as_float((unsigned)y0[i] << 16) : 0.f);
        float got = __uint_as_float((unsigned)y[i] << 16);
        float err = fabsf(got - want);
        if (!(err <= 1e-2f * fabsf(want) + 1e-2f * rms)) atomicAdd(bad, 1ull);
        atomicMax(worst, __float_as_uint(err / rms));
    }
}
__global__ void swiglu_ref(const unsigned short* gu, unsigned short* y, long long rows, int n)
{
    long long pieces = (long long)n / 8;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < rows * pieces; i += (long long)gridDim.x * blockDim.x)
    {
        long long r = i / pieces; int c = (int)(i % pieces) * 8;
        uint4 g = *(const uint4*)(gu + r * 2 * n + c), u = *(const uint4*)(gu + r * 2 * n + n + c);
        const unsigned* gw = &g.x; const unsigned* uw = &u.x; unsigned o[4];
        for (int j = 0; j < 4; j++)
        {
            float g0 = __uint_as_float(gw[j] << 16), g1 = __uint_as_float(gw[j] & 0xffff0000u);
            float u0 = __uint_as_float(uw[j] << 16), u1 = __uint_as_float(uw[j] & 0xffff0000u);
            o[j] = pack_bf16(g0 / (1.f + expf(-g0)) * u0, g1 / (1.f + expf(-g1)) * u1);
        }
        *(uint4*)(y + r * n + c) = make_uint4(o[0], o[1], o[2], o[3]);
    }
}

static cublasHandle_t blas;
static nvmlDevice_t nvdev;
static int maxClusters;

static void encode(TmaMap* map, const void* p, int k, long long rows, int boxK = GM_BK, int boxRows = 128)
{
    cuuint64_t dims[2] = { (cuuint64_t)k, (cuuint64_t)rows }, strides[1] = { (cuuint64_t)k * 2 };
    cuuint32_t box[2] = { (cuuint32_t)boxK, (cuuint32_t)boxRows }, es[2] = { 1, 1 };
    CU(cuTensorMapEncodeTiled((CUtensorMap*)map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void*)p, dims, strides, box, es,
        CU_TENSOR_MAP_INTERLEAVE_NONE, boxK == 64 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}
static int group = 8;
static void ours(const unsigned short* x, const unsigned short* w, unsigned short* y, int rows, int k, int n, int swiglu, int acc)
{
    GemmParams g; memset(&g, 0, sizeof g);
    encode(&g.a, x, k, rows);
    encode(&g.b, w, k, swiglu ? 2LL * n : n);
    g.y = y; g.rows = rows; g.k = k; g.n = n; g.ldy = n; g.swiglu = swiglu; g.accumulate = acc;
    // SwiGLU outputs by TMA stores where the TMA can address y (as GemmKernels); HARNESS_DIRECT_STORE=1 keeps them out
    g.tmaStore = swiglu && n % 8 == 0 && ((unsigned long long)y & 15) == 0 && !getenv("HARNESS_DIRECT_STORE");
    if (g.tmaStore) encode(&g.c, y, n, rows, 64, 64);
    g.tilesM = (rows + 127) / 128; g.tilesN = swiglu ? (n + 127) / 128 : (n + 255) / 256; g.group = group;
    int pairs = (g.tilesM + 1) / 2 * g.tilesN;
    int clusters = pairs < maxClusters ? pairs : maxClusters;
    gemm_wgmma<<<2 * clusters, GM_THREADS, GM_SHARED>>>(g);
}
// cuBLAS, row-major y (rows, n) = x (rows, k) w (n, k)^T: column-major y^T = w x^T.
static void blasBf16(const unsigned short* x, const unsigned short* w, void* y, int rows, int k, int n, bool f32out, float beta)
{
    float alpha = 1.f;
    CB(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &alpha, w, CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, y,
                    f32out ? CUDA_R_32F : CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static bool verify(const char* name, int rows, int k, int n, int mode)
{
    size_t wRows = mode == 1 ? 2 * (size_t)n : n, refLd = wRows;
    unsigned short *x, *w, *y, *y0; float* ref; unsigned long long* bad; unsigned int* worst;
    CK(cudaMalloc(&x, (size_t)rows * k * 2)); CK(cudaMalloc(&w, wRows * k * 2)); CK(cudaMalloc(&y, (size_t)rows * n * 2));
    CK(cudaMalloc(&y0, (size_t)rows * n * 2)); CK(cudaMalloc(&ref, (size_t)rows * refLd * 4));
    CK(cudaMalloc(&bad, 8)); CK(cudaMalloc(&worst, 4)); CK(cudaMemset(bad, 0, 8)); CK(cudaMemset(worst, 0, 4));
    fill<<<1024, 256>>>(x, (size_t)rows * k, 11u + rows, 1.f);
    fill<<<1024, 256>>>(w, wRows * k, 17u + k, 2.f / sqrtf((float)k));
    fill<<<1024, 256>>>(y0, (size_t)rows * n, 23u, 1.f);
    CK(cudaMemcpy(y, y0, (size_t)rows * n * 2, cudaMemcpyDeviceToDevice));
    blasBf16(x, w, ref, rows, k, (int)wRows, true, 0.f);
    ours(x, w, y, rows, k, n, mode == 1, mode == 2);
    CK(cudaGetLastError());
    check<<<2048, 256>>>(y, y0, ref, rows, n, (int)refLd, mode, mode == 1 ? 0.5f : 1.f, bad, worst);
    CK(cudaDeviceSynchronize());
    unsigned long long hb; unsigned int hw; CK(cudaMemcpy(&hb, bad, 8, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(&hw, worst, 4, cudaMemcpyDeviceToHost));
    float wf; memcpy(&wf, &hw, 4);
    printf("check %-28s rows %6d k %6d n %6d: %llu of %lld outside tolerance, worst error %.2e of rms  %s\n", name, rows, k, n, hb,
           (long long)rows * n, wf, hb == 0 ? "ok" : "FAILED");
    cudaFree(x); cudaFree(w); cudaFree(y); cudaFree(y0); cudaFree(ref); cudaFree(bad); cudaFree(worst);
    return hb == 0;
}

struct Sample { double ms, watts, mhz; };
static Sample timeHot(const std::function<void()>& f, double seconds)
{
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    f(); CK(cudaDeviceSynchronize());
    // how many launches fill `seconds`
    CK(cudaEventRecord(e0)); f(); CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
    float one; CK(cudaEventElapsedTime(&one, e0, e1));
    int iters = (int)(seconds * 1000 / one) + 1;
    CK(cudaEventRecord(e0));
    for (int i = 0; i < iters; i++) f();
    CK(cudaEventRecord(e1));
    std::this_thread::sleep_for(std::chrono::milliseconds((int)(seconds * 500)));
    unsigned mw = 0, mhz = 0;
    nvmlDeviceGetPowerUsage(nvdev, &mw);
    nvmlDeviceGetClockInfo(nvdev, NVML_CLOCK_SM, &mhz);
    CK(cudaEventSynchronize(e1));
    float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return { ms / iters, mw / 1000.0, (double)mhz };
}

int main(int argc, char** argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (nvmlInit() != NVML_SUCCESS || nvmlDeviceGetHandleByIndex(0, &nvdev) != NVML_SUCCESS) { printf("NVML unavailable\n"); return 1; }
    cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
    CB(cublasCreate(&blas));
    CK(cudaFuncSetAttribute(gemm_wgmma, cudaFuncAttributeMaxDynamicSharedMemorySize, GM_SHARED));
    cudaLaunchConfig_t cfg = {}; cfg.gridDim = dim3(2 * 66); cfg.blockDim = dim3(GM_THREADS); cfg.dynamicSmemBytes = GM_SHARED;
    CK(cudaOccupancyMaxActiveClusters(&maxClusters, gemm_wgmma, &cfg));
    printf("%s: %d SMs; %d clusters of 2 at once; shared %d bytes per block\n", prop.name, prop.multiProcessorCount, maxClusters, GM_SHARED);
    if (argc > 1) group = atoi(argv[1]);

    bool ok = true;
    ok &= verify("swiglu 8K gate/up", 8192, 4096, 14336, 1);
    ok &= verify("swiglu odd", 300, 136, 200, 1);     // 3 row tiles (one pair half empty), k tail, n tail
    ok &= verify("swiglu n % 8 = 2 (direct)", 300, 136, 202, 1); // y rows not 16-byte multiples: stores from registers
    ok &= verify("plain 8K qkv", 8192, 4096, 6144, 0);
    ok &= verify("plain odd", 1000, 200, 328, 0);
    ok &= verify("accumulate 8K down", 8192, 14336, 4096, 2);
    ok &= verify("accumulate odd", 129, 72, 264, 2);
    ok &= verify("swiglu tiny (box > tensor)", 5, 8, 8, 1);
    printf("checks: %s\n", ok ? "all ok" : "SOME FAILED");
    if (!ok) return 1;

    const int rows = argc > 2 ? atoi(argv[2]) : 8192, hid = 4096, inter = 14336;
    unsigned short *x, *xi, *wgu, *wqkv, *wo, *wd, *gu, *act, *y;
    CK(cudaMalloc(&x, (size_t)rows * hid * 2)); CK(cudaMalloc(&xi, (size_t)rows * inter * 2));
    CK(cudaMalloc(&wgu, 2ull * inter * hid * 2)); CK(cudaMalloc(&wqkv, 6144ull * hid * 2)); CK(cudaMalloc(&wo, (size_t)hid * hid * 2));
    CK(cudaMalloc(&wd, (size_t)hid * inter * 2)); CK(cudaMalloc(&gu, (size_t)rows * 2 * inter * 2)); CK(cudaMalloc(&act, (size_t)rows * inter * 2));
    CK(cudaMalloc(&y, (size_t)rows * 6144 * 2));
    fill<<<1024, 256>>>(x, (size_t)rows * hid, 1, 1.f); fill<<<1024, 256>>>(xi, (size_t)rows * inter, 2, 1.f);
    fill<<<1024, 256>>>(wgu, 2ull * inter * hid, 3, 0.03f); fill<<<1024, 256>>>(wqkv, 6144ull * hid, 4, 0.03f);
    fill<<<1024, 256>>>(wo, (size_t)hid * hid, 5, 0.03f); fill<<<1024, 256>>>(wd, (size_t)hid * inter, 6, 0.01f);
    CK(cudaDeviceSynchronize());
    auto heat = [&](double s) { timeHot([&] { blasBf16(x, wgu, gu, rows, hid, 2 * inter, false, 0.f); }, s); };
    printf("heating 2 s with cuBLAS gate/up products\n");
    heat(2.0);
    double guFlop = 2.0 * rows * hid * 2.0 * inter;
    for (int round = 0; round < (argc > 3 ? 2 : 3); round++)
    {
        Sample a = timeHot([&] { ours(x, wgu, act, rows, hid, inter, 1, 0); }, 0.4);
        Sample b = timeHot([&] { blasBf16(x, wgu, gu, rows, hid, 2 * inter, false, 0.f); swiglu_ref<<<4096, 256>>>(gu, act, rows, inter); }, 0.4);
        Sample c = timeHot([&] { blasBf16(x, wgu, gu, rows, hid, 2 * inter, false, 0.f); }, 0.4);
        printf("round %d gate/up+swiglu: wgmma %.3f ms (%.0f TFLOP/s, %.0f W, %.0f MHz) | cuBLAS+swiglu %.3f ms (%.0f W, %.0f MHz) | cuBLAS product alone %.3f ms (%.0f TFLOP/s, %.0f W, %.0f MHz)\n",
               round, a.ms, guFlop / a.ms / 1e9, a.watts, a.mhz, b.ms, b.watts, b.mhz, c.ms, guFlop / c.ms / 1e9, c.watts, c.mhz);
    }
    if (argc > 3 && strcmp(argv[3], "quick") == 0) return 0;
    struct P { const char* name; const unsigned short* x; const unsigned short* w; int k, n, acc; };
    P plain[] = { { "qkv", x, wqkv, hid, 6144, 0 }, { "o (+=)", x, wo, hid, hid, 1 }, { "down (+=)", xi, wd, inter, hid, 1 } };
    for (auto& p : plain)
    {
        double fl = 2.0 * rows * p.k * p.n;
        for (int round = 0; round < 2; round++)
        {
            Sample a = timeHot([&] { ours(p.x, p.w, y, rows, p.k, p.n, 0, p.acc); }, 0.3);
            Sample b = timeHot([&] { blasBf16(p.x, p.w, y, rows, p.k, p.n, false, p.acc ? 1.f : 0.f); }, 0.3);
            printf("round %d %-10s: wgmma %.3f ms (%.0f TFLOP/s, %.0f W, %.0f MHz) | cuBLAS %.3f ms (%.0f TFLOP/s, %.0f W, %.0f MHz)\n",
                   round, p.name, a.ms, fl / a.ms / 1e9, a.watts, a.mhz, b.ms, fl / b.ms / 1e9, b.watts, b.mhz);
        }
    }
    // a 32-layer chain of the four products (+ SwiGLU), as a prefill runs them: ours against cuBLAS, alternating
    auto chain = [&](bool mine)
    {
        for (int l = 0; l < 32; l++)
        {
            if (mine) ours(x, wqkv, y, rows, hid, 6144, 0, 0); else blasBf16(x, wqkv, y, rows, hid, 6144, false, 0.f);
            if (mine) ours(x, wo, y, rows, hid, hid, 0, 1); else blasBf16(x, wo, y, rows, hid, hid, false, 1.f);
            if (mine) ours(x, wgu, xi, rows, hid, inter, 1, 0);
            else { blasBf16(x, wgu, gu, rows, hid, 2 * inter, false, 0.f); swiglu_ref<<<4096, 256>>>(gu, xi, rows, inter); }
            if (mine) ours(xi, wd, y, rows, inter, hid, 0, 1); else blasBf16(xi, wd, y, rows, inter, hid, false, 1.f);
        }
    };
    for (int round = 0; round < 3; round++)
    {
        Sample a = timeHot([&] { chain(true); }, 0.6);
        Sample b = timeHot([&] { chain(false); }, 0.6);
        printf("round %d 32-layer chain: wgmma %.1f ms (%.0f W, %.0f MHz) | cuBLAS %.1f ms (%.0f W, %.0f MHz)\n", round, a.ms, a.watts, a.mhz, b.ms, b.watts, b.mhz);
    }
    return 0;
}
