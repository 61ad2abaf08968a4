// Process-wide state: RNG seeds and generators, threads, devices, versions.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/version.h>

#include <mutex>

namespace immunize {

at::Generator& unwrapGenerator(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::Object>().CheckTypeTag(&kGeneratorTag)) {
    throw std::invalid_argument(std::string(what) + " is not a Generator handle");
  }
  return v.As<Napi::External<GeneratorHolder>>().Data()->g;
}

namespace {

uint64_t seedArg(const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  double d = v.As<Napi::Number>().DoubleValue();
  // torch.manual_seed accepts negative seeds by wrapping them into uint64.
  return static_cast<uint64_t>(static_cast<int64_t>(d));
}

// Same as torch.manual_seed: seeds the default CPU generator and every CUDA generator.
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, "manualSeed", [&](Napi::Env env) -> Napi::Value {
    uint64_t seed = seedArg(info[0]);
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    const auto& cuda = at::detail::getCUDAHooks();
    if (cuda.hasCUDA()) {
      for (int i = 0; i < cuda.getNumGPUs(); i++) {
        auto gen = cuda.getDefaultCUDAGenerator(i);
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_current_seed(seed);
      }
    }
    return env.Undefined();
  });
}

Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  return guarded(info, "Generator", [&](Napi::Env env) -> Napi::Value {
    std::string device = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
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
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seedArg(info[0]));
    }
    auto* h = new GeneratorHolder{g};
    auto ext = Napi::External<GeneratorHolder>::New(env, h, [](Napi::Env, GeneratorHolder* h) { delete h; });
    ext.TypeTag(&kGeneratorTag);
    return ext;
  });
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  return guarded(info, "Generator.seed", [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = unwrapGenerator(info[0], "generator");
    return Napi::BigInt::New(env, g.current_seed());
  });
}

Napi::Value GeneratorManualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, "Generator.manualSeed", [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = unwrapGenerator(info[0], "generator");
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(seedArg(info[1]));
    return env.Undefined();
  });
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  return guarded(info, "Generator.getState", [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = unwrapGenerator(info[0], "generator");
    std::lock_guard<std::mutex> lock(g.mutex());
    return wrapTensor(env, g.get_state());
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  return guarded(info, "Generator.setState", [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = unwrapGenerator(info[0], "generator");
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(unwrapTensor(info[1], "state"));
    return env.Undefined();
  });
}

Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  return guarded(info, "defaultGenerator", [&](Napi::Env env) -> Napi::Value {
    auto* h = new GeneratorHolder{at::detail::getDefaultCPUGenerator()};
    auto ext = Napi::External<GeneratorHolder>::New(env, h, [](Napi::Env, GeneratorHolder* h) { delete h; });
    ext.TypeTag(&kGeneratorTag);
    return ext;
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, "setNumThreads", [&](Napi::Env env) -> Napi::Value {
    at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return guarded(info, "cudaDeviceCount", [&](Napi::Env env) -> Napi::Value {
    const auto& cuda = at::detail::getCUDAHooks();
    return Napi::Number::New(env, cuda.hasCUDA() ? cuda.getNumGPUs() : 0);
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  o.Set("hasCuda", Napi::Boolean::New(env, at::detail::getCUDAHooks().hasCUDA()));
  return o;
}

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("newGenerator", Napi::Function::New(env, NewGenerator));
  exports.Set("defaultGenerator", Napi::Function::New(env, DefaultGenerator));
  exports.Set("generatorSeed", Napi::Function::New(env, GeneratorSeed));
  exports.Set("generatorManualSeed", Napi::Function::New(env, GeneratorManualSeed));
  exports.Set("generatorGetState", Napi::Function::New(env, GeneratorGetState));
  exports.Set("generatorSetState", Napi::Function::New(env, GeneratorSetState));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("info", Napi::Function::New(env, Info));
}

}  // namespace immunize
