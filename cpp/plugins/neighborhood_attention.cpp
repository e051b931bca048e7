// tdeploy::NeighborhoodAttention2D, version 1 (NAT, DiNAT): see tdeploy/plugins/neighborhood_attention/README.md.
//
// Inputs qkv (B, H, W, 3C) and rpb (heads, 2k-1, 2k-1); output (B, H, W, C), all in qkv's dtype (fp32 or
// fp16). Fields: num_heads, kernel_size, dilation (ints), scale (float), kernels. Launch: grid (B*heads,
// d*ceil(ceil(W/d)/block_q), d*ceil(ceil(H/d)/block_r)), args (qkv, rpb, H, W, out) -- as triton.grid().
#include "ops.h"

#include <string>

namespace tdeploy
{
namespace
{

std::vector<FieldSpec> const kFields{
    {"num_heads", PluginFieldType::kINT32, true},
    {"kernel_size", PluginFieldType::kINT32, true},
    {"dilation", PluginFieldType::kINT32, true},
    {"scale", PluginFieldType::kFLOAT32, true},
    {kKernelsField, PluginFieldType::kCHAR, false},
};

int64_t cdiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

class NeighborhoodAttentionPlugin : public AttentionPlugin
{
public:
    static constexpr char const* kName = "NeighborhoodAttention2D";
    using AttentionPlugin::AttentionPlugin;

    char const* getPluginName() const noexcept override { return kName; }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        return new (std::nothrow) NeighborhoodAttentionPlugin(*this);
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept override
    {
        if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4)
        {
            return -1;
        }
        outputs[0] = inputs[0]; // (B, H, W, 3C) -> (B, H, W, C)
        outputs[0].d[3]
            = exprBuilder.operation(nvinfer1::DimensionOperation::kFLOOR_DIV, *inputs[0].d[3], *exprBuilder.constant(3));
        return 0;
    }

protected:
    int32_t expectedInputs() const override { return 2; }

    std::vector<FieldSpec> const& fieldSpecs() const override { return kFields; }

    std::string checkDims(KernelRecord const& r, nvinfer1::Dims const* dims, int32_t nbInputs) const override
    {
        nvinfer1::Dims const& qkv = dims[0];
        if (qkv.nbDims != 4)
        {
            return "qkv must be 4-D";
        }
        int64_t const heads = mAttributes.ints.at("num_heads");
        if (qkv.d[3] != 3 * heads * r.number("head_dim") || heads != r.number("heads")
            || mAttributes.ints.at("kernel_size") != r.number("kernel_size")
            || mAttributes.ints.at("dilation") != r.number("dilation"))
        {
            return "the graph has 3C=" + std::to_string(qkv.d[3]) + ", heads=" + std::to_string(heads)
                + ", k=" + std::to_string(mAttributes.ints.at("kernel_size")) + ", dilation="
                + std::to_string(mAttributes.ints.at("dilation")) + "; the kernel head_dim=" + r.text("head_dim")
                + ", heads=" + r.text("heads") + ", k=" + r.text("kernel_size") + ", dilation=" + r.text("dilation");
        }
        return {};
    }

    std::string launchShape(KernelRecord const& r, PluginTensorDesc const* in, uint32_t grid[3],
        std::vector<int32_t>& extras) const override
    {
        int64_t const b = in[0].dims.d[0];
        int64_t const h = in[0].dims.d[1];
        int64_t const w = in[0].dims.d[2];
        int64_t const d = mAttributes.ints.at("dilation");
        int64_t const programs = b * mAttributes.ints.at("num_heads");
        if (programs > INT32_MAX)
        {
            return "B*heads = " + std::to_string(programs) + ": past the grid's x limit";
        }
        grid[0] = static_cast<uint32_t>(programs);
        grid[1] = static_cast<uint32_t>(d * cdiv(cdiv(w, d), r.number("block_q")));
        grid[2] = static_cast<uint32_t>(d * cdiv(cdiv(h, d), r.number("block_r")));
        extras = {static_cast<int32_t>(h), static_cast<int32_t>(w)};
        return {};
    }
};

AttentionPlugin* makeNeighborhoodAttention(Attributes attributes, std::vector<KernelRecord> records, std::string& why)
{
    int64_t const k = attributes.ints.at("kernel_size");
    if (attributes.ints.at("num_heads") < 1 || k < 3 || k % 2 == 0 || attributes.ints.at("dilation") < 1)
    {
        why = "num_heads >= 1, an odd kernel_size >= 3 and dilation >= 1 are needed";
        return nullptr;
    }
    return new (std::nothrow) NeighborhoodAttentionPlugin(std::move(attributes), std::move(records));
}

} // namespace

nvinfer1::IPluginCreatorV3One* neighborhoodAttentionCreator()
{
    static AttentionCreator creator(NeighborhoodAttentionPlugin::kName, kFields, makeNeighborhoodAttention);
    return &creator;
}

} // namespace tdeploy
