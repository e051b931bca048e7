// What tdeploy's two IPluginV3 plugins share: fields, kernel records, the build-time checks, the launch.
//
// A plugin is created from the fields of its ONNX node (TensorRT's parser: INT -> kINT32, FLOAT ->
// kFLOAT32, STRING -> kCHAR) or, at run time, from the fields it serialized into the engine. Its
// "kernels" field holds the Triton kernels compiled for the node (kernels.h). The build-time methods
// refuse, with the reason in TensorRT's log, any configuration the node has no kernel for; enqueue
// loads the kernel for the GPU at hand through the CUDA driver API (cuda_driver.h) and launches it.
//
// API used (all in TensorRT 10.0, hence JetPack 6's 10.3; the same declarations in TensorRT 11 and
// TensorRT-RTX 1.x): IPluginV3, IPluginV3OneCore, IPluginV3OneBuild (not V2), IPluginV3OneRuntime,
// IPluginCreatorV3One, IExprBuilder::operation/constant, DynamicPluginTensorDesc, PluginTensorDesc.
#pragma once

#include "kernels.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tdeploy
{

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;

char const* const kNamespace = "tdeploy";
char const* const kVersion = "1";
char const* const kKernelsField = "kernels";

//! A plugin's attributes: ints, floats, and the kernels text.
struct Attributes
{
    std::map<std::string, int64_t> ints;
    std::map<std::string, double> floats;
    std::string kernels;
};

//! One field a creator lists (what the ONNX parser reads from the node).
struct FieldSpec
{
    char const* name;
    PluginFieldType type; // kINT32, kFLOAT32 or kCHAR
    bool required;
};

//! Attributes from a PluginFieldCollection; false + why when a required field is missing or mistyped.
bool readFields(PluginFieldCollection const* fc, std::vector<FieldSpec> const& specs, Attributes& out, std::string& why);

//! "fp32" / "fp16" for the two types the kernels take, "" otherwise.
std::string kernelDtype(DataType type);

class AttentionPlugin : public nvinfer1::IPluginV3,
                        public nvinfer1::IPluginV3OneCore,
                        public nvinfer1::IPluginV3OneBuild,
                        public nvinfer1::IPluginV3OneRuntime
{
public:
    AttentionPlugin(Attributes attributes, std::vector<KernelRecord> records);

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    char const* getPluginVersion() const noexcept override { return kVersion; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
        void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    //! Inputs the op takes (3 for window attention, 2 for neighborhood attention).
    virtual int32_t expectedInputs() const = 0;
    //! "" when the static dims in ``dims`` (one per input; -1 = dynamic) fit the record, else why not.
    virtual std::string checkDims(KernelRecord const& record, nvinfer1::Dims const* dims, int32_t nbInputs) const = 0;
    //! The grid and the int32 extra arguments (between the input and output pointers) for these shapes.
    virtual std::string launchShape(KernelRecord const& record, PluginTensorDesc const* in, uint32_t grid[3],
        std::vector<int32_t>& extras) const = 0;
    //! The field names this op serializes, in the creator's order (kernels last).
    virtual std::vector<FieldSpec> const& fieldSpecs() const = 0;

    std::string where() const; //!< "tdeploy::WindowAttention"
    bool hasKernelFor(std::string const& dtype, std::string& why) const;

    Attributes mAttributes;
    std::vector<KernelRecord> mRecords;
    std::shared_ptr<KernelCache> mCache; // shared with clones: modules loaded once per context
    DataType mType{DataType::kFLOAT};
    std::string mRefused; // the last refusal logged, so that each is logged once

private:
    std::vector<PluginField> mSerialized;
    std::vector<int32_t> mIntStorage;
    std::vector<float> mFloatStorage;
    PluginFieldCollection mCollection{};
};

//! The creator of an op: its field list, and createPlugin from fields (the ONNX node's at build time, the
//! serialized ones when an engine is loaded).
class AttentionCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    //! Makes the plugin from checked attributes and parsed kernels; nullptr + why when they do not fit.
    using Factory = AttentionPlugin* (*) (Attributes attributes, std::vector<KernelRecord> records, std::string& why);

    AttentionCreator(char const* name, std::vector<FieldSpec> specs, Factory factory);
    nvinfer1::IPluginV3* createPlugin(char const* name, PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;
    PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }
    char const* getPluginName() const noexcept override { return mName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

private:
    char const* mName;
    std::vector<FieldSpec> mSpecs;
    Factory mFactory;
    std::vector<PluginField> mFields;
    PluginFieldCollection mCollection{};
};

} // namespace tdeploy
