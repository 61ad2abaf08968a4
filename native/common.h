// Shared helpers of the native layer: tensor/generator handles, argument conversion and the
// error boundary. The addon only converts arguments, calls libtorch and converts back; policy
// lives in TypeScript.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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

// ---- arguments ----------------------------------------------------------------------------
// Every conversion of a JS argument goes through these; a wrong value throws ArgError saying
// what was expected and what was received ("argument 'dim' expected an integer but received 1.5").

struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// "string", "1.5", "null", "a Tensor"...: the received value as messages show it.
std::string describeJs(const Napi::Value& v);
[[noreturn]] void badArg(const std::string& what, const char* expected, const Napi::Value& got);

// The one integer check: a JS number with no fraction inside int64's range. 1.5, NaN, ±Infinity,
// 2^63 and non-numbers (booleans, strings, bigints) are refused, never truncated or wrapped.
int64_t intArg(const Napi::Value& v, const std::string& what);
// intArg and lo <= value <= hi.
int64_t intArg(const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi);
std::vector<int64_t> intListArg(const Napi::Value& v, const std::string& what);
bool boolArg(const Napi::Value& v, const std::string& what);
std::string stringArg(const Napi::Value& v, const std::string& what);

// ---- the error boundary ----------------------------------------------------------------------

// A JS Error already carrying its op name; guarded() passes it through unchanged.
class NamedError : public Napi::Error {
 public:
  NamedError(napi_env env, napi_value value) : Napi::Error(env, value) {}
};

// A JS-facing error with the op's name in front of the message (libtorch's, without its C++
// backtrace); `cause`, when given, is the original JS value.
[[noreturn]] void throwJs(Napi::Env env, const std::string& where, const std::string& message, napi_value cause = nullptr);

// Runs `body`, turning every exception into a JS Error named after `where`, so nothing aborts
// the process: c10::Error, std::exception, node-addon-api's own errors (a napi call that failed,
// a JS exception raised while reading an argument) and anything else.
template <typename F>
Napi::Value guarded(Napi::Env env, const std::string& where, F&& body) {
  try {
    return body();
  } catch (const NamedError&) {
    throw;
  } catch (const Napi::Error& e) {
    throwJs(env, where, e.Message(), e.Value());
  } catch (const c10::Error& e) {
    throwJs(env, where, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throwJs(env, where, e.what());
  } catch (...) {
    throwJs(env, where, "unknown C++ exception");
  }
}

// An exported function: every call runs inside guarded(), with `name` as the error's op.
struct EntryPoint {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

void exportEntryPoints(Napi::Env env, Napi::Object exports, const EntryPoint* begin, const EntryPoint* end);
template <size_t N>
void exportEntryPoints(Napi::Env env, Napi::Object exports, const EntryPoint (&entries)[N]) {
  exportEntryPoints(env, exports, entries, entries + N);
}

// Registration hooks, one per source file.
void initTensor(Napi::Env env, Napi::Object exports);
void initOps(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initRuntime(Napi::Env env, Napi::Object exports);

}  // namespace immunize
