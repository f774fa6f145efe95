// aoti_infer: run an AOTInductor package (.pt2) from C++, with no Python at all,
// and time it.
//
//   aoti_infer PACKAGE.pt2 INPUTS_DIR [--iters N] [--warmup W] [--threads T]
//              [--out OUTPUTS_DIR]
//
// INPUTS_DIR holds input_0.tensor, input_1.tensor, ... (the model's positional
// inputs, in order), each one tensor in this format:
//
//   rlbook-tensor v1 <dtype> <ndim> <size_0> ... <size_ndim-1>\n
//   <numel * itemsize bytes: the values in C order, little-endian>
//
// with <dtype> one of float32 float64 float16 bfloat16 int64 int32 int16 int8
// uint8 bool. Python writes them with write_inputs in
// benchmarks/harness.py and reads outputs with read_outputs.
//
// The program loads the package, pins the intra-op threads, runs W untimed calls
// and then N timed ones, and prints ONE line of JSON to stdout: per-call latency
// in milliseconds (median, mean, p10, p90, min, max), iters, warmup, threads,
// batch size (first dimension of input 0), output shapes and dtypes, the time
// the package took to load, the process's peak resident memory (MiB, libtorch
// and the package included), and the torch and compiler versions. With --out it
// writes the outputs of the last call as output_0.tensor, ... in the same format.
// Errors go to stderr with exit code 2 (bad arguments) or 1 (anything else).
//
// Build (build_cpp_runner in benchmarks/harness.py does this, with the flags of
// cpp_build_flags()):
//   T=$(python -c "import torch, os; print(os.path.dirname(torch.__file__))")
//   c++ -std=c++20 -O2 aoti_infer.cpp -o aoti_infer -isystem $T/include
//       -isystem $T/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1
//       -L$T/lib -Wl,-rpath,$T/lib -ltorch -ltorch_cpu -lc10   (one line)
//
// Built and timed by the projects' benchmarks (benchmarks/*_modes.py).

#include <sys/resource.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/headeronly/version.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr const char* kMagic = "rlbook-tensor";
constexpr const char* kVersion = "v1";
constexpr std::size_t kMaxHeader = 4096;  // bytes; a header line is far shorter
constexpr const char* kUsage =
    "usage: aoti_infer PACKAGE.pt2 INPUTS_DIR [--iters N] [--warmup W] "
    "[--threads T] [--out OUTPUTS_DIR]";

// An error in the command line: reported with the usage line, exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
      {"int16", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte},
      {"bool", at::kBool}};
  return names;
}

at::ScalarType dtype_from_name(const std::string& name, const std::string& where) {
  for (const auto& [known, type] : dtype_names()) {
    if (known == name) return type;
  }
  std::string all;
  for (const auto& entry : dtype_names()) all += " " + entry.first;
  throw std::runtime_error(where + ": unsupported dtype '" + name +
                           "'; supported:" + all);
}

std::string dtype_name(at::ScalarType type) {
  for (const auto& [name, known] : dtype_names()) {
    if (known == type) return name;
  }
  throw std::runtime_error(std::string("cannot write a tensor of dtype ") +
                           c10::toString(type) +
                           "; the tensor format supports float32, float64, float16, "
                           "bfloat16, int64, int32, int16, int8, uint8 and bool");
}

bool little_endian() {
  const std::uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(sizes[i]);
  }
  return text + "]";
}

at::Tensor read_tensor(const fs::path& path) {
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(where + ": cannot open the file");
  std::string header;
  char c = 0;
  while (in.get(c) && c != '\n') {
    header.push_back(c);
    if (header.size() > kMaxHeader) break;
  }
  if (c != '\n' || header.size() > kMaxHeader) {
    throw std::runtime_error(where + ": no header line; expected '" + kMagic + " " +
                             kVersion + " DTYPE NDIM SIZES...' followed by a newline");
  }
  std::istringstream fields(header);
  std::string magic, version, dtype;
  long long ndim = -1;
  fields >> magic >> version >> dtype >> ndim;
  if (magic != kMagic || version != kVersion || !fields || ndim < 0 || ndim > 64) {
    throw std::runtime_error(where + ": bad header '" + header + "'; expected '" +
                             kMagic + " " + kVersion + " DTYPE NDIM SIZES...'");
  }
  std::vector<int64_t> sizes;
  int64_t numel = 1;
  for (long long i = 0; i < ndim; ++i) {
    long long size = -1;
    if (!(fields >> size) || size < 0) {
      throw std::runtime_error(where + ": bad header '" + header + "'; expected " +
                               std::to_string(ndim) + " non-negative sizes");
    }
    if (size > 0 && numel > std::numeric_limits<int64_t>::max() / 8 / size) {
      throw std::runtime_error(where + ": shape in header '" + header + "' is too large");
    }
    sizes.push_back(size);
    numel *= size;
  }
  std::string extra;
  if (fields >> extra) {
    throw std::runtime_error(where + ": bad header '" + header + "'; more sizes than NDIM");
  }
  const at::ScalarType type = dtype_from_name(dtype, where);
  at::Tensor tensor = at::empty(sizes, at::TensorOptions().dtype(type));
  const auto nbytes = static_cast<std::streamsize>(tensor.nbytes());
  in.read(static_cast<char*>(tensor.data_ptr()), nbytes);
  if (in.gcount() != nbytes) {
    throw std::runtime_error(where + ": truncated; the header promises " +
                             std::to_string(nbytes) + " bytes of data, the file holds " +
                             std::to_string(in.gcount()));
  }
  if (in.peek() != std::char_traits<char>::eof()) {
    throw std::runtime_error(where + ": more bytes than the header's dtype and shape "
                             "account for; the file is corrupt");
  }
  return tensor;
}

