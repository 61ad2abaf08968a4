// Process-wide state: RNG seeds and generators, threads, devices, versions.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/version.h>

#include <climits>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace immunize {

at::Generator& unwrapGenerator(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::Object>().CheckTypeTag(&kGeneratorTag)) {
    badArg(std::string("argument '") + what + "'", "a Generator", v);
  }
  return v.As<Napi::External<GeneratorHolder>>().Data()->g;
}

namespace {

// A seed as torch.manual_seed takes it: an integer from -2^63 to 2^64-1, negatives wrapping into
// uint64. Numbers go through intArg (so 1.5 is refused); bigints must convert losslessly.
uint64_t seedArg(const Napi::Value& v) {
  if (!v.IsBigInt()) return static_cast<uint64_t>(intArg(v, "argument 'seed'"));
  bool lossless = false;
  const uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (lossless) return u;
  const int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
  if (lossless) return static_cast<uint64_t>(i);
  badArg("argument 'seed'", "an integer from -2^63 to 2^64-1", v);
}

void seed(at::Generator& g, uint64_t s) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(s);
}

// A JS handle on a generator; the finalizer only drops the holder's reference (never throws).
Napi::Value wrapGenerator(Napi::Env env, at::Generator g) {
  auto* h = new GeneratorHolder{std::move(g)};
  auto ext = Napi::External<GeneratorHolder>::New(env, h, [](Napi::Env, GeneratorHolder* h) { delete h; });
  ext.TypeTag(&kGeneratorTag);
  return ext;
}

// Same as torch.manual_seed: seeds the default CPU generator and every CUDA generator.
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  const uint64_t s = seedArg(info[0]);
  auto cpu = at::detail::getDefaultCPUGenerator();
  seed(cpu, s);
  const auto& cuda = at::detail::getCUDAHooks();
  if (cuda.hasCUDA()) {
    for (int i = 0; i < cuda.getNumGPUs(); i++) {
      auto gen = cuda.getDefaultCUDAGenerator(i);
      seed(gen, s);
    }
  }
  return info.Env().Undefined();
}

// newGenerator(seed?, device = "cpu")
Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  const std::string device = info[1].IsUndefined() ? "cpu" : stringArg(info[1], "argument 'device'");
  c10::Device dev(device);
  at::Generator g;
  if (dev.is_cpu()) {
    g = at::make_generator<at::CPUGeneratorImpl>();
  } else if (dev.is_cuda()) {
    const auto& cuda = at::detail::getCUDAHooks();
    if (!cuda.hasCUDA()) throw std::invalid_argument("this libtorch has no CUDA; use a cpu generator");
    // A fresh CUDA generator is not reachable through ATen's public headers without CUDA;
    // using the device's default keeps the numbers PyTorch would give for that device.
    g = cuda.getDefaultCUDAGenerator(dev.has_index() ? dev.index() : 0);
  } else {
    throw std::invalid_argument("generators are available for cpu and cuda, not " + device);
  }
  if (!info[0].IsUndefined() && !info[0].IsNull()) seed(g, seedArg(info[0]));
  return wrapGenerator(info.Env(), std::move(g));
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), unwrapGenerator(info[0], "generator").current_seed());
}

Napi::Value GeneratorManualSeed(const Napi::CallbackInfo& info) {
  seed(unwrapGenerator(info[0], "generator"), seedArg(info[1]));
  return info.Env().Undefined();
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  at::Generator& g = unwrapGenerator(info[0], "generator");
  std::lock_guard<std::mutex> lock(g.mutex());
  return wrapTensor(info.Env(), g.get_state());
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  at::Generator& g = unwrapGenerator(info[0], "generator");
  const at::Tensor& state = unwrapTensor(info[1], "state");
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
  return info.Env().Undefined();
}

Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  return wrapGenerator(info.Env(), at::detail::getDefaultCPUGenerator());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(intArg(info[0], "argument 'threads'", 1, INT32_MAX)));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  const auto& cuda = at::detail::getCUDAHooks();
  return Napi::Number::New(info.Env(), cuda.hasCUDA() ? cuda.getNumGPUs() : 0);
}

// setAutocast(device "cpu" | "cuda", enabled, dtype code): libtorch's autocast (what
// torch.autocast sets), thread-local. Which ops it casts is libtorch's list; the policy around it
// (norms and losses in fp32, channels-last) lives in src/torch/precision.ts. Leaving clears the
// cast cache, as torch.autocast's __exit__ does at the outermost level.
Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  const std::string device = stringArg(info[0], "argument 'device'");
  const bool on = boolArg(info[1], "argument 'enabled'");
  const auto dtype = static_cast<at::ScalarType>(intArg(info[2], "argument 'dtype'", 0, static_cast<int64_t>(at::ScalarType::NumOptions) - 1));
  if (on && dtype != at::kBFloat16 && dtype != at::kHalf) throw ArgError("autocast runs in bfloat16 or float16");
  if (device == "cpu") {
    if (on && dtype != at::kBFloat16) throw ArgError("CPU autocast in libtorch runs in bfloat16 only");
    if (on) at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(on);
  } else if (device == "cuda") {
    if (on) at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(on);
  } else {
    throw ArgError("autocast is available for cpu and cuda, not " + device);
  }
  if (!on) at::autocast::clear_cache();
  return info.Env().Undefined();
}

// { cpu: bool, cuda: bool }: whether autocast is on for each device in this thread.
Napi::Value AutocastState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpu", Napi::Boolean::New(env, at::autocast::is_cpu_enabled()));
  o.Set("cuda", Napi::Boolean::New(env, at::autocast::is_enabled()));
  return o;
}

// retainFreedMemory(): whether glibc now keeps freed memory for reuse. By default glibc serves
// every block over 32 MB with its own mmap and unmaps it on free, so each large activation of
// every step comes back from the kernel as fresh zeroed pages: at full size that was most of a
// step's time (4x slower bf16 TAEF2 steps at 1024², a third of the CPU time in the kernel).
// Without mmap'd blocks and with the trim threshold at its maximum, freed blocks stay in the heap
// and the next step reuses them; the price is that resident memory stays at its peak.
// False where the C library is not glibc (nothing changed).
Napi::Value RetainFreedMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  o.Set("hasCuda", Napi::Boolean::New(env, at::detail::getCUDAHooks().hasCUDA()));
  return o;
}

const EntryPoint kEntryPoints[] = {
    {"manualSeed", ManualSeed},
    {"newGenerator", NewGenerator},
    {"defaultGenerator", DefaultGenerator},
    {"generatorSeed", GeneratorSeed},
    {"generatorManualSeed", GeneratorManualSeed},
    {"generatorGetState", GeneratorGetState},
    {"generatorSetState", GeneratorSetState},
    {"setNumThreads", SetNumThreads},
    {"getNumThreads", GetNumThreads},
    {"cudaDeviceCount", CudaDeviceCount},
    {"info", Info},
    {"setAutocast", SetAutocast},
    {"autocastState", AutocastState},
    {"retainFreedMemory", RetainFreedMemory},
};

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) { exportEntryPoints(env, exports, kEntryPoints); }

}  // namespace immunize
