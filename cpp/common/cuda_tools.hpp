// What tdeploy's two CUDA programs share: tdeploy_run (an engine through TensorRT) and
// tests/plugin_harness (the plugins on a GPU without TensorRT). One-line errors that exit 2, and
// CUDA-event timing of work enqueued on a stream.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace tdeploy_tools {

[[noreturn]] inline void fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    std::exit(2);
}

inline void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(status));
}

// Runs `enqueue()` `iters` times on `stream`, each between two CUDA events (device time only: no host
// copies, no allocation); the milliseconds per run, sorted ascending.
template <typename Enqueue>
std::vector<float> time_on_stream(cudaStream_t stream, int iters, Enqueue&& enqueue) {
    cudaEvent_t start, stop;
    check_cuda(cudaEventCreate(&start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
    std::vector<float> ms;
    for (int i = 0; i < iters; ++i) {
        check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
        enqueue();
        check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
        check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
        float elapsed = 0.f;
        check_cuda(cudaEventElapsedTime(&elapsed, start, stop), "cudaEventElapsedTime");
        ms.push_back(elapsed);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    return ms;
}

}  // namespace tdeploy_tools
