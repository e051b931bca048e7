// A small, self-contained reader/writer of NumPy .npy files (format versions 1.0, 2.0 and 3.0).
//
// Supported: C-order (fortran_order False), little-endian (or byte-order-free) arrays of
// float32 '<f4', float16 '<f2', int32 '<i4', int64 '<i8' and bool '|b1'. Anything else is refused
// with a message that says how to save the array so that it loads (e.g. np.ascontiguousarray).
// Format reference: numpy/lib/format.py (magic "\x93NUMPY", version, little-endian header length
// (uint16 in 1.0, uint32 in 2.0/3.0), a Python dict literal padded with spaces to a multiple of 64
// bytes and ended by '\n', then the raw data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

enum class DType { Float32, Float16, Int32, Int64, Bool };

std::size_t itemsize(DType dtype);
const char* descr(DType dtype);       // "<f4", ...
const char* dtype_name(DType dtype);  // "float32", ...

struct Array {
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;  // () for a scalar
    std::vector<uint8_t> data;   // numel() * itemsize(dtype) bytes, C order, little-endian

    std::size_t numel() const;
    std::size_t nbytes() const { return data.size(); }
};

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Parse the header dict literal, e.g. "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
void parse_header(const std::string& header, DType& dtype, std::vector<int64_t>& shape);
std::string make_header(DType dtype, const std::vector<int64_t>& shape);

Array load(const std::string& path);
void save(const std::string& path, const Array& array);

}  // namespace npy
