// aoti_infer: run an AOTInductor package (.pt2) from C++, with no Python at all,
// and time it. deploy/cpp/README.md says more.
//
//   aoti_infer PACKAGE.pt2 --input DTYPE:SHAPE[:MAX] [--input ...] [--iters N]
//              [--warmup W] [--threads T] [--check-inputs 0|1] [--out OUTPUTS.pt]
//
// One --input per model input, in order (float32:1x3x32x32, int64:32x200:4999);
// the program builds each from its elements' flat index i: (i % 256) / 256 for
// floating point, MAX - i % MAX (MAX 1 when left out) for integers and bool, so
// that token ids and lengths stay valid (build_inputs in benchmarks/harness.py
// builds the same). It prints ONE line of JSON to stdout; --out saves the last
// call's outputs with torch::jit::pickle_save (Python: torch.load). Errors go to
// stderr: exit code 2 for bad arguments, 1 for anything else.

#include <sys/resource.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/headeronly/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char* kUsage =
    "usage: aoti_infer PACKAGE.pt2 --input DTYPE:SHAPE[:MAX] [--input ...] [--iters N] "
    "[--warmup W] [--threads T] [--check-inputs 0|1] [--out OUTPUTS.pt]";
const std::vector<std::pair<std::string, at::ScalarType>> kDtypes = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong},  {"int32", at::kInt},
    {"int16", at::kShort},       {"int8", at::kChar},   {"uint8", at::kByte},
    {"bool", at::kBool}};

struct UsageError : std::runtime_error {  // exit code 2, with the usage line
  using std::runtime_error::runtime_error;
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  return parts;
}

long long to_int(const std::string& what, const std::string& text, long long least) {
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0' && value >= least) return value;
  throw UsageError(what + " needs an integer >= " + std::to_string(least) + ", got '" +
                   text + "'");
}

// DTYPE:SHAPE[:MAX] -> the input it names, built as the header says.
at::Tensor build_input(const std::string& spec) {
  const std::vector<std::string> parts = split(spec, ':');
  auto type = at::ScalarType::Undefined;
  for (const auto& [name, known] : kDtypes) {
    if (!parts.empty() && name == parts[0]) type = known;
  }
  const bool floating = at::isFloatingType(type);
  if (parts.size() < 2 || parts.size() > 3 || type == at::ScalarType::Undefined ||
      (floating && parts.size() == 3)) {
    throw UsageError("--input '" + spec + "' is not DTYPE:SHAPE[:MAX] (int64:2x6:49; " +
                     "MAX for integers only; DTYPE float32 float64 float16 bfloat16 " +
                     "int64 int32 int16 int8 uint8 bool)");
  }
  std::vector<int64_t> shape;
  for (const auto& size : split(parts[1], 'x')) shape.push_back(to_int(spec, size, 0));
  const long long max = parts.size() == 3 ? to_int("MAX in " + spec, parts[2], 1) : 1;
  const at::Tensor index = at::arange(c10::multiply_integers(shape), at::kLong);
  const at::Tensor values = floating ? index.remainder(256).to(at::kDouble).div(256)
                                     : index.remainder(max).neg().add(max);
  return values.to(type).reshape(shape);
}

double percentile(const std::vector<double>& sorted, double q) {  // as numpy's default
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(position);
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
}

std::string quoted(const std::string& text) {  // as JSON; nothing here holds '"' or '\\'
  return "\"" + text + "\"";
}

