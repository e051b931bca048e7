// The CUDA driver API, loaded at first use with dlopen("libcuda.so.1").
//
// The plugin library links neither libcuda nor libcudart (nor libnvinfer), so it loads on a machine
// without a GPU (CI: TensorRT-RTX builds engines on CPU and calls only the build-time methods). The
// kernels are PTX: cuModuleLoadDataEx JIT-compiles them for the GPU at hand (the driver caches the
// result in ~/.nv/ComputeCache).
#pragma once

#include <cuda.h>

#include <string>

namespace tdeploy
{

struct CudaDriver
{
    decltype(&::cuInit) init;
    decltype(&::cuCtxGetCurrent) ctxGetCurrent;
    decltype(&::cuCtxGetDevice) ctxGetDevice;
    decltype(&::cuDeviceGetAttribute) deviceGetAttribute;
    decltype(&::cuModuleLoadDataEx) moduleLoadDataEx;
    decltype(&::cuModuleGetFunction) moduleGetFunction;
    decltype(&::cuModuleUnload) moduleUnload;
    decltype(&::cuFuncSetAttribute) funcSetAttribute;
    decltype(&::cuLaunchKernel) launchKernel;
    decltype(&::cuGetErrorString) getErrorString;

    //! "cuLaunchKernel: an illegal memory access was encountered (700)".
    std::string describe(char const* call, CUresult result) const;
};

//! The driver, loaded once (thread-safe); nullptr when it cannot be, with the reason in ``why``.
CudaDriver const* cudaDriver(std::string* why);

} // namespace tdeploy