void write_tensor(const at::Tensor& value, const fs::path& path) {
  const at::Tensor tensor = value.to(at::kCPU).contiguous();
  std::ostringstream header;
  header << kMagic << ' ' << kVersion << ' ' << dtype_name(tensor.scalar_type()) << ' '
         << tensor.dim();
  for (const int64_t size : tensor.sizes()) header << ' ' << size;
  header << '\n';
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::string text = header.str();
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.write(static_cast<const char*>(tensor.data_ptr()),
              static_cast<std::streamsize>(tensor.nbytes()));
    if (!out) throw std::runtime_error(tmp.string() + ": cannot write the file");
  }
  fs::rename(tmp, path);  // a reader never sees half a file
}

std::vector<at::Tensor> read_inputs(const fs::path& folder) {
  if (!fs::is_directory(folder)) {
    throw std::runtime_error("inputs folder '" + folder.string() +
                             "' does not exist; write the inputs with "
                             "write_inputs (benchmarks/harness.py)");
  }
  std::vector<at::Tensor> inputs;
  for (std::size_t i = 0;; ++i) {
    const fs::path path = folder / ("input_" + std::to_string(i) + ".tensor");
    if (!fs::exists(path)) break;
    inputs.push_back(read_tensor(path));
  }
  if (inputs.empty()) {
    throw std::runtime_error("no input_0.tensor in '" + folder.string() +
                             "'; write the inputs with "
                             "write_inputs (benchmarks/harness.py)");
  }
  return inputs;
}

// The signature export_aoti stores in the package's metadata, one word per input:
// "float32[batch,8] int64[batch,6]" ("batch": 1 to max_batch; "any": any size).
void check_signature(const std::string& signature, const std::vector<at::Tensor>& inputs,
                     int64_t max_batch) {
  std::vector<std::string> specs;
  std::istringstream words(signature);
  for (std::string word; words >> word;) specs.push_back(word);
  if (specs.size() != inputs.size()) {
    throw std::runtime_error("the package takes " + std::to_string(specs.size()) +
                             " input(s) (" + signature + "), the inputs folder holds " +
                             std::to_string(inputs.size()));
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::string& spec = specs[i];
    const auto open = spec.find('[');
    const std::string dtype = spec.substr(0, open);
    std::vector<std::string> dims;
    if (open != std::string::npos && spec.size() > open + 2) {
      std::istringstream parts(spec.substr(open + 1, spec.size() - open - 2));
      for (std::string part; std::getline(parts, part, ',');) dims.push_back(part);
    }
    const at::Tensor& input = inputs[i];
    bool ok = dtype == dtype_name(input.scalar_type()) &&
              dims.size() == static_cast<std::size_t>(input.dim());
    for (std::size_t d = 0; ok && d < dims.size(); ++d) {
      const int64_t size = input.size(static_cast<int64_t>(d));
      if (dims[d] == "batch") {
        ok = size >= 1 && (max_batch <= 0 || size <= max_batch);
      } else if (dims[d] != "any") {  // "any": a dynamic size other than the batch
        ok = dims[d] == std::to_string(size);
      }
    }
    if (!ok) {
      throw std::runtime_error(
          "input " + std::to_string(i) + " is " + dtype_name(input.scalar_type()) +
          shape_text(input.sizes()) + "; the package expects " + spec +
          (max_batch > 0 ? " with 1 <= batch <= " + std::to_string(max_batch) : "") +
          " (all inputs: " + signature + ")");
    }
  }
}

// Peak resident memory of this process so far, in MiB: VmHWM on Linux, else
// getrusage's ru_maxrss; -1 where neither is available.
double peak_memory_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  }
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
#if defined(__APPLE__)
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);  // bytes
#else
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kB
#endif
}

double percentile(const std::vector<double>& sorted, double q) {
  // Linear interpolation between closest ranks, as numpy.percentile's default.
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(position);
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  const double weight = position - static_cast<double>(below);
  return sorted[below] + weight * (sorted[above] - sorted[below]);
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6f", value);
  return text;
}

long long parse_count(const std::string& flag, const char* text, long long minimum) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < minimum) {
    throw UsageError(flag + " needs an integer >= " + std::to_string(minimum) +
                     ", got '" + text + "'");
  }
  return value;
}

struct Options {
  std::string package;
  std::string inputs;
  std::string out;
  long long iters = 100;
  long long warmup = 10;
  long long threads = 1;
};

