// Messages of the plugin library go to the logger of the TensorRT that loaded it.
//
// The logger is the one TensorRT hands the library (setLoggerFinder, for version-compatible engines),
// else the one TensorRT's exported getLogger() returns (the builder's or runtime's), so that a refusal
// ("no kernel for fp16 ...") appears in the user's TensorRT log beside the build error it explains.
// Without TensorRT in the process (the GPU test harness), and in TensorRT-RTX (whose finder's logger does
// not reach the user's), warnings and errors go to stderr.
#pragma once

#include <NvInferRuntime.h>

#include <string>

namespace tdeploy
{

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

//! One line, prefixed "[tdeploy] ".
void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

inline void logError(std::string const& message) noexcept
{
    log(nvinfer1::ILogger::Severity::kERROR, message);
}

inline void logWarning(std::string const& message) noexcept
{
    log(nvinfer1::ILogger::Severity::kWARNING, message);
}

} // namespace tdeploy