int run(int argc, char** argv) {
  std::vector<std::string> packages, specs;
  std::string out;
  long long iters = 100, warmup = 10, threads = 1;
  bool check_inputs = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return (std::cout << kUsage << "\n") ? 0 : 1;
    const bool counted = arg == "--iters" || arg == "--warmup" || arg == "--threads";
    if (arg.rfind("--", 0) != 0) {
      packages.push_back(arg);
      continue;
    }
    if (!counted && arg != "--input" && arg != "--check-inputs" && arg != "--out") {
      throw UsageError("unknown option " + arg);
    }
    if (i + 1 >= argc) throw UsageError(arg + " needs a value");
    const std::string value = argv[++i];
    if (counted) {
      (arg == "--iters" ? iters : arg == "--warmup" ? warmup : threads) =
          to_int(arg, value, arg == "--warmup" ? 0 : 1);
    } else if (arg == "--check-inputs") {
      if (value != "0" && value != "1") throw UsageError(arg + " needs 0 or 1: " + value);
      check_inputs = value == "1";
    } else {
      (arg == "--input" ? specs.emplace_back() : out) = value;
    }
  }
  if (packages.size() != 1) throw UsageError("expected one PACKAGE.pt2");
  if (specs.empty()) throw UsageError("no --input: give one per model input, in order");
  std::vector<at::Tensor> inputs;
  for (const auto& spec : specs) inputs.push_back(build_input(spec));
  if (!std::filesystem::is_regular_file(packages[0])) {
    throw std::runtime_error("package '" + packages[0] + "' does not exist; export " +
                             "it with export_aoti (benchmarks/harness.py)");
  }

  // The compiled code reads it at its first call (not rechecked afterwards).
  setenv("AOTI_RUNTIME_CHECK_INPUTS", check_inputs ? "1" : "0", /*overwrite=*/1);
  at::set_num_threads(static_cast<int>(threads));
  c10::InferenceMode inference_mode;
  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  try {
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(packages[0]);
  } catch (const c10::Error& error) {
    throw std::runtime_error("cannot load package '" + packages[0] + "' (is it a .pt2 " +
                             "written by export_aoti?): " + error.what_without_backtrace());
  }
  const std::chrono::duration<double, std::milli> load = std::chrono::steady_clock::now() -
                                                         load_start;
  auto metadata = loader->get_metadata();
  const std::string device = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"]
                                                               : "cpu";
  if (device != "cpu") {
    throw std::runtime_error("package '" + packages[0] + "' was compiled for " + device +
                             "; this runner times CPU packages only");
  }
  const std::string signature = metadata["rlbook.inputs"];  // "float32[batch,8] ..."
  if (!signature.empty() && split(signature, ' ').size() != inputs.size()) {
    throw UsageError("the package takes " + std::to_string(split(signature, ' ').size()) +
                     " inputs (" + signature + "), not " + std::to_string(inputs.size()));
  }

  std::vector<at::Tensor> outputs;
  for (long long i = 0; i < warmup; ++i) outputs = loader->run(inputs);
  std::vector<double> sorted;  // ms per call
  for (long long i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    outputs = loader->run(inputs);
    sorted.push_back(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start).count());
  }
  std::sort(sorted.begin(), sorted.end());
  if (!out.empty()) {
    const std::vector<c10::IValue> values(outputs.begin(), outputs.end());
    const auto bytes = torch::jit::pickle_save(c10::ivalue::Tuple::create(values));
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!file) throw std::runtime_error("cannot write the outputs to '" + out + "'");
  }

  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);  // ru_maxrss: kB on Linux, bytes on macOS
#if defined(__APPLE__)
  usage.ru_maxrss /= 1024;
#endif
  double total = 0;
  for (const double value : sorted) total += value;
  std::ostringstream given;
  for (const auto& spec : specs) given << (given.tellp() ? ", " : "") << quoted(spec);
  std::cout << std::fixed << "{\"batch_size\": "
            << (inputs[0].dim() ? std::to_string(inputs[0].size(0)) : "null")
            << ", \"check_inputs\": " << (check_inputs ? "true" : "false")
            << ", \"compiler\": " << quoted(__VERSION__)  // "12.2.0" (gcc), "Clang ..."
            << ", \"device\": " << quoted(device)
            << ", \"inputs\": [" << given.str() << "], \"iters\": " << iters
            << ", \"load_ms\": " << load.count() << ", \"max_ms\": " << sorted.back()
            << ", \"mean_ms\": " << total / static_cast<double>(sorted.size())
            << ", \"median_ms\": " << percentile(sorted, 0.5)
            << ", \"min_ms\": " << sorted.front()
            << ", \"model\": " << quoted(metadata["rlbook.model"])
            << ", \"p10_ms\": " << percentile(sorted, 0.1)
            << ", \"p90_ms\": " << percentile(sorted, 0.9)
            << ", \"peak_memory_mb\": " << usage.ru_maxrss / 1024.0
            << ", \"threads\": " << at::get_num_threads()
            << ", \"torch\": " << quoted(TORCH_VERSION) << ", \"warmup\": " << warmup << "}"
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& error) {
    std::cerr << "aoti_infer: error: " << error.what() << "\n" << kUsage << "\n";
    return 2;
  } catch (const c10::Error& error) {
    std::cerr << "aoti_infer: error: " << error.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "aoti_infer: error: " << error.what() << "\n";
    return 1;
  }
}
