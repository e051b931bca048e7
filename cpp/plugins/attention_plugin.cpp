#include "attention_plugin.h"

#include "logging.h"

#include <cstring>

namespace tdeploy
{

bool readFields(PluginFieldCollection const* fc, std::vector<FieldSpec> const& specs, Attributes& out, std::string& why)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        if (f.name == nullptr || f.data == nullptr || f.length < 1)
        {
            continue;
        }
        std::string const name = f.name;
        switch (f.type)
        {
        case PluginFieldType::kINT32: out.ints[name] = *static_cast<int32_t const*>(f.data); break;
        case PluginFieldType::kINT64: out.ints[name] = *static_cast<int64_t const*>(f.data); break;
        case PluginFieldType::kFLOAT32: out.floats[name] = *static_cast<float const*>(f.data); break;
        case PluginFieldType::kFLOAT64: out.floats[name] = *static_cast<double const*>(f.data); break;
        case PluginFieldType::kCHAR:
        case PluginFieldType::kUNKNOWN:
            if (name == kKernelsField)
            {
                out.kernels.assign(static_cast<char const*>(f.data), static_cast<size_t>(f.length));
                // A kCHAR field from an ONNX string may or may not count a trailing NUL.
                while (!out.kernels.empty() && out.kernels.back() == '\0')
                {
                    out.kernels.pop_back();
                }
            }
            break;
        default: break; // other fields (plugin_namespace, ...) are not ours
        }
    }
    for (FieldSpec const& spec : specs)
    {
        if (!spec.required)
        {
            continue;
        }
        bool const found = spec.type == PluginFieldType::kINT32 ? out.ints.count(spec.name) > 0
            : spec.type == PluginFieldType::kFLOAT32            ? out.floats.count(spec.name) > 0
                                                                : !out.kernels.empty();
        if (!found)
        {
            why = std::string("field ") + spec.name + " is missing";
            return false;
        }
    }
    return true;
}

std::string kernelDtype(DataType type)
{
    return type == DataType::kFLOAT ? "fp32" : type == DataType::kHALF ? "fp16" : "";
}

AttentionPlugin::AttentionPlugin(Attributes attributes, std::vector<KernelRecord> records)
    : mAttributes(std::move(attributes))
    , mRecords(std::move(records))
    , mCache(std::make_shared<KernelCache>())
{
}

nvinfer1::IPluginCapability* AttentionPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

std::string AttentionPlugin::where() const
{
    return std::string(kNamespace) + "::" + getPluginName();
}

bool AttentionPlugin::hasKernelFor(std::string const& dtype, std::string& why) const
{
    std::string have;
    for (KernelRecord const& r : mRecords)
    {
        if (r.dtype() == dtype)
        {
            return true;
        }
        have += (have.empty() ? "" : ", ") + r.describe();
    }
    why = where() + ": no kernel for " + dtype + " in this node (it carries: " + (have.empty() ? "none" : have)
        + "); build with deploy build-engine --plugins cpp, which compiles the node's kernels into its "
          "\"kernels\" attribute";
    return false;
}

int32_t AttentionPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != 1 || nbInputs < 1)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[0]; // the output has qkv's dtype
    return 0;
}

bool AttentionPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != expectedInputs() || nbOutputs != 1)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos > 0)
    {
        return desc.type == inOut[0].desc.type; // every tensor in qkv's dtype
    }
    std::string const dtype = kernelDtype(desc.type);
    std::string why;
    if (dtype.empty())
    {
        why = where() + ": the kernels take fp32 or fp16 tensors";
    }
    else if (hasKernelFor(dtype, why))
    {
        return true;
    }
    if (why != mRefused) // TensorRT asks many times; say it once
    {
        logError(why);
        mRefused = why;
    }
    return false;
}

int32_t AttentionPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != expectedInputs() || nbOutputs != 1)
    {
        logError(where() + ": expected " + std::to_string(expectedInputs()) + " inputs and 1 output");
        return -1;
    }
    mType = in[0].desc.type;
    std::string const dtype = kernelDtype(mType);
    std::vector<nvinfer1::Dims> dims;
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        dims.push_back(in[i].desc.dims);
    }
    std::string problems;
    for (KernelRecord const& r : mRecords)
    {
        if (r.dtype() != dtype)
        {
            continue;
        }
        std::string const why = checkDims(r, dims.data(), nbInputs);
        if (why.empty())
        {
            return 0;
        }
        problems = why;
    }
    std::string why;
    if (!hasKernelFor(dtype, why))
    {
        logError(why);
        return -1;
    }
    logError(where() + ": the node's kernels were compiled for another configuration: " + problems
        + "; rebuild with deploy build-engine --plugins cpp");
    return -1;
}

int32_t AttentionPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != expectedInputs() || nbOutputs != 1)
    {
        return -1;
    }
    mType = in[0].type;
    return 0;
}

