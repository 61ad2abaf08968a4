// Entry point of the immunize_torch addon: registers each concern's functions.
#include "common.h"

namespace immunize {

std::atomic<int64_t> gLiveTensors{0};
// Random 128-bit tags: a handle from another addon (or a plain object) is never mistaken for ours.
const napi_type_tag kTensorTag = {0x8c1d5a3e2f4b4a71ULL, 0x9e0f6b2d7c3a5e18ULL};
const napi_type_tag kGeneratorTag = {0x3b7e9f1c5d2a4e60ULL, 0xa41c8e7f2b9d6053ULL};

[[noreturn]] void throwJs(Napi::Env env, const std::string& where, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, where + ": " + message);
  err.Set("op", Napi::String::New(env, where));
  err.Set("code", Napi::String::New(env, "E_TORCH"));
  throw err;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  initTensor(env, exports);
  initOps(env, exports);
  initAutograd(env, exports);
  initRuntime(env, exports);
  return exports;
}

}  // namespace immunize

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return immunize::Init(env, exports); }

NODE_API_MODULE(immunize_torch, InitAddon)
