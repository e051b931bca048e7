// plugin_checks: the plugins' build-time and serialization methods, on CPU (no GPU, no TensorRT).
//
//   plugin_checks WA_KERNELS NA_KERNELS
//
// WA_KERNELS holds one fp32 record for WindowAttention with N=16, C=32, 2 heads and a mask; NA_KERNELS
// one fp32 record for NeighborhoodAttention2D with 2 heads of 16, k=3, dilation 2 (written by
// tests/cpp/test_plugin_library.py; their PTX is never loaded here). Each check prints "ok NAME" or
// "FAIL NAME: why"; the exit status is the number of failures. The plugins' refusals go to stderr
// (no TensorRT logger here), where the test reads them.
#include <NvInferRuntime.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{

int gFailures = 0;

void check(bool ok, char const* name, std::string const& why = {})
{
    if (ok)
    {
        std::printf("ok %s\n", name);
    }
    else
    {
        std::printf("FAIL %s: %s\n", name, why.c_str());
        ++gFailures;
    }
    std::fflush(stdout);
}

std::string readFile(char const* path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nvinfer1::IPluginCreatorV3One* creator(char const* name)
{
    int32_t n = 0;
    nvinfer1::IPluginCreatorInterface* const* all = getCreators(n);
    for (int32_t i = 0; i < n; ++i)
    {
        auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(all[i]);
        if (std::string(c->getPluginName()) == name)
        {
            return c;
        }
    }
    return nullptr;
}

struct Fields
{
    std::vector<int32_t> ints;
    std::vector<float> floats;
    std::string kernels;
    std::vector<nvinfer1::PluginField> list;
    nvinfer1::PluginFieldCollection fc{};

    Fields(std::vector<std::pair<char const*, int32_t>> const& i, std::vector<std::pair<char const*, float>> const& f,
        std::string k)
        : kernels(std::move(k))
    {
        ints.reserve(i.size());
        floats.reserve(f.size());
        for (auto const& kv : i)
        {
            ints.push_back(kv.second);
            list.emplace_back(kv.first, &ints.back(), nvinfer1::PluginFieldType::kINT32, 1);
        }
        for (auto const& kv : f)
        {
            floats.push_back(kv.second);
            list.emplace_back(kv.first, &floats.back(), nvinfer1::PluginFieldType::kFLOAT32, 1);
        }
        if (!kernels.empty())
        {
            list.emplace_back("kernels", kernels.data(), nvinfer1::PluginFieldType::kCHAR,
                static_cast<int32_t>(kernels.size()));
        }
        fc.nbFields = static_cast<int32_t>(list.size());
        fc.fields = list.data();
    }
};

nvinfer1::DynamicPluginTensorDesc desc(std::vector<int64_t> const& dims, nvinfer1::DataType type,
    nvinfer1::TensorFormat format = nvinfer1::TensorFormat::kLINEAR)
{
    nvinfer1::DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = format;
    d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
    {
        d.desc.dims.d[i] = dims[i];
    }
    d.min = d.opt = d.max = d.desc.dims;
    return d;
}

nvinfer1::IPluginV3OneBuild* build(nvinfer1::IPluginV3* p)
{
    return static_cast<nvinfer1::IPluginV3OneBuild*>(p->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
}

nvinfer1::IPluginV3OneRuntime* runtime(nvinfer1::IPluginV3* p)
{
    return static_cast<nvinfer1::IPluginV3OneRuntime*>(
        p->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
}

//! Formats for every position of ``io`` (inputs then the output) with every tensor of ``type``.
bool allSupported(nvinfer1::IPluginV3* p, std::vector<nvinfer1::DynamicPluginTensorDesc> io, int32_t nbIn)
{
    for (int32_t pos = 0; pos < static_cast<int32_t>(io.size()); ++pos)
    {
        if (!build(p)->supportsFormatCombination(pos, io.data(), nbIn, 1))
        {
            return false;
        }
    }
    return true;
}

std::string serialized(nvinfer1::IPluginV3* p)
{
    nvinfer1::PluginFieldCollection const* fc = runtime(p)->getFieldsToSerialize();
    std::string out;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        size_t const size = f.type == nvinfer1::PluginFieldType::kCHAR ? 1 : 4;
        out += std::string(f.name) + "=" + std::string(static_cast<char const*>(f.data), size * f.length) + ";";
    }
    return out;
}

void windowAttention(std::string const& kernels)
{
    using nvinfer1::DataType;
    nvinfer1::IPluginCreatorV3One* c = creator("WindowAttention");
    check(c != nullptr && std::string(c->getPluginNamespace()) == "tdeploy" && std::string(c->getPluginVersion()) == "1",
        "wa creator: tdeploy::WindowAttention version 1");
    nvinfer1::PluginFieldCollection const* names = c->getFieldNames();
    check(names->nbFields == 3 && std::string(names->fields[0].name) == "num_heads"
            && names->fields[0].type == nvinfer1::PluginFieldType::kINT32 && std::string(names->fields[1].name) == "scale"
            && names->fields[1].type == nvinfer1::PluginFieldType::kFLOAT32
            && std::string(names->fields[2].name) == "kernels" && names->fields[2].type == nvinfer1::PluginFieldType::kCHAR,
        "wa fields: num_heads (int32), scale (float32), kernels (char)");

    Fields fields({{"num_heads", 2}}, {{"scale", 0.25f}}, kernels);
    std::unique_ptr<nvinfer1::IPluginV3> p(c->createPlugin("wa0", &fields.fc, nvinfer1::TensorRTPhase::kBUILD));
    check(p != nullptr, "wa created from parser-style fields");
    if (!p)
    {
        return;
    }
    DataType out{};
    DataType const in[3] = {DataType::kHALF, DataType::kHALF, DataType::kHALF};
    check(build(p.get())->getOutputDataTypes(&out, 1, in, 3) == 0 && out == DataType::kHALF, "wa output dtype = qkv's");

    // Dynamic windows (-1), N = 16, 3C = 96; a mask of 4 windows.
    auto io = [](DataType t, int64_t n, int64_t maskWindows, int64_t maskN) {
        return std::vector<nvinfer1::DynamicPluginTensorDesc>{desc({-1, n, 96}, t), desc({2, n, n}, t),
            desc({maskWindows, maskN, maskN}, t), desc({-1, n, 32}, t)};
    };
    check(allSupported(p.get(), io(DataType::kFLOAT, 16, 4, 16), 3), "wa fp32 linear supported (an fp32 kernel)");
    check(!allSupported(p.get(), io(DataType::kHALF, 16, 4, 16), 3), "wa fp16 refused: no fp16 kernel in the node");
    check(!allSupported(p.get(), io(DataType::kINT8, 16, 4, 16), 3), "wa int8 refused");
    auto hwc = io(DataType::kFLOAT, 16, 4, 16);
    hwc[0] = desc({-1, 16, 96}, DataType::kFLOAT, nvinfer1::TensorFormat::kHWC8);
    check(!build(p.get())->supportsFormatCombination(0, hwc.data(), 3, 1), "wa non-linear format refused");
    auto mixed = io(DataType::kFLOAT, 16, 4, 16);
    mixed[1] = desc({2, 16, 16}, DataType::kHALF);
    check(!build(p.get())->supportsFormatCombination(1, mixed.data(), 3, 1), "wa mixed dtypes refused");

    auto ok = io(DataType::kFLOAT, 16, 4, 16);
    check(build(p.get())->configurePlugin(ok.data(), 3, ok.data() + 3, 1) == 0, "wa configure: the kernel's shapes");
    auto wrongN = io(DataType::kFLOAT, 49, 4, 49);
    check(build(p.get())->configurePlugin(wrongN.data(), 3, wrongN.data() + 3, 1) != 0, "wa configure refuses N=49");
    auto noMask = io(DataType::kFLOAT, 16, 1, 1);
    check(build(p.get())->configurePlugin(noMask.data(), 3, noMask.data() + 3, 1) != 0,
        "wa configure refuses the no-mask sentinel (the kernel reads a mask)");
    check(build(p.get())->getWorkspaceSize(ok.data(), 3, ok.data() + 3, 1) == 0, "wa needs no workspace");

    std::string const first = serialized(p.get());
    std::unique_ptr<nvinfer1::IPluginV3> again(
        c->createPlugin("wa0", runtime(p.get())->getFieldsToSerialize(), nvinfer1::TensorRTPhase::kRUNTIME));
    check(again != nullptr && serialized(again.get()) == first && first.find("kernels=tdeploy-kernels 1") != std::string::npos,
        "wa fields round trip (kernels included)");
    std::unique_ptr<nvinfer1::IPluginV3> copy(p->clone());
    check(copy != nullptr && serialized(copy.get()) == first, "wa clone keeps the fields");

    Fields missing({}, {{"scale", 0.25f}}, kernels);
    check(c->createPlugin("wa1", &missing.fc, nvinfer1::TensorRTPhase::kBUILD) == nullptr, "wa without num_heads refused");
    Fields broken({{"num_heads", 2}}, {{"scale", 0.25f}}, "not kernels");
    check(c->createPlugin("wa2", &broken.fc, nvinfer1::TensorRTPhase::kBUILD) == nullptr, "wa malformed kernels refused");
    Fields none({{"num_heads", 2}}, {{"scale", 0.25f}}, "");
    std::unique_ptr<nvinfer1::IPluginV3> bare(c->createPlugin("wa3", &none.fc, nvinfer1::TensorRTPhase::kBUILD));
    check(bare != nullptr && !allSupported(bare.get(), io(DataType::kFLOAT, 16, 4, 16), 3),
        "wa without kernels: created, then refused at the format check");
}

void neighborhoodAttention(std::string const& kernels)
{
    using nvinfer1::DataType;
    nvinfer1::IPluginCreatorV3One* c = creator("NeighborhoodAttention2D");
    check(c != nullptr && c->getFieldNames()->nbFields == 5, "na creator: 5 fields");
    if (c == nullptr)
    {
        return;
    }
    Fields fields({{"num_heads", 2}, {"kernel_size", 3}, {"dilation", 2}}, {{"scale", 0.25f}}, kernels);
    std::unique_ptr<nvinfer1::IPluginV3> p(c->createPlugin("na0", &fields.fc, nvinfer1::TensorRTPhase::kBUILD));
    check(p != nullptr, "na created");
    if (!p)
    {
        return;
    }
    auto io = [](DataType t, int64_t c3) {
        return std::vector<nvinfer1::DynamicPluginTensorDesc>{desc({-1, -1, -1, c3}, t), desc({2, 5, 5}, t),
            desc({-1, -1, -1, c3 / 3}, t)};
    };
    check(allSupported(p.get(), io(DataType::kFLOAT, 96), 2), "na fp32 supported (dynamic B, H, W)");
    check(!allSupported(p.get(), io(DataType::kHALF, 96), 2), "na fp16 refused: no fp16 kernel");
    auto ok = io(DataType::kFLOAT, 96);
    check(build(p.get())->configurePlugin(ok.data(), 2, ok.data() + 2, 1) == 0, "na configure: head_dim 16");
    auto wide = io(DataType::kFLOAT, 192);
    check(build(p.get())->configurePlugin(wide.data(), 2, wide.data() + 2, 1) != 0, "na configure refuses head_dim 32");
    Fields otherK({{"num_heads", 2}, {"kernel_size", 5}, {"dilation", 2}}, {{"scale", 0.25f}}, kernels);
    std::unique_ptr<nvinfer1::IPluginV3> k5(c->createPlugin("na1", &otherK.fc, nvinfer1::TensorRTPhase::kBUILD));
    check(k5 != nullptr && build(k5.get())->configurePlugin(ok.data(), 2, ok.data() + 2, 1) != 0,
        "na configure refuses a kernel compiled for another kernel_size");
    Fields even({{"num_heads", 2}, {"kernel_size", 4}, {"dilation", 1}}, {{"scale", 0.25f}}, kernels);
    check(c->createPlugin("na2", &even.fc, nvinfer1::TensorRTPhase::kBUILD) == nullptr, "na even kernel_size refused");
    std::string const first = serialized(p.get());
    std::unique_ptr<nvinfer1::IPluginV3> again(
        c->createPlugin("na0", runtime(p.get())->getFieldsToSerialize(), nvinfer1::TensorRTPhase::kRUNTIME));
    check(again != nullptr && serialized(again.get()) == first, "na fields round trip");
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: plugin_checks WA_KERNELS NA_KERNELS\n");
        return 2;
    }
    windowAttention(readFile(argv[1]));
    neighborhoodAttention(readFile(argv[2]));
    return gFailures;
}
