// npy_roundtrip IN.npy OUT.npy: load IN with the tdeploy_run reader, write it back with the writer,
// and print "<dtype> <d0>x<d1>..." on stdout. Used by tests/deploy/test_cpp_npy.py; needs no
// TensorRT and no CUDA.
#include <cstdio>

#include "npy.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: npy_roundtrip IN.npy OUT.npy\n");
        return 2;
    }
    try {
        npy::Array a = npy::load(argv[1]);
        npy::save(argv[2], a);
        std::printf("%s ", npy::dtype_name(a.dtype));
        for (std::size_t i = 0; i < a.shape.size(); ++i) std::printf(i ? "x%lld" : "%lld", static_cast<long long>(a.shape[i]));
        std::printf("\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
