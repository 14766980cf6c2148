// Row-wise and element-wise kernels of a decoder layer: embedding gather, fused residual add + RMSNorm, RoPE, SwiGLU.
// bf16 in and out, f32 math. Launchers: Elementwise.cs.

// out (tokens, hidden) = table[ids[t]] for each token; table (vocab, hidden). An id outside [0, vocab) gives a zero row
// (the launcher cannot see device ids; the Engine validates ids on the host before upload).
// Grid: tokens blocks. Block: any multiple of 32.
struct EmbeddingParams
{
    const bf16_t* table;
    const int* ids;
    bf16_t* out;
    int tokens;
    int hidden;
    int vocab;
    int pad;
};
static_assert(sizeof(EmbeddingParams) == 40, "layout must match ElementwiseKernels.EmbeddingParams");

extern "C" __global__ void embedding_gather(EmbeddingParams p)
{
    PDL_ENTER();
    int t = blockIdx.x;
    int id = p.ids[t];
    bf16_t* o = p.out + (u64)t * p.hidden;
    if (id < 0 || id >= p.vocab)
    {
        for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) o[i] = 0;
        return;
    }
    const bf16_t* row = p.table + (u64)id * p.hidden;
    for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) o[i] = row[i];
}

// Per row r of (rows, dim): when residual is not null, residual[r] += x[r] (stored rounded to bf16) and
// y[r] = residual[r] / sqrt(mean(residual[r]^2) + eps) * weight; otherwise y[r] = rmsnorm(x[r]) * weight.
// y may alias x. Grid: rows blocks. Block: multiple of 32, at most 1024.
struct RmsNormParams
{
    bf16_t* residual;
    const bf16_t* x;
    const bf16_t* weight;
    bf16_t* y;
    int rows;
    int dim;
    float eps;
    int pad;
};
static_assert(sizeof(RmsNormParams) == 48, "layout must match ElementwiseKernels.RmsNormParams");

extern "C" __global__ void add_rmsnorm(RmsNormParams p)
{
    PDL_ENTER();
    __shared__ float scratch[32];
    u64 base = (u64)blockIdx.x * p.dim;
    const bf16_t* xr = p.x + base;
    bf16_t* rr = p.residual ? p.residual + base : 0;
    bf16_t* yr = p.y + base;
    float ss = 0.f;
    for (int i = threadIdx.x; i < p.dim; i += blockDim.x)
    {
        float v = bf2f(xr[i]);
        if (rr)
        {
            bf16_t s = f2bf(bf2f(rr[i]) + v);
            rr[i] = s;
            v = bf2f(s);
        }
        ss += v * v;
    }
    float total = block_sum(ss, scratch);
    float inv = rsqrtf(total / (float)p.dim + p.eps);
    // each thread re-reads only the elements it wrote above, so no barrier is needed for residual
    for (int i = threadIdx.x; i < p.dim; i += blockDim.x)
    {
        float v = rr ? bf2f(rr[i]) : bf2f(xr[i]);
        yr[i] = f2bf(v * inv * bf2f(p.weight[i]));
    }
}

// add_rmsnorm with 16-byte accesses: dim % 8 == 0, every pointer 16-byte aligned, dim <= 8 * 4 * blockDim.x (checked
// by the launcher). Each thread keeps its (up to 4) pieces of 8 in registers between the sum and the scaling, so the
// row is read once. Same arithmetic per element as add_rmsnorm (only the order of the sum of squares differs).
// Grid: rows blocks. Block: multiple of 32, at most 1024.
extern "C" __global__ void add_rmsnorm8(RmsNormParams p)
{
    PDL_ENTER();
    __shared__ float scratch[32];
    constexpr int V = 4;
    const u64 base = (u64)blockIdx.x * p.dim;
    const int pieces = p.dim >> 3;
    const vec16* xr = (const vec16*)(p.x + base);
    vec16* rr = p.residual ? (vec16*)(p.residual + base) : 0;
    vec16* yr = (vec16*)(p.y + base);
    const vec16* wr = (const vec16*)p.weight;
    float v[V][8];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < V; k++)
    {
        int i = threadIdx.x + k * blockDim.x;
        if (i >= pieces) break;
        unpack8(xr[i], v[k]);
        if (rr)
        {
            float r[8];
            unpack8(rr[i], r);
#pragma unroll
            for (int j = 0; j < 8; j++) v[k][j] = bf2f(f2bf(r[j] + v[k][j]));
            rr[i] = pack8(v[k]);
        }
#pragma unroll
        for (int j = 0; j < 8; j++) ss += v[k][j] * v[k][j];
    }
    float total = block_sum(ss, scratch);
    float inv = rsqrtf(total / (float)p.dim + p.eps);
