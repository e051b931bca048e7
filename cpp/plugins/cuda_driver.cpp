#include "cuda_driver.h"

#include <dlfcn.h>

#include <mutex>

namespace tdeploy
{
namespace
{

template <typename T>
bool bind(void* library, char const* symbol, T& slot, std::string& missing)
{
    slot = reinterpret_cast<T>(dlsym(library, symbol));
    if (slot == nullptr)
    {
        missing = symbol;
    }
    return slot != nullptr;
}

} // namespace

std::string CudaDriver::describe(char const* call, CUresult result) const
{
    char const* text = nullptr;
    if (getErrorString == nullptr || getErrorString(result, &text) != CUDA_SUCCESS || text == nullptr)
    {
        text = "unknown error";
    }
    return std::string(call) + ": " + text + " (" + std::to_string(static_cast<int>(result)) + ")";
}

CudaDriver const* cudaDriver(std::string* why)
{
    static std::once_flag once;
    static CudaDriver driver{};
    static CudaDriver const* loaded = nullptr;
    static std::string reason;
    std::call_once(once, [] {
        // RTLD_LOCAL: the library's own symbols stay out of the process's global namespace.
        void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr)
        {
            char const* error = dlerror();
            reason = std::string("the CUDA driver (libcuda.so.1) cannot be loaded: ") + (error ? error : "not found")
                + "; the plugin kernels need an NVIDIA GPU and its driver";
            return;
        }
        std::string missing;
        bool ok = bind(library, "cuInit", driver.init, missing)
            && bind(library, "cuCtxGetCurrent", driver.ctxGetCurrent, missing)
            && bind(library, "cuCtxGetDevice", driver.ctxGetDevice, missing)
            && bind(library, "cuDeviceGetAttribute", driver.deviceGetAttribute, missing)
            && bind(library, "cuModuleLoadDataEx", driver.moduleLoadDataEx, missing)
            && bind(library, "cuModuleGetFunction", driver.moduleGetFunction, missing)
            && bind(library, "cuModuleUnload", driver.moduleUnload, missing)
            && bind(library, "cuFuncSetAttribute", driver.funcSetAttribute, missing)
            && bind(library, "cuLaunchKernel", driver.launchKernel, missing)
            && bind(library, "cuGetErrorString", driver.getErrorString, missing);
        if (!ok)
        {
            reason = "the CUDA driver has no " + missing + ": update the NVIDIA driver";
            return;
        }
        CUresult status = driver.init(0);
        if (status != CUDA_SUCCESS)
        {
            reason = driver.describe("cuInit", status);
            return;
        }
        loaded = &driver;
    });
    if (loaded == nullptr && why != nullptr)
    {
        *why = reason;
    }
    return loaded;
}

} // namespace tdeploy
