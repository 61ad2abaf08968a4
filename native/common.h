// Shared helpers of the native layer: tensor/generator handles and the error boundary.
// The addon only converts arguments, calls libtorch and converts back; policy lives in TypeScript.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace immunize {

// One JS handle owns one at::Tensor reference. dispose() drops the reference early; the
// finalizer is the backstop for handles that were never disposed.
struct TensorHolder {
  at::Tensor t;
  int64_t reportedBytes = 0;  // host bytes reported to V8 as external memory
};

struct GeneratorHolder {
  at::Generator g;
};

extern std::atomic<int64_t> gLiveTensors;
extern const napi_type_tag kTensorTag;
extern const napi_type_tag kGeneratorTag;

Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
at::Tensor& unwrapTensor(const Napi::Value& v, const char* what);
TensorHolder* tensorHolder(const Napi::Value& v, const char* what);
at::Generator& unwrapGenerator(const Napi::Value& v, const char* what);

// A JS-facing error with the op's name in front of libtorch's message (without its C++ backtrace).
[[noreturn]] void throwJs(Napi::Env env, const std::string& where, const std::string& message);

// Runs `body`, turning every C++ exception into a JS exception so nothing aborts the process.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* where, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body(env);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throwJs(env, where, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throwJs(env, where, e.what());
  } catch (...) {
    throwJs(env, where, "unknown C++ exception");
  }
}

// Registration hooks, one per source file.
void initTensor(Napi::Env env, Napi::Object exports);
void initOps(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initRuntime(Napi::Env env, Napi::Object exports);

}  // namespace immunize
