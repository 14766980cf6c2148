// Standalone timing of cuBLASLt's candidate algorithms for the prefill's four projections at the card's power limit,
// built by run.sh beside it, on the GPU machine only. A prefill runs its products back to back for hundreds of
// milliseconds, so the clock a product sees is the one the 700 W limit leaves it, not the cold clock a few launches
// see: this times every heuristic candidate hot (after seconds of sustained products) and reads the board's power and
// SM clock from NVML while it runs, then times a 32-layer chain of the four products with cuBLASLt's first picks
// against the hot-fastest picks, alternating, to see whether a choice made hot survives a real sequence.
// Operands and layouts as CublasLtMatmul.Bf16: y (rows, n) = x (rows, k) w (n, k)^T, all row-major bf16, f32 compute;
// o and down accumulate into y (beta = 1), as the engine's residual adds.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <chrono>
#include <thread>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <nvml.h>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)
#define LT(x) do { cublasStatus_t st_ = (x); if (st_ != CUBLAS_STATUS_SUCCESS) { printf("cuBLASLt %d at %s:%d\n", (int)st_, __FILE__, __LINE__); exit(1); } } while (0)

__global__ void fill_bf16(unsigned short* p, size_t n, unsigned seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    {
        unsigned h = (unsigned)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        float f = ((h & 0xffff) / 32768.f - 1.f) * scale;
        p[i] = (unsigned short)(__float_as_uint(f) >> 16);
    }
}

struct Shape { const char* name; int rows, k, n; bool acc; };
struct Plan
{
    cublasLtMatmulDesc_t op; cublasLtMatrixLayout_t a, b, c;
    std::vector<cublasLtMatmulHeuristicResult_t> cands;
};

static cublasLtHandle_t lt;
static void* workspace;
static const size_t workspaceBytes = 32u << 20;
static nvmlDevice_t nvdev;

static Plan plan(const Shape& s, int requested)
{
    Plan p;
    LT(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, s.k, s.n, s.k));
    LT(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, s.k, s.rows, s.k));
    LT(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, s.n, s.rows, s.n));
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = workspaceBytes;
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    p.cands.resize(requested);
    int got = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, requested, p.cands.data(), &got));
    p.cands.resize(got);
    cublasLtMatmulPreferenceDestroy(pref);
    return p;
}

static cublasStatus_t run(const Plan& p, const cublasLtMatmulAlgo_t* algo, const void* x, const void* w, void* y, bool acc, cudaStream_t st)
{
    float alpha = 1.f, beta = acc ? 1.f : 0.f;
    return cublasLtMatmul(lt, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, algo, workspace, workspaceBytes, st);
}

static void describe(const cublasLtMatmulAlgo_t& a, char* out, size_t len)
{
    int id = 0, tile = 0, stages = 0, splitk = 0, swz = 0, cluster = 0, custom = 0, red = 0; size_t w;
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swz, sizeof swz, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster, sizeof cluster, &w);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &custom, sizeof custom, &w);
    snprintf(out, len, "algo %d tile %d stages %d splitk %d red %d swizzle %d cluster %d custom %d", id, tile, stages, splitk, red, swz, cluster, custom);
}

// Seconds of back-to-back launches of one algorithm (brings the card to its power limit).
static void heat(const Plan& p, const cublasLtMatmulAlgo_t* algo, const void* x, const void* w, void* y, bool acc, double seconds)
{
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds)
    {
        for (int i = 0; i < 20; i++) LT(run(p, algo, x, w, y, acc, 0));
        CK(cudaDeviceSynchronize());
    }
}

struct Sample { double ms, watts, mhz, hostUs; };

// Times `iters` launches after `warm` untimed ones; power and clock read from NVML halfway through.
static Sample timeHot(const Plan& p, const cublasLtMatmulAlgo_t* algo, const void* x, const void* w, void* y, bool acc, int warm, int iters)
{
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    for (int i = 0; i < warm; i++) if (run(p, algo, x, w, y, acc, 0) != CUBLAS_STATUS_SUCCESS) return { -1, 0, 0, 0 };
    CK(cudaEventRecord(e0));
    auto h0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) LT(run(p, algo, x, w, y, acc, 0));
    double hostUs = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - h0).count() / iters;
    CK(cudaEventRecord(e1));
    // the launches are queued: sample while they run
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    unsigned mw = 0, mhz = 0;
    nvmlDeviceGetPowerUsage(nvdev, &mw);
    nvmlDeviceGetClockInfo(nvdev, NVML_CLOCK_SM, &mhz);
    CK(cudaEventSynchronize(e1));
    float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return { ms / iters, mw / 1000.0, (double)mhz, hostUs };
}

