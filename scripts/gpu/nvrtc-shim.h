// Minimal stand-ins for what NVRTC provides implicitly, so clang can syntax- and type-check the embedded kernels on a
// machine without CUDA (scripts/gpu/check-kernels.sh). Not used at run time.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __cluster_dims__(...) // sm_90 cluster shape: no clang equivalent here
struct __dim3 { unsigned int x, y, z; };
extern const __device__ __dim3 threadIdx, blockIdx, blockDim, gridDim;
__device__ float __uint_as_float(unsigned int);
__device__ unsigned int __float_as_uint(float);
__device__ float __int_as_float(int);
__device__ float __shfl_xor_sync(unsigned int, float, int);
__device__ float __shfl_sync(unsigned int, float, int);
__device__ void __syncthreads();
__device__ float fmaxf(float, float);
__device__ float expf(float);
__device__ float __expf(float);
__device__ float exp2f(float);
__device__ float rsqrtf(float);
__device__ int min(int, int);
__device__ float fmaf(float, float, float);
__device__ int __shfl_xor_sync(unsigned int, int, int);
__device__ int __shfl_up_sync(unsigned int, int, int);
__device__ int __any_sync(unsigned int, int);
__device__ double __shfl_up_sync(unsigned int, double, int);
__device__ int atomicAdd(int*, int);
__device__ int atomicMin(int*, int);
__device__ int atomicMax(int*, int);
__device__ double exp(double);
__device__ int max(int, int);
__device__ void __syncwarp(unsigned int mask = 0xffffffffu);

// __grid_constant__ (CUDA 11.7+, kernel parameters read in place) is newer than this clang
#define __grid_constant__