#pragma unroll
    for (int k = 0; k < V; k++)
    {
        int i = threadIdx.x + k * blockDim.x;
        if (i >= pieces) break;
        float w[8], out[8];
        unpack8(wr[i], w);
#pragma unroll
        for (int j = 0; j < 8; j++) out[j] = v[k][j] * inv * w[j];
        yr[i] = pack8(out);
    }
}

// Rotary embedding, rotate_half layout, in place. Token t, head h sits at x + t * rowStride + h * headDim (rowStride
// lets q or k be rotated inside a fused qkv row). cos, sin: (tableRows, headDim / 2) f32, already multiplied by the
// RoPE attention scaling; token t uses table row positions[t], or t when positions is null.
// For i < half: out[i] = x[i] cos - x[i + half] sin; out[i + half] = x[i + half] cos + x[i] sin.
// Grid: ceil(tokens * heads * half / block). One thread per (token, head, i).
struct RopeParams
{
    bf16_t* x;
    const float* cos;
    const float* sin;
    const int* positions;
    int tokens;
    int heads;
    int headDim;
    int rowStride;
};
static_assert(sizeof(RopeParams) == 48, "layout must match ElementwiseKernels.RopeParams");

extern "C" __global__ void rope(RopeParams p)
{
    PDL_ENTER();
    int half = p.headDim / 2;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)p.tokens * p.heads * half;
    if (idx >= total) return;
    int i = (int)(idx % half);
    long long th = idx / half;
    int h = (int)(th % p.heads);
    int t = (int)(th / p.heads);
    int row = p.positions ? p.positions[t] : t;
    float c = p.cos[(u64)row * half + i], s = p.sin[(u64)row * half + i];
    bf16_t* v = p.x + (u64)t * p.rowStride + (u64)h * p.headDim;
    float a = bf2f(v[i]), b = bf2f(v[i + half]);
    v[i] = f2bf(a * c - b * s);
    v[i + half] = f2bf(b * c + a * s);
}

// y[r, c] = silu(gate[r, c]) * up[r, c], silu(g) = g / (1 + e^-g), for (rows, cols). gate and up rows are inStride
// apart (cols for separate tensors, 2 * cols for a fused [gate | up] row), y rows outStride apart.
// Grid: ceil(rows * cols / block).
struct SwiGluParams
{
    const bf16_t* gate;
    const bf16_t* up;
    bf16_t* y;
    int rows;
    int cols;
    int inStride;
    int outStride;
};
static_assert(sizeof(SwiGluParams) == 40, "layout must match ElementwiseKernels.SwiGluParams");

extern "C" __global__ void swiglu(SwiGluParams p)
{
    PDL_ENTER();
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)p.rows * p.cols) return;
    int r = (int)(idx / p.cols), c = (int)(idx % p.cols);
    float g = bf2f(p.gate[(u64)r * p.inStride + c]);
    float u = bf2f(p.up[(u64)r * p.inStride + c]);
    p.y[(u64)r * p.outStride + c] = f2bf(g / (1.f + expf(-g)) * u);
}

// swiglu with 16-byte accesses: cols, inStride and outStride multiples of 8 and gate, up, y 16-byte aligned (checked by
// the launcher). One thread per 8 consecutive columns. Grid: ceil(rows * cols / 8 / block).
extern "C" __global__ void swiglu8(SwiGluParams p)
{
    PDL_ENTER();
    const int pieces = p.cols >> 3;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)p.rows * pieces) return;
    int r = (int)(idx / pieces), c = (int)(idx % pieces) * 8;
    float g[8], u[8], y[8];
    unpack8(*(const vec16*)(p.gate + (u64)r * p.inStride + c), g);
    unpack8(*(const vec16*)(p.up + (u64)r * p.inStride + c), u);
#pragma unroll
    for (int j = 0; j < 8; j++) y[j] = g[j] / (1.f + expf(-g[j])) * u[j];
    *(vec16*)(p.y + (u64)r * p.outStride + c) = pack8(y);
}
