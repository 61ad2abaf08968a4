// The C++ side of bench/engine.bench.ts: the same conv net and op sequence written directly
// against libtorch (ATen + autograd), and the floor of a tiny op with no JavaScript involved.
// Built and run by scripts/bench.mjs:
//   convnet_bench convnet <threads> <size> <steps> <warmup>    one JSON line, msPerStep
//   convnet_bench add <threads> <calls per batch> <batches>    two JSON lines, usPerCall
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/autograd/autograd.h>

#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double quantile(std::vector<double> s, double q) {
  std::sort(s.begin(), s.end());
  double pos = (s.size() - 1) * q;
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = static_cast<size_t>(std::ceil(pos));
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

double peakRssMB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // KiB on Linux
}

double loadavg1 = 0;  // the 1-minute load average when the run started (the machine is shared)

// The common fields and the summary, in the same keys as bench/harness.ts.
void printLine(const std::string& name, const std::string& what, const std::vector<double>& samples, const std::string& unit,
               const std::string& extra, bool keepSamples) {
  std::string list;
  if (keepSamples) {
    list = "\"samples_" + unit + "\":[";
    char buf[32];
    for (size_t i = 0; i < samples.size(); i++) {
      std::snprintf(buf, sizeof buf, "%s%.4g", i ? "," : "", samples[i]);
      list += buf;
    }
    list += "],";
  }
  std::printf(
      "{\"name\":\"%s\",\"device\":\"cpu\",\"threads\":%d,\"libtorch\":\"%s\",\"loadavg1\":%.3g,\"what\":\"%s\",%s%s\"n\":%zu,"
      "\"%s\":%.6g,\"p10_%s\":%.6g,\"p90_%s\":%.6g,\"min_%s\":%.6g,\"max_%s\":%.6g,\"peakRssMB\":%.4g}\n",
      name.c_str(), at::get_num_threads(), TORCH_VERSION, loadavg1, what.c_str(), extra.c_str(), list.c_str(), samples.size(), unit.c_str(),
      quantile(samples, 0.5), unit.c_str(), quantile(samples, 0.1), unit.c_str(), quantile(samples, 0.9), unit.c_str(),
      *std::min_element(samples.begin(), samples.end()), unit.c_str(), *std::max_element(samples.begin(), samples.end()),
      peakRssMB());
  std::fflush(stdout);
}

int convnet(int size, int steps, int warmup) {
  // Same parameters as convnetSetup() in engine.bench.ts: seed 0, then per layer
  // w = randn * sqrt(2 / fan_in), b = zeros; then x = randn.
  at::manual_seed(0);
  const int chans[5] = {3, 128, 128, 128, 128};
  std::vector<at::Tensor> ws, bs;
  for (int i = 0; i < 4; i++) {
    double fanIn = chans[i] * 9.0;
    ws.push_back(at::randn({chans[i + 1], chans[i], 3, 3}).mul(std::sqrt(2.0 / fanIn)).requires_grad_());
    bs.push_back(at::zeros({chans[i + 1]}).requires_grad_());
  }
  at::Tensor x = at::randn({1, 3, size, size}).requires_grad_();
  std::vector<at::Tensor> inputs{x};
  inputs.insert(inputs.end(), ws.begin(), ws.end());
  inputs.insert(inputs.end(), bs.begin(), bs.end());

  double loss = NAN;
  auto step = [&]() {
    at::Tensor h = x;
    for (int i = 0; i < 4; i++) h = at::relu(at::conv2d(h, ws[i], bs[i], {1, 1}, {1, 1}, {1, 1}, 1));
    at::Tensor l = at::square(h).mean();
    auto grads = torch::autograd::grad({l}, inputs);
    loss = l.item<double>();
  };
  for (int i = 0; i < warmup; i++) step();
  std::vector<double> ms;
  for (int i = 0; i < steps; i++) {
    auto t0 = Clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  char extra[256];
  std::snprintf(extra, sizeof extra, "\"size\":%d,\"batch\":1,\"dtype\":\"float32\",\"loss\":%.9g,", size, loss);
  printLine("convnet_" + std::to_string(size) + "_cpp",
            "same net and op sequence as convnet_" + std::to_string(size) + "_ts, written against ATen + torch::autograd::grad",
            ms, "msPerStep", extra, true);
  return 0;
}

template <typename F>
std::vector<double> timeCalls(F call, int perBatch, int batches) {
  for (int i = 0; i < perBatch * 5; i++) call();
  std::vector<double> us;
  for (int b = 0; b < batches; b++) {
    auto t0 = Clock::now();
    for (int i = 0; i < perBatch; i++) call();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / perBatch);
  }
  return us;
}

int tinyAdd(int perBatch, int batches) {
  at::Tensor x = at::ones({1});
  char extra[64];
  std::snprintf(extra, sizeof extra, "\"calls\":%d,", perBatch * batches);
  auto unboxed = timeCalls([&]() { at::Tensor y = at::add(x, 1); }, perBatch, batches);
  printLine("cpp_add_unboxed", "at::add(x, 1) on a 1-element float32 tensor from C++ (unboxed dispatch)", unboxed, "usPerCall", extra, false);
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("aten::add", "Scalar");
  auto boxed = timeCalls(
      [&]() {
        torch::jit::Stack stack{c10::IValue(x), c10::IValue(c10::Scalar(int64_t{1})), c10::IValue(c10::Scalar(int64_t{1}))};
        op.callBoxed(&stack);
      },
      perBatch, batches);
  printLine("cpp_add_boxed", "aten::add.Scalar through OperatorHandle::callBoxed from C++ (the dispatch path the addon uses)", boxed, "usPerCall", extra, false);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s convnet <threads> [size steps warmup] | add <threads> [perBatch batches]\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  if (getloadavg(&loadavg1, 1) != 1) loadavg1 = -1;
  at::set_num_threads(std::atoi(argv[2]));
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  try {
    if (mode == "convnet") return convnet(arg(3, 256), arg(4, 10), arg(5, 2));
    if (mode == "add") return tinyAdd(arg(3, 2000), arg(4, 50));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convnet_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "convnet_bench: unknown mode '%s'\n", mode.c_str());
  return 2;
}
