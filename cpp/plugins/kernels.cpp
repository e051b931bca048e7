#include "kernels.h"

#include <cstdlib>
#include <sstream>

namespace tdeploy
{
namespace
{
char const* const kMagic = "tdeploy-kernels 1";
constexpr int32_t kPortableSharedBytes = 48 * 1024; // without cuFuncSetAttribute opt-in
} // namespace

std::string KernelRecord::text(std::string const& key) const
{
    auto it = fields.find(key);
    return it == fields.end() ? std::string{} : it->second;
}

int64_t KernelRecord::number(std::string const& key) const
{
    std::string const value = text(key);
    if (value.empty())
    {
        return -1;
    }
    char* end = nullptr;
    long long parsed = std::strtoll(value.c_str(), &end, 10);
    return (end != nullptr && *end == '\0') ? static_cast<int64_t>(parsed) : -1;
}

bool KernelRecord::archSpecific() const
{
    std::string const target = text("target");
    return !target.empty() && target.back() == 'a';
}

std::string KernelRecord::describe() const
{
    return dtype() + " sm_" + std::to_string(arch()) + (archSpecific() ? "a " : " ") + text("name");
}

bool parseKernels(std::string const& text, std::vector<KernelRecord>& out, std::string& why)
{
    out.clear();
    std::string const magic = std::string(kMagic) + "\n";
    if (text.compare(0, magic.size(), magic) != 0)
    {
        why = "the kernels field does not start with \"tdeploy-kernels 1\"";
        return false;
    }
    size_t pos = magic.size();
    while (pos < text.size())
    {
        size_t const end = text.find('\n', pos);
        if (end == std::string::npos)
        {
            why = "a kernel record has no end of line";
            return false;
        }
        std::istringstream words(text.substr(pos, end - pos));
        std::string word;
        words >> word;
        if (word != "kernel")
        {
            why = "a kernel record does not start with \"kernel\"";
            return false;
        }
        KernelRecord record;
        while (words >> word)
        {
            size_t const eq = word.find('=');
            if (eq == std::string::npos)
            {
                why = "kernel record field without '=': " + word;
                return false;
            }
            record.fields[word.substr(0, eq)] = word.substr(eq + 1);
        }
        int64_t const size = record.number("ptx");
        if (size < 0 || end + 1 + static_cast<size_t>(size) > text.size())
        {
            why = "kernel record " + record.text("name") + ": its PTX size is missing or past the end";
            return false;
        }
        record.ptx = text.substr(end + 1, static_cast<size_t>(size));
        record.fields.erase("ptx");
        out.push_back(std::move(record));
        pos = end + 1 + static_cast<size_t>(size) + 1;
    }
    return true;
}

int32_t selectKernel(std::vector<KernelRecord> const& records, std::string const& dtype, int32_t cc, std::string& why)
{
    int32_t best = -1;
    std::string have;
    for (size_t i = 0; i < records.size(); ++i)
    {
        KernelRecord const& r = records[i];
        have += (have.empty() ? "" : ", ") + r.describe();
        bool const runs = r.archSpecific() ? r.arch() == cc : r.arch() <= cc;
        if (r.dtype() == dtype && runs && (best < 0 || r.arch() > records[best].arch()))
        {
            best = static_cast<int32_t>(i);
        }
    }
    if (best < 0)
    {
        why = "no kernel for " + dtype + " on sm_" + std::to_string(cc) + " (the node carries: "
            + (have.empty() ? std::string("none") : have)
            + "); rebuild the engine with deploy build-engine --plugins cpp for this GPU";
    }
    return best;
}

KernelCache::~KernelCache()
{
    if (mDriver == nullptr)
    {
        return;
    }
    for (Loaded const& l : mLoaded)
    {
        mDriver->moduleUnload(l.module); // fails harmlessly when the context is already gone
    }
}

CUfunction KernelCache::function(
    CudaDriver const& cuda, std::vector<KernelRecord> const& records, int32_t index, std::string& why)
{
    CUcontext context = nullptr;
    CUresult status = cuda.ctxGetCurrent(&context);
    if (status != CUDA_SUCCESS || context == nullptr)
    {
        why = status != CUDA_SUCCESS ? cuda.describe("cuCtxGetCurrent", status) : "no current CUDA context";
        return nullptr;
    }
    std::lock_guard<std::mutex> lock(mMutex);
    mDriver = &cuda;
    for (Loaded const& l : mLoaded)
    {
        if (l.context == context && l.index == index)
        {
            return l.function;
        }
    }
    KernelRecord const& record = records[index];
    CUmodule module = nullptr;
    status = cuda.moduleLoadDataEx(&module, record.ptx.c_str(), 0, nullptr, nullptr);
    if (status != CUDA_SUCCESS)
    {
        why = cuda.describe("cuModuleLoadDataEx", status) + " for " + record.describe()
            + " (a driver older than the PTX ISA? rebuild the engine on this machine)";
        return nullptr;
    }
    CUfunction function = nullptr;
    status = cuda.moduleGetFunction(&function, module, record.text("name").c_str());
    if (status != CUDA_SUCCESS)
    {
        cuda.moduleUnload(module);
        why = cuda.describe("cuModuleGetFunction", status) + " for " + record.describe();
        return nullptr;
    }
    int64_t const shared = record.number("shared");
    if (shared > kPortableSharedBytes)
    {
        // Triton's shared memory is all dynamic: past 48 KiB the kernel must opt in.
        status = cuda.funcSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            static_cast<int>(shared));
        if (status != CUDA_SUCCESS)
        {
            cuda.moduleUnload(module);
            why = cuda.describe("cuFuncSetAttribute", status) + ": " + record.describe() + " needs "
                + std::to_string(shared) + " bytes of shared memory, more than this GPU gives a block";
            return nullptr;
        }
    }
    mLoaded.push_back(Loaded{context, index, module, function});
    return function;
}

int32_t currentComputeCapability(CudaDriver const& cuda, std::string& why)
{
    CUdevice device = 0;
    CUresult status = cuda.ctxGetDevice(&device);
    int major = 0;
    int minor = 0;
    if (status == CUDA_SUCCESS)
    {
        status = cuda.deviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
    }
    if (status == CUDA_SUCCESS)
    {
        status = cuda.deviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
    }
    if (status != CUDA_SUCCESS)
    {
        why = cuda.describe("cuDeviceGetAttribute", status);
        return -1;
    }
    return major * 10 + minor;
}

int32_t launch(CudaDriver const& cuda, KernelRecord const& record, CUfunction function, uint32_t const grid[3],
    void** args, CUstream stream, std::string& why)
{
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
    {
        return 0; // an empty tensor: nothing to compute
    }
    if (grid[1] > 65535 || grid[2] > 65535)
    {
        why = record.describe() + ": grid " + std::to_string(grid[0]) + "x" + std::to_string(grid[1]) + "x"
            + std::to_string(grid[2]) + " is past CUDA's 65535 limit on y/z";
        return -1;
    }
    CUresult const status = cuda.launchKernel(function, grid[0], grid[1], grid[2],
        static_cast<unsigned>(record.number("threads")), 1, 1, static_cast<unsigned>(record.number("shared")), stream,
        args, nullptr);
    if (status != CUDA_SUCCESS)
    {
        why = cuda.describe("cuLaunchKernel", status) + " for " + record.describe();
        return -1;
    }
    return 0;
}

} // namespace tdeploy