int32_t AttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    std::string why;
    CudaDriver const* cuda = cudaDriver(&why);
    int32_t index = -1;
    int32_t cc = cuda != nullptr ? currentComputeCapability(*cuda, why) : -1;
    if (cc > 0)
    {
        index = selectKernel(mRecords, kernelDtype(inputDesc[0].type), cc, why);
    }
    CUfunction function = index >= 0 ? mCache->function(*cuda, mRecords, index, why) : nullptr;
    uint32_t grid[3] = {0, 0, 0};
    std::vector<int32_t> extras;
    if (function != nullptr)
    {
        why = launchShape(mRecords[index], inputDesc, grid, extras);
    }
    if (function == nullptr || !why.empty())
    {
        logError(where() + ": " + why);
        return -1;
    }
    // PTX parameter order (TensorRT's AOT launch order, kept by tdeploy/plugins/triton_aot.py): input
    // pointers, int32 extras, output pointer. cuLaunchKernel takes the address of each value.
    std::vector<CUdeviceptr> pointers;
    for (int32_t i = 0; i < expectedInputs(); ++i)
    {
        pointers.push_back(reinterpret_cast<CUdeviceptr>(inputs[i]));
    }
    pointers.push_back(reinterpret_cast<CUdeviceptr>(outputs[0]));
    std::vector<void*> args;
    for (int32_t i = 0; i < expectedInputs(); ++i)
    {
        args.push_back(&pointers[i]);
    }
    for (int32_t& value : extras)
    {
        args.push_back(&value);
    }
    args.push_back(&pointers.back());
    if (launch(*cuda, mRecords[index], function, grid, args.data(), reinterpret_cast<CUstream>(stream), why) != 0)
    {
        logError(where() + ": " + why);
        return -1;
    }
    return 0;
}

nvinfer1::IPluginV3* AttentionPlugin::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    return clone();
}

PluginFieldCollection const* AttentionPlugin::getFieldsToSerialize() noexcept
{
    mSerialized.clear();
    mIntStorage.clear();
    mFloatStorage.clear();
    std::vector<FieldSpec> const& specs = fieldSpecs();
    mIntStorage.reserve(specs.size()); // no reallocation: the fields point into the storage
    mFloatStorage.reserve(specs.size());
    for (FieldSpec const& spec : specs)
    {
        if (spec.type == PluginFieldType::kINT32 && mAttributes.ints.count(spec.name))
        {
            mIntStorage.push_back(static_cast<int32_t>(mAttributes.ints.at(spec.name)));
            mSerialized.emplace_back(spec.name, &mIntStorage.back(), PluginFieldType::kINT32, 1);
        }
        else if (spec.type == PluginFieldType::kFLOAT32 && mAttributes.floats.count(spec.name))
        {
            mFloatStorage.push_back(static_cast<float>(mAttributes.floats.at(spec.name)));
            mSerialized.emplace_back(spec.name, &mFloatStorage.back(), PluginFieldType::kFLOAT32, 1);
        }
        else if (spec.type == PluginFieldType::kCHAR && !mAttributes.kernels.empty())
        {
            mSerialized.emplace_back(spec.name, mAttributes.kernels.data(), PluginFieldType::kCHAR,
                static_cast<int32_t>(mAttributes.kernels.size()));
        }
    }
    mCollection.nbFields = static_cast<int32_t>(mSerialized.size());
    mCollection.fields = mSerialized.data();
    return &mCollection;
}

AttentionCreator::AttentionCreator(char const* name, std::vector<FieldSpec> specs, Factory factory)
    : mName(name)
    , mSpecs(std::move(specs))
    , mFactory(factory)
{
    for (FieldSpec const& spec : mSpecs)
    {
        mFields.emplace_back(spec.name, nullptr, spec.type, 0);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

nvinfer1::IPluginV3* AttentionCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    std::string const where = std::string(kNamespace) + "::" + mName + " (node " + (name ? name : "?") + ")";
    Attributes attributes;
    std::string why;
    if (!readFields(fc, mSpecs, attributes, why))
    {
        logError(where + ": " + why);
        return nullptr;
    }
    std::vector<KernelRecord> records;
    if (!attributes.kernels.empty() && !parseKernels(attributes.kernels, records, why))
    {
        logError(where + ": " + why);
        return nullptr;
    }
    if (records.empty())
    {
        // Creation succeeds, so that the build fails where TensorRT asks for a format, with the reason.
        logWarning(where + ": the node carries no kernels; build with deploy build-engine --plugins cpp");
    }
    AttentionPlugin* plugin = mFactory(std::move(attributes), std::move(records), why);
    if (plugin == nullptr)
    {
        logError(where + ": " + why);
    }
    return plugin;
}

} // namespace tdeploy
