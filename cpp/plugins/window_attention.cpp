// tdeploy::WindowAttention, version 1 (Swin, SwinIR): see tdeploy/plugins/window_attention/README.md.
//
// Inputs qkv (B*nW, N, 3C), bias (heads, N, N), mask (nW, N, N) or the (1, 1, 1) no-mask sentinel;
// output (B*nW, N, C), all in qkv's dtype (fp32 or fp16). Fields: num_heads (int), scale (float),
// kernels (the node's compiled Triton kernels). Launch: grid (B*nW, heads, ceil(N / block_m)), args
// (qkv, bias, mask, n_win, out) -- as the PyTorch launcher in triton.py.
#include "ops.h"

#include <string>

namespace tdeploy
{
namespace
{

std::vector<FieldSpec> const kFields{
    {"num_heads", PluginFieldType::kINT32, true},
    {"scale", PluginFieldType::kFLOAT32, true},
    {kKernelsField, PluginFieldType::kCHAR, false},
};

class WindowAttentionPlugin : public AttentionPlugin
{
public:
    static constexpr char const* kName = "WindowAttention";
    using AttentionPlugin::AttentionPlugin;

    char const* getPluginName() const noexcept override { return kName; }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        return new (std::nothrow) WindowAttentionPlugin(*this);
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept override
    {
        if (nbInputs != 3 || nbOutputs != 1 || inputs[0].nbDims != 3)
        {
            return -1;
        }
        outputs[0] = inputs[0]; // (B*nW, N, 3C) -> (B*nW, N, C)
        outputs[0].d[2]
            = exprBuilder.operation(nvinfer1::DimensionOperation::kFLOOR_DIV, *inputs[0].d[2], *exprBuilder.constant(3));
        return 0;
    }

protected:
    int32_t expectedInputs() const override { return 3; }

    std::vector<FieldSpec> const& fieldSpecs() const override { return kFields; }

    std::string checkDims(KernelRecord const& r, nvinfer1::Dims const* dims, int32_t nbInputs) const override
    {
        nvinfer1::Dims const& qkv = dims[0];
        nvinfer1::Dims const& mask = dims[2];
        if (qkv.nbDims != 3 || mask.nbDims != 3)
        {
            return "qkv and mask must be 3-D";
        }
        bool const hasMask = mask.d[1] != 1;
        if (qkv.d[1] != r.number("n") || qkv.d[2] != 3 * r.number("c") || hasMask != (r.number("has_mask") == 1)
            || mAttributes.ints.at("num_heads") != r.number("heads"))
        {
            return "the graph has N=" + std::to_string(qkv.d[1]) + ", 3C=" + std::to_string(qkv.d[2])
                + (hasMask ? ", a mask" : ", no mask") + "; the kernel N=" + r.text("n") + ", C=" + r.text("c")
                + (r.number("has_mask") == 1 ? ", a mask" : ", no mask");
        }
        return {};
    }

    std::string launchShape(KernelRecord const& r, PluginTensorDesc const* in, uint32_t grid[3],
        std::vector<int32_t>& extras) const override
    {
        int64_t const windows = in[0].dims.d[0];
        int64_t const n = in[0].dims.d[1];
        int64_t const blockM = r.number("block_m");
        grid[0] = static_cast<uint32_t>(windows);
        grid[1] = static_cast<uint32_t>(mAttributes.ints.at("num_heads"));
        grid[2] = static_cast<uint32_t>((n + blockM - 1) / blockM);
        // n_win: window b uses mask[b % n_win]; the sentinel's 1 keeps the modulo defined (never read).
        extras.assign(1, static_cast<int32_t>(in[2].dims.d[0]));
        if (windows > INT32_MAX)
        {
            return "B*nW = " + std::to_string(windows) + " windows: past the grid's x limit";
        }
        return {};
    }
};

AttentionPlugin* makeWindowAttention(Attributes attributes, std::vector<KernelRecord> records, std::string& why)
{
    if (attributes.ints.at("num_heads") < 1)
    {
        why = "num_heads must be >= 1";
        return nullptr;
    }
    return new (std::nothrow) WindowAttentionPlugin(std::move(attributes), std::move(records));
}

} // namespace

nvinfer1::IPluginCreatorV3One* windowAttentionCreator()
{
    static AttentionCreator creator(WindowAttentionPlugin::kName, kFields, makeWindowAttention);
    return &creator;
}

} // namespace tdeploy
