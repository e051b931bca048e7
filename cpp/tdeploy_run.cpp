// tdeploy_run: run a TensorRT engine built by `deploy build-engine` on .npy inputs.
//
//   tdeploy_run model.engine --input pixel_values=x.npy [--input ...] [--output-dir out/]
//               [--plugins build/cpp/libtdeploy_plugins.so] [--iters 100] [--warmup 10]
//
// Loads the engine with a TensorRT runtime -- after loading the plugin library when the engine holds
// tdeploy's C++ plugin layers (--plugins; an engine with the QDP AOT plugins needs none: their PTX is
// inside it) --, sets the input shapes from the .npy files, runs enqueueV3 on a CUDA stream, writes every
// output as <output-dir>/<name>.npy and prints latency percentiles over --iters timed runs after
// --warmup untimed ones. Builds against TensorRT 10.x/11.x or TensorRT-RTX 1.x (the same runtime API).
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "cuda_tools.hpp"
#include "npy.hpp"

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

using tdeploy_tools::check_cuda;
using tdeploy_tools::fail;

bool to_npy_dtype(nvinfer1::DataType t, npy::DType& out) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT: out = npy::DType::Float32; return true;
        case nvinfer1::DataType::kHALF: out = npy::DType::Float16; return true;
        case nvinfer1::DataType::kINT32: out = npy::DType::Int32; return true;
        case nvinfer1::DataType::kINT64: out = npy::DType::Int64; return true;
        case nvinfer1::DataType::kBOOL: out = npy::DType::Bool; return true;
        default: return false;
    }
}

