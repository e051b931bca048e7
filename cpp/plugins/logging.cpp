#include "logging.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>

namespace tdeploy
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gFinder{nullptr};

using GetLogger = nvinfer1::ILogger* (*) ();

//! TensorRT's exported getLogger() (NvInferRuntime.h): the logger of the builder or runtime in use. Found in
//! the TensorRT library already loaded in the process -- libnvinfer or TensorRT-RTX's libtensorrt_rtx --,
//! never loading one (RTLD_NOLOAD): the plugin library depends on no TensorRT library.
GetLogger tensorrtGetLogger()
{
    static GetLogger const found = [] {
        // By name first: another library of the process may export a getLogger of its own.
        for (char const* name : {"libnvinfer.so.10", "libnvinfer.so.11", "libnvinfer.so", "libtensorrt_rtx.so.1",
                 "libtensorrt_rtx.so"})
        {
            if (void* library = dlopen(name, RTLD_NOW | RTLD_NOLOAD))
            {
                if (void* symbol = dlsym(library, "getLogger"))
                {
                    return reinterpret_cast<GetLogger>(symbol);
                }
            }
        }
        return static_cast<GetLogger>(nullptr);
    }();
    return found;
}

//! TensorRT-RTX 1.7's finder and getLogger() hand out a logger that does not reach the user's (seen: a
//! plugin's messages never arrive), so there warnings and errors also go to stderr.
bool echoToStderr()
{
    static bool const rtx = dlopen("libtensorrt_rtx.so.1", RTLD_NOW | RTLD_NOLOAD) != nullptr
        || dlopen("libtensorrt_rtx.so", RTLD_NOW | RTLD_NOLOAD) != nullptr;
    return rtx;
}
} // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gFinder.store(finder);
}

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    std::string const line = "[tdeploy] " + message;
    nvinfer1::ILoggerFinder* finder = gFinder.load();
    nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
    if (logger == nullptr)
    {
        GetLogger const get = tensorrtGetLogger();
        logger = get != nullptr ? get() : nullptr;
    }
    if (logger != nullptr)
    {
        logger->log(severity, line.c_str());
    }
    if ((logger == nullptr || echoToStderr()) && severity <= nvinfer1::ILogger::Severity::kWARNING)
    {
        std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
    }
}

} // namespace tdeploy
