#include "npy.hpp"

#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>

namespace npy {
namespace {

const char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr std::size_t kAlign = 64;  // numpy pads the whole preamble to 64 bytes

bool is_little_endian_host() {
    const uint16_t one = 1;
    uint8_t first;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

// The quoted value after 'key': in the dict literal (descr).
std::string string_value(const std::string& header, const std::string& key) {
    std::size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw Error("npy header has no '" + key + "': " + header);
    std::size_t colon = header.find(':', k);
    std::size_t q1 = header.find_first_of("'\"", colon + 1);
    if (colon == std::string::npos || q1 == std::string::npos) throw Error("bad npy header: " + header);
    std::size_t q2 = header.find(header[q1], q1 + 1);
    if (q2 == std::string::npos) throw Error("bad npy header: " + header);
    return header.substr(q1 + 1, q2 - q1 - 1);
}

std::string raw_value(const std::string& header, const std::string& key) {
    std::size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw Error("npy header has no '" + key + "': " + header);
    std::size_t colon = header.find(':', k);
    if (colon == std::string::npos) throw Error("bad npy header: " + header);
    return header.substr(colon + 1);
}

DType dtype_from_descr(const std::string& d) {
    if (d.size() != 3) throw Error("unsupported npy dtype '" + d + "'");
    const char order = d[0];
    const std::string kind = d.substr(1);
    if (order == '>') {
        throw Error("big-endian npy dtype '" + d + "': save the array little-endian (a.astype(a.dtype.newbyteorder('<')))");
    }
    if (order != '<' && order != '|' && order != '=') throw Error("unsupported npy dtype '" + d + "'");
    if (order == '=' && !is_little_endian_host()) throw Error("native-order npy on a big-endian host is not supported");
    if (kind == "f4") return DType::Float32;
    if (kind == "f2") return DType::Float16;
    if (kind == "i4") return DType::Int32;
    if (kind == "i8") return DType::Int64;
    if (kind == "b1") return DType::Bool;
    throw Error("unsupported npy dtype '" + d + "': use float32, float16, int32, int64 or bool");
}

}  // namespace

std::size_t itemsize(DType dtype) {
    switch (dtype) {
        case DType::Float32: return 4;
        case DType::Float16: return 2;
        case DType::Int32: return 4;
        case DType::Int64: return 8;
        case DType::Bool: return 1;
    }
    return 0;
}

const char* descr(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "<f4";
        case DType::Float16: return "<f2";
        case DType::Int32: return "<i4";
        case DType::Int64: return "<i8";
        case DType::Bool: return "|b1";
    }
    return "?";
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "float32";
        case DType::Float16: return "float16";
        case DType::Int32: return "int32";
        case DType::Int64: return "int64";
        case DType::Bool: return "bool";
    }
    return "?";
}

