// libtdeploy_plugins_autoload.so: registers tdeploy's plugin creators when it is loaded, for programs that
// load plugin libraries with a plain dlopen instead of IPluginRegistry::loadLibrary -- Triton Inference
// Server's TensorRT backend (--backend-config=tensorrt,plugins=...; its src/tensorrt.cc dlopens each) and
// LD_PRELOAD.
//
// It is a separate library on purpose: libtdeploy_plugins.so registers nothing by itself, because
// IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, tdeploy) refuses a library whose creators are
// already registered. This one finds TensorRT's getPluginRegistry() in libnvinfer (loading it when
// LD_PRELOAD runs us first), and registers the creators that libtdeploy_plugins.so's getCreators() lists.
// Build it against the headers of the TensorRT it will run in (the Triton server container's).
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{

using GetPluginRegistry = nvinfer1::IPluginRegistry* (*) ();

GetPluginRegistry findRegistry()
{
    // Datacenter TensorRT only: registering calls into TensorRT's IPluginRegistry, whose declaration the
    // library must share with the TensorRT it runs in (seen: TensorRT-RTX 1.7's differs from 10.14's and
    // crashes). TensorRT-RTX loads libtdeploy_plugins.so through loadLibrary instead.
    char const* const libraries[] = {"libnvinfer.so.10", "libnvinfer.so.11", "libnvinfer.so"};
    for (int load = 0; load < 2; ++load) // the TensorRT already in the process first, then load one
    {
        for (char const* name : libraries)
        {
            void* library = dlopen(name, load == 0 ? RTLD_NOW | RTLD_NOLOAD : RTLD_NOW | RTLD_GLOBAL);
            if (library == nullptr)
            {
                continue;
            }
            if (void* symbol = dlsym(library, "getPluginRegistry"))
            {
                return reinterpret_cast<GetPluginRegistry>(symbol);
            }
        }
    }
    return nullptr;
}

struct Register
{
    Register()
    {
        GetPluginRegistry get = findRegistry();
        nvinfer1::IPluginRegistry* registry = get != nullptr ? get() : nullptr;
        if (registry == nullptr)
        {
            std::fprintf(stderr, "[tdeploy] libtdeploy_plugins_autoload.so: no TensorRT library (libnvinfer.so.10 or "
                                 ".11) to register the plugins with; TensorRT-RTX loads libtdeploy_plugins.so "
                                 "with IPluginRegistry::loadLibrary instead\n");
            return;
        }
        int32_t count = 0;
        nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
        for (int32_t i = 0; i < count; ++i)
        {
            if (!registry->registerCreator(*creators[i], "tdeploy"))
            {
                std::fprintf(stderr, "[tdeploy] libtdeploy_plugins_autoload.so: TensorRT refused a creator (already "
                                     "registered?)\n");
            }
        }
    }
};

Register const gRegister;

} // namespace
