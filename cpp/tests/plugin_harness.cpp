// plugin_harness: run one of libtdeploy_plugins.so's plugins on a GPU, without TensorRT.
//
//   plugin_harness WindowAttention --int num_heads=3 --float scale=0.1767 --kernels k.txt
//       --input qkv.npy --input bias.npy --input mask.npy --output out.npy [--iters 50]
//
// The TensorRT types a plugin is driven with (PluginFieldCollection, DynamicPluginTensorDesc,
// PluginTensorDesc) are plain structs of the headers, so a test can create a plugin through its
// creator with real fields, check its format combinations, configure it, and call enqueue on device
// buffers: what TensorRT does, minus the network. getOutputShapes needs TensorRT's IExprBuilder, so
// the output shape is computed here (the last dim / 3, as both ops do). The plugin is then re-created
// from the fields it serializes (phase kRUNTIME, as when an engine loads) and run again: the two
// outputs must be bitwise equal. Prints "ok" and the median kernel time over --iters (CUDA events).
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda_tools.hpp"
#include "npy.hpp"

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{

using tdeploy_tools::fail;
using tdeploy_tools::check_cuda;

struct Args
{
    std::string op;
    std::map<std::string, int32_t> ints;
    std::map<std::string, float> floats;
    std::string kernels;
    std::vector<std::string> inputs;
    std::string output;
    int iters = 0;
};

Args parseArgs(int argc, char** argv)
{
    Args args;
    if (argc < 2)
    {
        fail("usage: plugin_harness OP [--int K=V] [--float K=V] --kernels FILE --input X.npy ... --output Y.npy");
    }
    args.op = argv[1];
    for (int i = 2; i < argc; ++i)
    {
        std::string const a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
            {
                fail(a + " needs a value");
            }
            return argv[++i];
        };
        auto split = [&](std::string const& kv, std::string& key) {
            size_t const eq = kv.find('=');
            if (eq == std::string::npos)
            {
                fail(a + " takes KEY=VALUE, got " + kv);
            }
            key = kv.substr(0, eq);
            return kv.substr(eq + 1);
        };
        std::string key;
        if (a == "--int")
        {
            std::string const v = split(value(), key);
            args.ints[key] = std::atoi(v.c_str());
        }
        else if (a == "--float")
        {
            std::string const v = split(value(), key);
            args.floats[key] = std::strtof(v.c_str(), nullptr);
        }
        else if (a == "--kernels")
        {
            std::ifstream in(value(), std::ios::binary);
            args.kernels.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        else if (a == "--input")
        {
            args.inputs.push_back(value());
        }
        else if (a == "--output")
        {
            args.output = value();
        }
        else if (a == "--iters")
        {
            args.iters = std::atoi(value().c_str());
        }
        else
        {
            fail("unexpected argument " + a);
        }
    }
    return args;
}

nvinfer1::IPluginCreatorV3One* findCreator(std::string const& name)
{
    int32_t n = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(n);
    for (int32_t i = 0; i < n; ++i)
    {
        auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
        if (name == creator->getPluginName())
        {
            return creator;
        }
    }
    fail("the library has no plugin " + name);
}

struct Buffer
{
    npy::Array host;
    void* device = nullptr;
    nvinfer1::PluginTensorDesc desc{};
};

//! Create the plugin, check its formats, configure it and run it once; returns the output.
npy::Array runOnce(nvinfer1::IPluginV3* plugin, std::vector<Buffer>& inputs, npy::Array const& outputShape,
    cudaStream_t stream, int iters)
{
    auto* build = static_cast<nvinfer1::IPluginV3OneBuild*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    int32_t const nbIn = static_cast<int32_t>(inputs.size());
    std::vector<nvinfer1::DynamicPluginTensorDesc> dyn(nbIn + 1);
    Buffer out;
    out.host = outputShape;
    out.desc = inputs[0].desc;
    out.desc.dims.nbDims = static_cast<int32_t>(out.host.shape.size());
    for (int32_t d = 0; d < out.desc.dims.nbDims; ++d)
    {
        out.desc.dims.d[d] = out.host.shape[d];
    }
    for (int32_t i = 0; i <= nbIn; ++i)
    {
        nvinfer1::PluginTensorDesc const& desc = i < nbIn ? inputs[i].desc : out.desc;
        dyn[i].desc = desc;
        dyn[i].min = dyn[i].opt = dyn[i].max = desc.dims;
    }
    for (int32_t pos = 0; pos <= nbIn; ++pos)
    {
        if (!build->supportsFormatCombination(pos, dyn.data(), nbIn, 1))
        {
            fail("supportsFormatCombination refused position " + std::to_string(pos) + " (its log line says why)");
        }
    }
    if (build->configurePlugin(dyn.data(), nbIn, dyn.data() + nbIn, 1) != 0)
    {
        fail("configurePlugin refused the shapes (its log line says why)");
    }
    std::vector<nvinfer1::PluginTensorDesc> descs;
    std::vector<void const*> pointers;
    for (Buffer const& b : inputs)
    {
        descs.push_back(b.desc);
        pointers.push_back(b.device);
    }
    if (runtime->onShapeChange(descs.data(), nbIn, &out.desc, 1) != 0)
    {
        fail("onShapeChange failed");
    }
    check_cuda(cudaMalloc(&out.device, std::max<size_t>(out.host.nbytes(), 1)), "cudaMalloc");
    void* outputs[] = {out.device};
    if (runtime->enqueue(descs.data(), &out.desc, pointers.data(), outputs, nullptr, stream) != 0)
    {
        fail("enqueue failed (its log line says why)");
    }
    check_cuda(cudaStreamSynchronize(stream), "the kernel");
    if (iters > 0)
    {
        std::vector<float> const ms = tdeploy_tools::time_on_stream(stream, iters,
            [&] { runtime->enqueue(descs.data(), &out.desc, pointers.data(), outputs, nullptr, stream); });
        std::printf("median %.4f ms over %d runs\n", ms[ms.size() / 2], iters);
    }
    check_cuda(cudaMemcpy(out.host.data.data(), out.device, out.host.nbytes(), cudaMemcpyDeviceToHost), "D2H");
    cudaFree(out.device);
    return out.host;
}

} // namespace

