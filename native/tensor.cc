// Tensor handles: creation from bytes, reading back, metadata, disposal and memory accounting.
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace immunize {

namespace {

int64_t hostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

void release(Napi::Env env, TensorHolder* h) {
  if (!h->t.defined()) return;
  h->t = at::Tensor();
  gLiveTensors--;
  if (h->reportedBytes != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -h->reportedBytes);
    h->reportedBytes = 0;
  }
}

std::vector<int64_t> shapeArg(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(what) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a[i];
    if (!e.IsNumber()) throw std::invalid_argument(std::string(what) + " must be an array of integers");
    out[i] = e.As<Napi::Number>().Int64Value();
  }
  return out;
}

at::ScalarType dtypeArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw std::invalid_argument("dtype code must be a number");
  return static_cast<at::ScalarType>(v.As<Napi::Number>().Int32Value());
}

// (typed array | ArrayBuffer) -> pointer + length, without copying.
std::pair<const uint8_t*, size_t> bytesOf(const Napi::Value& v) {
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data());
    return {base + ta.ByteOffset(), ta.ByteLength()};
  }
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    return {static_cast<const uint8_t*>(ab.Data()), ab.ByteLength()};
  }
  if (v.IsDataView()) {
    Napi::DataView dv = v.As<Napi::DataView>();
    return {static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength()};
  }
  throw std::invalid_argument("data must be a TypedArray, DataView or ArrayBuffer");
}

}  // namespace

void finalizeTensor(napi_env env, void* data, void* /*hint*/) {
  auto* h = static_cast<TensorHolder*>(data);
  release(Napi::Env(env), h);
  delete h;
}

// A handle is a plain JS object carrying the holder through napi_wrap, tagged as ours.
// dispose() removes the wrap, which frees the holder and its finalizer bookkeeping at once:
// Node 20 runs GC finalizers only when the event loop turns, so relying on them would let a
// synchronous attack loop accumulate one record per temporary tensor.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* h = new TensorHolder{std::move(t), 0};
  h->reportedBytes = hostBytes(h->t);
  gLiveTensors++;
  if (h->reportedBytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, h->reportedBytes);
  napi_value obj;
  napi_status st = napi_create_object(env, &obj);
  if (st == napi_ok) st = napi_wrap(env, obj, h, finalizeTensor, nullptr, nullptr);
  if (st == napi_ok) st = napi_type_tag_object(env, obj, &kTensorTag);
  if (st != napi_ok) {
    release(env, h);
    delete h;
    throw std::runtime_error("could not create a tensor handle");
  }
  return Napi::Value(env, obj);
}

TensorHolder* tensorHolder(const Napi::Value& v, const char* what) {
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(v.Env(), v, &kTensorTag, &tagged);
  if (!tagged) {
    const char* got = v.IsNull() ? "null" : v.IsUndefined() ? "undefined" : v.IsNumber() ? "number" : v.IsString() ? "string" : v.IsArray() ? "array" : "object";
    throw std::invalid_argument(std::string("argument '") + what + "' expected a Tensor but received " + got);
  }
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok) return nullptr;  // the wrap was removed: disposed
  return static_cast<TensorHolder*>(data);
}

at::Tensor& unwrapTensor(const Napi::Value& v, const char* what) {
  TensorHolder* h = tensorHolder(v, what);
  if (h == nullptr || !h->t.defined()) throw std::invalid_argument(std::string(what) + " was disposed");
  return h->t;
}

namespace {

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  return guarded(info, "dispose", [&](Napi::Env env) -> Napi::Value {
    if (tensorHolder(info[0], "tensor") == nullptr) return env.Undefined();  // idempotent
    void* data = nullptr;
    if (napi_remove_wrap(env, info[0], &data) == napi_ok && data != nullptr) {
      auto* h = static_cast<TensorHolder*>(data);
      release(env, h);
      delete h;
    }
    return env.Undefined();
  });
}

Napi::Value Shape(const Napi::CallbackInfo& info) {
  return guarded(info, "shape", [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& t = unwrapTensor(info[0], "tensor");
    auto sizes = t.sizes();
    Napi::Array out = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); i++) out[i] = Napi::Number::New(env, static_cast<double>(sizes[i]));
    return out;
  });
}

Napi::Value Strides(const Napi::CallbackInfo& info) {
  return guarded(info, "strides", [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& t = unwrapTensor(info[0], "tensor");
    auto st = t.strides();
    Napi::Array out = Napi::Array::New(env, st.size());
    for (size_t i = 0; i < st.size(); i++) out[i] = Napi::Number::New(env, static_cast<double>(st[i]));
    return out;
  });
}

