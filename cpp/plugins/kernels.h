// The kernels a tdeploy node carries (its "kernels" field), and launching one of them.
//
// Format (written by tdeploy/plugins/cpp_kernels.py):
//
//     tdeploy-kernels 1
//     kernel op=WindowAttention dtype=fp16 arch=89 target=sm_89 name=... threads=128 shared=12288 ... ptx=51234
//     <51234 bytes of PTX>
//
// A record is one Triton kernel compiled for one configuration, dtype and architecture. At run time
// the plugin takes the record of its dtype for the newest architecture the GPU can JIT the PTX for
// (PTX for sm_XY runs on any later GPU; an arch-specific sm_XYa only on sm_XY itself).
#pragma once

#include "cuda_driver.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tdeploy
{

struct KernelRecord
{
    std::map<std::string, std::string> fields;
    std::string ptx;

    std::string text(std::string const& key) const;
    int64_t number(std::string const& key) const; //!< -1 when absent or not a number
    std::string dtype() const { return text("dtype"); }
    int32_t arch() const { return static_cast<int32_t>(number("arch")); }
    bool archSpecific() const; //!< target sm_XYa: runs on sm_XY only
    std::string describe() const; //!< "fp16 sm_89 window_attention_kernel"
};

//! Parse a "kernels" field; false with the reason when it is malformed.
bool parseKernels(std::string const& text, std::vector<KernelRecord>& out, std::string& why);

//! The record for ``dtype`` ("fp32"/"fp16") that a GPU of compute capability ``cc`` (e.g. 89) runs best:
//! the newest architecture <= cc. Returns -1 (and the reason) when there is none.
int32_t selectKernel(std::vector<KernelRecord> const& records, std::string const& dtype, int32_t cc, std::string& why);

//! Loaded functions of a node's records, per CUDA context (a module belongs to the context it was
//! loaded in). Shared by a plugin and its clones; thread-safe.
class KernelCache
{
public:
    ~KernelCache();

    //! The function of ``records[index]`` in the current context, loaded on first use; nullptr + why.
    CUfunction function(CudaDriver const& cuda, std::vector<KernelRecord> const& records, int32_t index,
        std::string& why);

private:
    struct Loaded
    {
        CUcontext context;
        int32_t index;
        CUmodule module;
        CUfunction function;
    };
    std::mutex mMutex;
    std::vector<Loaded> mLoaded;
    CudaDriver const* mDriver{nullptr};
};

//! The compute capability of the current context's device as one number (e.g. 89); -1 + why.
int32_t currentComputeCapability(CudaDriver const& cuda, std::string& why);

//! Launch ``function`` with the record's threads and dynamic shared memory on ``stream``.
//! ``args`` are the kernel's parameters in PTX order (pointers to the values). 0 on success.
int32_t launch(CudaDriver const& cuda, KernelRecord const& record, CUfunction function, uint32_t const grid[3],
    void** args, CUstream stream, std::string& why);

} // namespace tdeploy