int main(int argc, char** argv)
{
    Args args = parseArgs(argc, argv);
    nvinfer1::IPluginCreatorV3One* creator = findCreator(args.op);

    std::vector<nvinfer1::PluginField> fields;
    for (auto const& kv : args.ints)
    {
        fields.emplace_back(kv.first.c_str(), &kv.second, nvinfer1::PluginFieldType::kINT32, 1);
    }
    for (auto const& kv : args.floats)
    {
        fields.emplace_back(kv.first.c_str(), &kv.second, nvinfer1::PluginFieldType::kFLOAT32, 1);
    }
    fields.emplace_back("kernels", args.kernels.data(), nvinfer1::PluginFieldType::kCHAR,
        static_cast<int32_t>(args.kernels.size()));
    nvinfer1::PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    std::unique_ptr<nvinfer1::IPluginV3> plugin(creator->createPlugin("harness", &fc, nvinfer1::TensorRTPhase::kBUILD));
    if (!plugin)
    {
        fail("createPlugin refused the fields (its log line says why)");
    }

    std::vector<Buffer> inputs;
    for (std::string const& path : args.inputs)
    {
        Buffer b;
        b.host = npy::load(path);
        if (b.host.dtype != npy::DType::Float32 && b.host.dtype != npy::DType::Float16)
        {
            fail(path + ": the plugins take float32 or float16");
        }
        b.desc.type = b.host.dtype == npy::DType::Float32 ? nvinfer1::DataType::kFLOAT : nvinfer1::DataType::kHALF;
        b.desc.format = nvinfer1::TensorFormat::kLINEAR;
        b.desc.scale = 1.0f;
        b.desc.dims.nbDims = static_cast<int32_t>(b.host.shape.size());
        for (int32_t d = 0; d < b.desc.dims.nbDims; ++d)
        {
            b.desc.dims.d[d] = b.host.shape[d];
        }
        check_cuda(cudaMalloc(&b.device, std::max<size_t>(b.host.nbytes(), 1)), "cudaMalloc");
        check_cuda(cudaMemcpy(b.device, b.host.data.data(), b.host.nbytes(), cudaMemcpyHostToDevice), "H2D");
        inputs.push_back(std::move(b));
    }
    if (inputs.empty())
    {
        fail("give the plugin's inputs with --input");
    }
    npy::Array shape;
    shape.dtype = inputs[0].host.dtype;
    shape.shape = inputs[0].host.shape;
    shape.shape.back() /= 3; // (..., 3C) -> (..., C)
    shape.data.resize(shape.numel() * npy::itemsize(shape.dtype));

    cudaStream_t stream;
    check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
    npy::Array first = runOnce(plugin.get(), inputs, shape, stream, args.iters);

    // The serialization round trip: a plugin re-created from its own fields, as an engine loads it.
    auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    nvinfer1::PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    std::unique_ptr<nvinfer1::IPluginV3> again(creator->createPlugin("harness", saved, nvinfer1::TensorRTPhase::kRUNTIME));
    if (!again)
    {
        fail("createPlugin refused the plugin's own serialized fields");
    }
    npy::Array second = runOnce(again.get(), inputs, shape, stream, 0);
    if (first.data != second.data)
    {
        fail("the plugin re-created from its serialized fields computed another output");
    }
    npy::save(args.output, first);
    for (Buffer& b : inputs)
    {
        cudaFree(b.device);
    }
    std::printf("ok %s\n", args.output.c_str());
    return 0;
}