Napi::Value DType(const Napi::CallbackInfo& info) {
  return guarded(info, "dtype", [&](Napi::Env env) -> Napi::Value {
    return Napi::Number::New(env, static_cast<int>(unwrapTensor(info[0], "tensor").scalar_type()));
  });
}

Napi::Value Device(const Napi::CallbackInfo& info) {
  return guarded(info, "device", [&](Napi::Env env) -> Napi::Value {
    return Napi::String::New(env, unwrapTensor(info[0], "tensor").device().str());
  });
}

Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "requiresGrad", [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrapTensor(info[0], "tensor").requires_grad());
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return guarded(info, "isLeaf", [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrapTensor(info[0], "tensor").is_leaf());
  });
}

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  return guarded(info, "isDisposed", [&](Napi::Env env) -> Napi::Value {
    TensorHolder* h = tensorHolder(info[0], "tensor");
    return Napi::Boolean::New(env, h == nullptr || !h->t.defined());
  });
}

// Same storage and offset: the JS side uses it to know an in-place op returned `self`.
Napi::Value SameTensor(const Napi::CallbackInfo& info) {
  return guarded(info, "sameTensor", [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrapTensor(info[0], "a").is_same(unwrapTensor(info[1], "b")));
  });
}

// fromBytes(data, shape, dtypeCode): copies the bytes into a new CPU tensor.
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  return guarded(info, "fromBytes", [&](Napi::Env env) -> Napi::Value {
    auto [ptr, len] = bytesOf(info[0]);
    std::vector<int64_t> shape = shapeArg(info[1], "shape");
    at::ScalarType dtype = dtypeArg(info[2]);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t want = static_cast<size_t>(t.numel()) * t.element_size();
    if (want != len) {
      throw std::invalid_argument("data has " + std::to_string(len) + " bytes but shape " + c10::str(t.sizes()) + " of " +
                                  c10::toString(dtype) + " needs " + std::to_string(want));
    }
    if (len) std::memcpy(t.data_ptr(), ptr, len);
    return wrapTensor(env, std::move(t));
  });
}

// toBytes(t): a fresh ArrayBuffer holding the tensor's values, contiguous, on the CPU.
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  return guarded(info, "toBytes", [&](Napi::Env env) -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "tensor").detach().to(at::kCPU).contiguous();
    size_t len = static_cast<size_t>(t.numel()) * t.element_size();
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, len);
    if (len) std::memcpy(ab.Data(), t.data_ptr(), len);
    return ab;
  });
}

// fromFile(path, offset, byteLength, shape, dtypeCode): reads a byte range straight into tensor
// memory, so loading weights never holds them in the JS heap.
Napi::Value FromFile(const Napi::CallbackInfo& info) {
  return guarded(info, "fromFile", [&](Napi::Env env) -> Napi::Value {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    int64_t offset = info[1].As<Napi::Number>().Int64Value();
    int64_t length = info[2].As<Napi::Number>().Int64Value();
    std::vector<int64_t> shape = shapeArg(info[3], "shape");
    at::ScalarType dtype = dtypeArg(info[4]);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    int64_t want = t.numel() * static_cast<int64_t>(t.element_size());
    if (want != length) throw std::invalid_argument(path + ": byte length " + std::to_string(length) + " does not match shape (" + std::to_string(want) + " bytes)");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    char* dst = static_cast<char*>(t.data_ptr());
    int64_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(fd, dst + done, static_cast<size_t>(length - done), offset + done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error(path + ": read failed at byte " + std::to_string(offset + done) + (n == 0 ? ": unexpected end of file" : std::string(": ") + std::strerror(err)));
      }
      done += n;
    }
    ::close(fd);
    return wrapTensor(env, std::move(t));
  });
}

Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(gLiveTensors.load()));
}

}  // namespace

void initTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("strides", Napi::Function::New(env, Strides));
  exports.Set("dtype", Napi::Function::New(env, DType));
  exports.Set("device", Napi::Function::New(env, Device));
  exports.Set("requiresGrad", Napi::Function::New(env, RequiresGrad));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("sameTensor", Napi::Function::New(env, SameTensor));
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes));
  exports.Set("toBytes", Napi::Function::New(env, ToBytes));
  exports.Set("fromFile", Napi::Function::New(env, FromFile));
  exports.Set("liveTensors", Napi::Function::New(env, LiveTensors));
}

}  // namespace immunize