int main(int argc, char** argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int requested = argc > 1 ? atoi(argv[1]) : 24;
    bool variants = argc > 2 && strcmp(argv[2], "variants") == 0;
    if (nvmlInit() != NVML_SUCCESS || nvmlDeviceGetHandleByIndex(0, &nvdev) != NVML_SUCCESS) { printf("NVML unavailable\n"); return 1; }
    unsigned limit = 0; nvmlDeviceGetEnforcedPowerLimit(nvdev, &limit);
    cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, power limit %.0f W\n", prop.name, limit / 1000.0);
    LT(cublasLtCreate(&lt));
    CK(cudaMalloc(&workspace, workspaceBytes));

    const int rows = 8192;
    Shape shapes[] = { { "qkv", rows, 4096, 6144, false }, { "o", rows, 4096, 4096, true },
                       { "gate/up", rows, 4096, 28672, false }, { "down", rows, 14336, 4096, true } };
    // one set of operands big enough for every shape; each layer's weights distinct, as in a model (L2 holds none)
    size_t xElems = (size_t)rows * 14336, yElems = (size_t)rows * 28672, wElems = (size_t)28672 * 4096;
    unsigned short *x, *y, *w;
    CK(cudaMalloc(&x, xElems * 2)); CK(cudaMalloc(&y, yElems * 2)); CK(cudaMalloc(&w, wElems * 2 * 4));
    fill_bf16<<<1024, 256>>>(x, xElems, 1, 1.f);
    fill_bf16<<<1024, 256>>>(y, yElems, 2, 1.f);
    fill_bf16<<<4096, 256>>>(w, wElems * 4, 3, 0.02f);
    CK(cudaDeviceSynchronize());

    std::vector<Plan> plans;
    std::vector<int> best(4, 0);
    for (int si = 0; si < 4; si++)
    {
        const Shape& s = shapes[si];
        plans.push_back(plan(s, requested));
        Plan& p = plans.back();
        double tflop = 2.0 * s.rows * s.k * (double)s.n / 1e12;
        printf("\n%s: rows %d k %d n %d%s, %zu candidates\n", s.name, s.rows, s.k, s.n, s.acc ? " (accumulate)" : "", p.cands.size());
        heat(p, &p.cands[0].algo, x, w, y, s.acc, 2.0);
        int iters = std::max(20, (int)((variants ? 0.12 : 0.25) / (tflop / 700.0))); // ~250 (120) ms per candidate
        double bestMs = 1e30;
        for (size_t c = 0; c < p.cands.size(); c++)
        {
            char d[200]; describe(p.cands[c].algo, d, sizeof d);
            Sample t = timeHot(p, &p.cands[c].algo, x, w, y, s.acc, iters / 4, iters);
            if (t.ms < 0) { printf("  [%2zu] %s: launch failed\n", c, d); continue; }
            printf("  [%2zu] %s waves %.2f: %.3f ms, %.0f TFLOP/s hot, %.0f W, %.0f MHz, host %.1f us per call\n", c, d, p.cands[c].wavesCount, t.ms, tflop / t.ms * 1e3, t.watts, t.mhz, t.hostUs);
            if (t.ms < bestMs) { bestMs = t.ms; best[si] = (int)c; }
        }
        if (variants)
        {
            // each candidate with an explicit cluster shape and CTA swizzle (cuBLASLt checks each; most are refused)
            const uint16_t clusters[] = { CUBLASLT_CLUSTER_SHAPE_1x1x1, CUBLASLT_CLUSTER_SHAPE_2x1x1, CUBLASLT_CLUSTER_SHAPE_1x2x1,
                                     CUBLASLT_CLUSTER_SHAPE_2x2x1, CUBLASLT_CLUSTER_SHAPE_4x1x1, CUBLASLT_CLUSTER_SHAPE_1x4x1 };
            size_t base = p.cands.size();
            for (size_t c = 0; c < base; c++)
                for (uint16_t cl : clusters)
                    for (uint32_t swz = 0; swz < 2; swz++)
                    {
                        cublasLtMatmulHeuristicResult_t r = p.cands[c];
                        LT(cublasLtMatmulAlgoConfigSetAttribute(&r.algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cl, sizeof cl));
                        LT(cublasLtMatmulAlgoConfigSetAttribute(&r.algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swz, sizeof swz));
                        cublasLtMatmulHeuristicResult_t chk;
                        if (cublasLtMatmulAlgoCheck(lt, p.op, p.a, p.b, p.c, p.c, &r.algo, &chk) != CUBLAS_STATUS_SUCCESS || chk.workspaceSize > workspaceBytes) continue;
                        char d[200]; describe(r.algo, d, sizeof d);
                        Sample t = timeHot(p, &r.algo, x, w, y, s.acc, iters / 4, iters);
                        if (t.ms < 0) continue;
                        printf("  [%2zu] %s: %.3f ms, %.0f TFLOP/s hot, %.0f W, %.0f MHz\n", p.cands.size(), d, t.ms, tflop / t.ms * 1e3, t.watts, t.mhz);
                        p.cands.push_back(r);
                        if (t.ms < bestMs) { bestMs = t.ms; best[si] = (int)p.cands.size() - 1; }
                    }
        }
        // the first pick again: the card's state drifts over a shape's candidates
        Sample again = timeHot(p, &p.cands[0].algo, x, w, y, s.acc, iters / 4, iters);
        printf("  first pick again %.3f ms; hot-fastest [%d] %.3f ms (%.1f %% faster than the first pick again)\n", again.ms, best[si], bestMs, (again.ms / bestMs - 1) * 100);
    }

    // 32 layers of the four products, first picks against hot-fastest picks, alternating (each layer's own weights)
    printf("\nchain: 32 layers x (qkv, o, gate/up, down), 8192 rows\n");
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    double sum[2] = { 0, 0 }; int n[2] = { 0, 0 };
    for (int rep = 0; rep < 8; rep++)
        for (int v = 0; v < 2; v++)
        {
            CK(cudaEventRecord(e0));
            for (int l = 0; l < 32; l++)
                for (int si = 0; si < 4; si++)
                {
                    const Plan& p = plans[si];
                    unsigned short* wl = w + (size_t)(l % 4) * wElems;
                    LT(run(p, &p.cands[v ? best[si] : 0].algo, x, wl, y, shapes[si].acc, 0));
                }
            CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
            float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
            printf("  rep %d %s: %.1f ms\n", rep, v ? "hot-fastest" : "first picks", ms);
            if (rep > 0) { sum[v] += ms; n[v]++; }
        }
    printf("chain mean (reps 1-7): first picks %.1f ms, hot-fastest %.1f ms (%.1f %%)\n", sum[0] / n[0], sum[1] / n[1], (sum[0] / n[0] / (sum[1] / n[1]) - 1) * 100);
    return 0;
}