std::size_t Array::numel() const {
    std::size_t n = 1;
    for (int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

void parse_header(const std::string& header, DType& dtype, std::vector<int64_t>& shape) {
    dtype = dtype_from_descr(string_value(header, "descr"));
    std::string fortran = raw_value(header, "fortran_order");
    std::size_t p = fortran.find_first_not_of(" \t");
    if (p == std::string::npos) throw Error("bad npy header: " + header);
    if (fortran.compare(p, 4, "True") == 0) {
        throw Error("Fortran-order npy arrays are not supported: save np.ascontiguousarray(a)");
    }
    if (fortran.compare(p, 5, "False") != 0) throw Error("bad fortran_order in npy header: " + header);

    std::string rest = raw_value(header, "shape");
    std::size_t open = rest.find('(');
    std::size_t close = rest.find(')', open == std::string::npos ? 0 : open);
    if (open == std::string::npos || close == std::string::npos) throw Error("bad shape in npy header: " + header);
    shape.clear();
    std::stringstream body(rest.substr(open + 1, close - open - 1));
    std::string item;
    while (std::getline(body, item, ',')) {
        std::size_t a = item.find_first_not_of(" \tL");
        if (a == std::string::npos) continue;  // "(5,)" leaves an empty last item
        std::size_t b = item.find_last_not_of(" \tL");
        std::string digits = item.substr(a, b - a + 1);
        for (char c : digits) {
            if (!std::isdigit(static_cast<unsigned char>(c))) throw Error("bad shape in npy header: " + header);
        }
        shape.push_back(std::stoll(digits));
    }
}

std::string make_header(DType dtype, const std::vector<int64_t>& shape) {
    std::ostringstream dict;
    dict << "{'descr': '" << descr(dtype) << "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        dict << shape[i];
        if (shape.size() == 1 || i + 1 < shape.size()) dict << ",";
        if (i + 1 < shape.size()) dict << " ";
    }
    dict << "), }";
    return dict.str();
}

Array load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path);
    char magic[kMagicLen];
    uint8_t version[2];
    in.read(magic, kMagicLen);
    in.read(reinterpret_cast<char*>(version), 2);
    if (!in || std::memcmp(magic, kMagic, kMagicLen) != 0) throw Error(path + " is not a .npy file");
    std::size_t header_len = 0;
    if (version[0] == 1) {
        uint8_t b[2];
        in.read(reinterpret_cast<char*>(b), 2);
        header_len = b[0] | (static_cast<std::size_t>(b[1]) << 8);
    } else if (version[0] == 2 || version[0] == 3) {
        uint8_t b[4];
        in.read(reinterpret_cast<char*>(b), 4);
        header_len = b[0] | (static_cast<std::size_t>(b[1]) << 8) | (static_cast<std::size_t>(b[2]) << 16) |
                     (static_cast<std::size_t>(b[3]) << 24);
    } else {
        throw Error(path + ": unsupported .npy format version " + std::to_string(version[0]));
    }
    std::string header(header_len, '\0');
    in.read(&header[0], static_cast<std::streamsize>(header_len));
    if (!in) throw Error(path + ": truncated .npy header");

    Array array;
    try {
        parse_header(header, array.dtype, array.shape);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
    array.data.resize(array.numel() * itemsize(array.dtype));
    in.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
    if (static_cast<std::size_t>(in.gcount()) != array.data.size()) {
        throw Error(path + ": truncated .npy data (expected " + std::to_string(array.data.size()) + " bytes)");
    }
    if (!is_little_endian_host() && itemsize(array.dtype) > 1) throw Error("big-endian hosts are not supported");
    return array;
}

void save(const std::string& path, const Array& array) {
    if (array.data.size() != array.numel() * itemsize(array.dtype)) {
        throw Error("npy::save " + path + ": data size does not match shape and dtype");
    }
    std::string dict = make_header(array.dtype, array.shape);
    // Version 1.0 when the header length fits in uint16, else 2.0 (as numpy does).
    std::size_t preamble_v1 = kMagicLen + 2 + 2;
    std::size_t total = preamble_v1 + dict.size() + 1;
    int major = 1;
    std::size_t preamble = preamble_v1;
    if (((total + kAlign - 1) / kAlign) * kAlign - preamble_v1 > 65535) {
        major = 2;
        preamble = kMagicLen + 2 + 4;
        total = preamble + dict.size() + 1;
    }
    std::size_t padded = ((total + kAlign - 1) / kAlign) * kAlign;
    std::string header = dict + std::string(padded - total, ' ') + "\n";

    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write " + path);
    out.write(kMagic, kMagicLen);
    const char ver[2] = {static_cast<char>(major), 0};
    out.write(ver, 2);
    const std::size_t n = header.size();
    if (major == 1) {
        const char len[2] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff)};
        out.write(len, 2);
    } else {
        const char len[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                             static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
        out.write(len, 4);
    }
    out.write(header.data(), static_cast<std::streamsize>(n));
    out.write(reinterpret_cast<const char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
    if (!out) throw Error("failed writing " + path);
}

}  // namespace npy