Options parse_args(int argc, char** argv) {
  Options options;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage << "\n";
      std::exit(0);
    }
    const bool takes_value =
        arg == "--iters" || arg == "--warmup" || arg == "--threads" || arg == "--out";
    if (takes_value) {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      const char* value = argv[++i];
      if (arg == "--iters") options.iters = parse_count(arg, value, 1);
      if (arg == "--warmup") options.warmup = parse_count(arg, value, 0);
      if (arg == "--threads") options.threads = parse_count(arg, value, 1);
      if (arg == "--out") options.out = value;
    } else if (arg.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    throw UsageError("expected PACKAGE.pt2 and INPUTS_DIR, got " +
                     std::to_string(positional.size()) + " positional argument(s)");
  }
  options.package = positional[0];
  options.inputs = positional[1];
  return options;
}

int run(const Options& options) {
  if (!little_endian()) {
    throw std::runtime_error("this machine is big-endian; the tensor files are little-endian");
  }
  if (!fs::is_regular_file(options.package)) {
    throw std::runtime_error("package '" + options.package +
                             "' does not exist; export it with "
                             "export_aoti (benchmarks/harness.py)");
  }
  std::vector<at::Tensor> inputs = read_inputs(options.inputs);

  // Check every call's inputs inside the compiled model too (a few comparisons),
  // as load_aoti does in Python; AOTI_RUNTIME_CHECK_INPUTS=0 turns this off.
  setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", /*overwrite=*/0);
  at::set_num_threads(static_cast<int>(options.threads));
  c10::InferenceMode inference_mode;

  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  try {
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(options.package);
  } catch (const c10::Error& error) {
    throw std::runtime_error("cannot load package '" + options.package +
                             "' (is it a .pt2 written by export_aoti?): " +
                             error.what_without_backtrace());
  }
  const double load_ms = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - load_start)
                             .count();

  auto metadata = loader->get_metadata();
  const std::string device = metadata.count("AOTI_DEVICE_KEY")
                                 ? metadata["AOTI_DEVICE_KEY"]
                                 : std::string("cpu");
  if (device != "cpu") {
    throw std::runtime_error("package '" + options.package + "' was compiled for " +
                             device + "; this runner times CPU packages only");
  }
  if (metadata.count("rlbook.inputs")) {
    const int64_t max_batch = metadata.count("rlbook.max_batch")
                                  ? std::stoll(metadata["rlbook.max_batch"])
                                  : 0;
    check_signature(metadata["rlbook.inputs"], inputs, max_batch);
  }

  std::vector<at::Tensor> outputs;
  for (long long i = 0; i < options.warmup; ++i) outputs = loader->run(inputs);
  std::vector<double> latencies_ms;
  latencies_ms.reserve(static_cast<std::size_t>(options.iters));
  for (long long i = 0; i < options.iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    outputs = loader->run(inputs);
    const auto stop = std::chrono::steady_clock::now();
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }

  if (!options.out.empty()) {
    const fs::path folder(options.out);
    fs::create_directories(folder);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      write_tensor(outputs[i], folder / ("output_" + std::to_string(i) + ".tensor"));
    }
    // Outputs of an earlier run with more outputs would be read as this run's.
    for (std::size_t i = outputs.size();; ++i) {
      const fs::path stale = folder / ("output_" + std::to_string(i) + ".tensor");
      if (!fs::remove(stale)) break;
    }
  }

  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  double total = 0;
  for (const double value : sorted) total += value;
  std::string shapes = "[", dtypes = "[";
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    shapes += (i ? ", " : "") + shape_text(outputs[i].sizes());
    dtypes += (i ? ", " : "") + json_string(dtype_name(outputs[i].scalar_type()));
  }
  shapes += "]";
  dtypes += "]";
  const std::string model =
      metadata.count("rlbook.model") ? metadata["rlbook.model"] : std::string();
#if defined(__clang__)
  const std::string compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = std::string("gcc ") + __VERSION__;
#else
  const std::string compiler = "unknown";
#endif

  std::ostringstream line;
  line << "{\"batch_size\": "
       << (inputs[0].dim() > 0 ? std::to_string(inputs[0].size(0)) : "null")
       << ", \"compiler\": " << json_string(compiler)
       << ", \"device\": " << json_string(device)
       << ", \"iters\": " << options.iters
       << ", \"load_ms\": " << json_number(load_ms)
       << ", \"max_ms\": " << json_number(sorted.back())
       << ", \"mean_ms\": " << json_number(total / static_cast<double>(sorted.size()))
       << ", \"median_ms\": " << json_number(percentile(sorted, 0.5))
       << ", \"min_ms\": " << json_number(sorted.front())
       << ", \"model\": " << json_string(model)
       << ", \"output_dtypes\": " << dtypes
       << ", \"output_shapes\": " << shapes
       << ", \"p10_ms\": " << json_number(percentile(sorted, 0.1))
       << ", \"p90_ms\": " << json_number(percentile(sorted, 0.9))
       << ", \"peak_memory_mb\": " << json_number(peak_memory_mb())
       << ", \"threads\": " << at::get_num_threads()
       << ", \"torch\": " << json_string(TORCH_VERSION)
       << ", \"warmup\": " << options.warmup << "}";
  std::cout << line.str() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
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
