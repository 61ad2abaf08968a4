// Entry point of the immunize_torch addon: the error boundary, argument conversion shared by
// every file, and registration of each concern's functions.
#include "common.h"

#include <cmath>

namespace immunize {

std::atomic<int64_t> gLiveTensors{0};
// Random 128-bit tags: a handle from another addon (or a plain object) is never mistaken for ours.
const napi_type_tag kTensorTag = {0x8c1d5a3e2f4b4a71ULL, 0x9e0f6b2d7c3a5e18ULL};
const napi_type_tag kGeneratorTag = {0x3b7e9f1c5d2a4e60ULL, 0xa41c8e7f2b9d6053ULL};

[[noreturn]] void throwJs(Napi::Env env, const std::string& where, const std::string& message, napi_value cause) {
  // A JS exception still pending (a getter that threw while an argument was read) would make the
  // new error unthrowable; it becomes the cause instead.
  if (env.IsExceptionPending()) {
    Napi::Error pending = env.GetAndClearPendingException();
    if (cause == nullptr) cause = pending.Value();
  }
  Napi::Error err = Napi::Error::New(env, where + ": " + (message.empty() ? "unknown error" : message));
  err.Set("op", Napi::String::New(env, where));
  err.Set("code", Napi::String::New(env, "E_TORCH"));
  if (cause != nullptr) err.Set("cause", Napi::Value(env, cause));
  throw NamedError(env, err.Value());
}

// ---- arguments ------------------------------------------------------------------------------

std::string describeJs(const Napi::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsArray()) return "an array of length " + std::to_string(v.As<Napi::Array>().Length());
  if (v.IsExternal()) return v.As<Napi::Object>().CheckTypeTag(&kGeneratorTag) ? "a Generator" : "an external";
  if (v.IsObject()) {
    bool tensor = false;
    napi_check_object_type_tag(v.Env(), v, &kTensorTag, &tensor);
    return tensor ? "a Tensor" : v.IsFunction() ? "a function" : "an object";
  }
  if (v.IsSymbol()) return "a symbol";
  // Primitives as JS prints them (1.5, not 1.500000), like describe() in src/errors.ts.
  const char* type = v.IsNumber() ? "number" : v.IsBoolean() ? "boolean" : v.IsBigInt() ? "bigint" : "string";
  std::string text = v.ToString().Utf8Value();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text + " of type " + type;
}

[[noreturn]] void badArg(const std::string& what, const char* expected, const Napi::Value& got) {
  throw ArgError(what + " expected " + expected + " but received " + describeJs(got));
}

int64_t intArg(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) badArg(what, "an integer", v);
  const double d = v.As<Napi::Number>().DoubleValue();
  // [-2^63, 2^63): both bounds are exact doubles, so the cast below is always defined.
  if (!std::isfinite(d) || std::floor(d) != d) badArg(what, "an integer", v);
  if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) badArg(what, "an integer within int64's range", v);
  return static_cast<int64_t>(d);
}

int64_t intArg(const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi) {
  const int64_t i = intArg(v, what);
  if (i < lo || i > hi) {
    throw ArgError(what + " expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + " but received " + describeJs(v));
  }
  return i;
}

std::vector<int64_t> intListArg(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) badArg(what, "an array of integers", v);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = intArg(a.Get(i), what);
  return out;
}

bool boolArg(const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) badArg(what, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

std::string stringArg(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) badArg(what, "a string", v);
  return v.As<Napi::String>().Utf8Value();
}

// ---- registration -----------------------------------------------------------------------------

namespace {

Napi::Value invoke(const Napi::CallbackInfo& info) {
  const auto* entry = static_cast<const EntryPoint*>(info.Data());
  return guarded(info.Env(), entry->name, [&] { return entry->fn(info); });
}

}  // namespace

void exportEntryPoints(Napi::Env env, Napi::Object exports, const EntryPoint* begin, const EntryPoint* end) {
  for (const EntryPoint* e = begin; e != end; e++) {
    exports.Set(e->name, Napi::Function::New<invoke>(env, e->name, const_cast<EntryPoint*>(e)));
  }
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