std::string safe_file_name(std::string name) {
    for (char& c : name) {
        if (c == '/' || c == '\\' || c == ':' || c == ' ') c = '_';
    }
    return name;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<float>& sorted, double p) {
    if (sorted.empty()) return 0.0;
    std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Args {
    std::string engine;
    std::map<std::string, std::string> inputs;  // tensor name -> .npy path
    std::string output_dir = ".";
    std::vector<std::string> plugins;  // plugin libraries to load before deserializing
    int iters = 100;
    int warmup = 10;
};

Args parse_args(int argc, char** argv) {
    const char* usage =
        "usage: tdeploy_run ENGINE --input NAME=FILE.npy [--input ...] [--output-dir DIR] [--plugins LIB.so] "
        "[--iters N] [--warmup N]";
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* flag) -> std::string {
            if (i + 1 >= argc) fail(std::string(flag) + " needs a value; " + usage);
            return argv[++i];
        };
        if (a == "--input") {
            std::string v = value("--input");
            std::size_t eq = v.find('=');
            if (eq == std::string::npos || eq == 0) fail("--input takes NAME=FILE.npy, got '" + v + "'");
            args.inputs[v.substr(0, eq)] = v.substr(eq + 1);
        } else if (a == "--plugins") {
            args.plugins.push_back(value("--plugins"));
        } else if (a == "--output-dir") {
            args.output_dir = value("--output-dir");
        } else if (a == "--iters") {
            args.iters = std::atoi(value("--iters").c_str());
        } else if (a == "--warmup") {
            args.warmup = std::atoi(value("--warmup").c_str());
        } else if (a == "-h" || a == "--help") {
            std::printf("%s\n", usage);
            std::exit(0);
        } else if (!a.empty() && a[0] != '-' && args.engine.empty()) {
            args.engine = a;
        } else {
            fail("unexpected argument '" + a + "'; " + usage);
        }
    }
    if (args.engine.empty()) fail(usage);
    if (args.iters < 1 || args.warmup < 0) fail("--iters must be >= 1 and --warmup >= 0");
    return args;
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read " + path);
    return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Tensor {
    std::string name;
    npy::DType dtype;
    std::vector<int64_t> shape;
    void* device = nullptr;
    std::size_t bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    Logger logger;

    // 1. Deserialize, with the plugin libraries the engine's layers need registered first.
    std::vector<char> blob = read_file(args.engine);
    std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    if (!runtime) fail("cannot create the TensorRT runtime");
    for (const std::string& library : args.plugins) {
        if (runtime->getPluginRegistry().loadLibrary(library.c_str()) == nullptr) {
            fail("TensorRT could not load the plugin library " + library + " (see the TensorRT log above)");
        }
    }
    std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine) {
        fail(args.engine + " did not load (built by another TensorRT version or for another GPU?); rebuild it with "
             "deploy build-engine on this machine");
    }
    std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
    if (!context) fail("cannot create an execution context");
    cudaStream_t stream;
    check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");

    // 2. Inputs: shapes from the .npy files, device buffers, addresses.
    std::vector<Tensor> inputs, outputs;
    const int n_io = engine->getNbIOTensors();
    for (int i = 0; i < n_io; ++i) {
        const char* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) continue;
        auto it = args.inputs.find(name);
        if (it == args.inputs.end()) fail(std::string("the engine needs --input ") + name + "=FILE.npy");
        npy::Array host;
        try {
            host = npy::load(it->second);
        } catch (const std::exception& e) {
            fail(e.what());
        }
        npy::DType want;
        if (!to_npy_dtype(engine->getTensorDataType(name), want)) fail(std::string("unsupported dtype of input ") + name);
        if (host.dtype != want) {
            fail(std::string("input ") + name + " is " + npy::dtype_name(host.dtype) + " in " + it->second +
                 " but the engine takes " + npy::dtype_name(want) + ": save it with a.astype(np." +
                 npy::dtype_name(want) + ")");
        }
        nvinfer1::Dims dims{};
        dims.nbDims = static_cast<int32_t>(host.shape.size());
        if (dims.nbDims > nvinfer1::Dims::MAX_DIMS) fail(std::string("too many dimensions for ") + name);
        for (int d = 0; d < dims.nbDims; ++d) dims.d[d] = host.shape[d];
        if (!context->setInputShape(name, dims)) {
            fail(std::string("shape of ") + name + " is outside the engine's profile; rebuild with --shapes");
        }
        Tensor t{name, host.dtype, host.shape, nullptr, std::max<std::size_t>(host.nbytes(), 1)};
        check_cuda(cudaMalloc(&t.device, t.bytes), "cudaMalloc");
        check_cuda(cudaMemcpy(t.device, host.data.data(), host.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
        context->setTensorAddress(name, t.device);
        inputs.push_back(t);
        args.inputs.erase(it);
    }
    for (const auto& extra : args.inputs) fail("the engine has no input named " + extra.first);

    // 3. Outputs: shapes are known once every input shape is set.
    for (int i = 0; i < n_io; ++i) {
        const char* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kOUTPUT) continue;
        npy::DType dtype;
        if (!to_npy_dtype(engine->getTensorDataType(name), dtype)) fail(std::string("unsupported dtype of output ") + name);
        nvinfer1::Dims dims = context->getTensorShape(name);
        Tensor t{name, dtype, {}, nullptr, npy::itemsize(dtype)};
        for (int d = 0; d < dims.nbDims; ++d) {
            if (dims.d[d] < 0) fail(std::string("output ") + name + " has a data-dependent shape (not supported)");
            t.shape.push_back(dims.d[d]);
            t.bytes *= static_cast<std::size_t>(dims.d[d]);
        }
        check_cuda(cudaMalloc(&t.device, std::max<std::size_t>(t.bytes, 1)), "cudaMalloc");
        context->setTensorAddress(name, t.device);
        outputs.push_back(t);
    }

    // 4. Warm-up, then timed runs (CUDA events around each enqueueV3).
    for (int i = 0; i < args.warmup; ++i) {
        if (!context->enqueueV3(stream)) fail("enqueueV3 failed (see the TensorRT log above)");
    }
    check_cuda(cudaStreamSynchronize(stream), "warm-up");
    const std::vector<float> ms = tdeploy_tools::time_on_stream(stream, args.iters, [&] {
        if (!context->enqueueV3(stream)) fail("enqueueV3 failed (see the TensorRT log above)");
    });

    // 5. Outputs to .npy.
    mkdir(args.output_dir.c_str(), 0755);  // fine if it exists
    for (const Tensor& t : outputs) {
        npy::Array host;
        host.dtype = t.dtype;
        host.shape = t.shape;
        host.data.resize(t.bytes);
        check_cuda(cudaMemcpy(host.data.data(), t.device, t.bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
        std::string path = args.output_dir + "/" + safe_file_name(t.name) + ".npy";
        try {
            npy::save(path, host);
        } catch (const std::exception& e) {
            fail(e.what());
        }
        std::printf("wrote %s\n", path.c_str());
    }
    std::printf("latency over %d runs (after %d warm-up): p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  min %.3f ms\n",
                args.iters, args.warmup, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), ms.front());

    for (Tensor& t : inputs) cudaFree(t.device);
    for (Tensor& t : outputs) cudaFree(t.device);
    cudaStreamDestroy(stream);
    return 0;
}
