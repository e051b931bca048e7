// The entry points TensorRT calls when it loads libtdeploy_plugins.so: IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins, Triton Inference Server's LD_PRELOAD/--backend-config plugin loading.
//
// TensorRT looks these up with dlsym (their names are in libnvinfer / libtensorrt_rtx): setLoggerFinder,
// then getCreators (IPluginCreatorInterface: V3 creators). tdeploy_plugins_build_info says which
// TensorRT headers the library was compiled against, for tdeploy's own check before loading it.
#include "logging.h"
#include "ops.h"

#define TDEPLOY_EXPORT extern "C" __attribute__((visibility("default")))

#ifndef TDEPLOY_TRT_FLAVOUR
#define TDEPLOY_TRT_FLAVOUR "tensorrt"
#endif
#ifndef TDEPLOY_TRT_VERSION
#define TDEPLOY_TRT_VERSION "unknown"
#endif

TDEPLOY_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    tdeploy::setLoggerFinder(finder);
}

TDEPLOY_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* const creators[] = {
        tdeploy::windowAttentionCreator(),
        tdeploy::neighborhoodAttentionCreator(),
    };
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

//! "tensorrt 10.14.1" or "tensorrt-rtx 1.6.0": the flavour and version of the headers it was built with.
TDEPLOY_EXPORT char const* tdeploy_plugins_build_info()
{
    return TDEPLOY_TRT_FLAVOUR " " TDEPLOY_TRT_VERSION;
}
