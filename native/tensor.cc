// Tensor handles: creation from bytes, reading back, metadata, disposal and memory accounting.
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace immunize {

namespace {

// The raw napi call, whose status is ignored: node-addon-api's wrapper throws on failure, and
// the accounting is advisory.
void adjustExternal(napi_env env, int64_t delta) noexcept {
  if (delta == 0) return;
  int64_t ignored = 0;
  napi_adjust_external_memory(env, delta, &ignored);
}

int64_t hostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

// Never throws: it also runs in the GC finalizer, where an exception would abort the process.
void release(napi_env env, TensorHolder* h) noexcept {
  if (!h->t.defined()) return;
  h->t = at::Tensor();
  gLiveTensors--;
  adjustExternal(env, -h->reportedBytes);
  h->reportedBytes = 0;
}

std::vector<int64_t> shapeArg(const Napi::Value& v) {
  std::vector<int64_t> shape = intListArg(v, "argument 'shape'");
  for (int64_t d : shape) {
    if (d < 0) throw ArgError("argument 'shape' expected non-negative sizes but received " + c10::str(c10::IntArrayRef(shape)));
  }
  return shape;
}

// A c10::ScalarType code (the numbers src/torch/dtype.ts lists); others are refused before the cast.
at::ScalarType dtypeArg(const Napi::Value& v) {
  return static_cast<at::ScalarType>(intArg(v, "argument 'dtype'", 0, static_cast<int64_t>(at::ScalarType::NumOptions) - 1));
}

// The tensor that `shape` and `dtype` describe, with its size in bytes.
at::Tensor emptyFor(const Napi::Value& shape, const Napi::Value& dtype) {
  return at::empty(shapeArg(shape), at::TensorOptions().dtype(dtypeArg(dtype)));
}

size_t byteSize(const at::Tensor& t) { return static_cast<size_t>(t.numel()) * t.element_size(); }

// A metadata list (sizes, strides) as a JS array.
Napi::Value intList(Napi::Env env, c10::IntArrayRef list) {
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) out[i] = Napi::Number::New(env, static_cast<double>(list[i]));
  return out;
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
  badArg("argument 'data'", "a TypedArray, DataView or ArrayBuffer", v);
}

}  // namespace

void finalizeTensor(napi_env env, void* data, void* /*hint*/) noexcept {
  auto* h = static_cast<TensorHolder*>(data);
  release(env, h);
  delete h;
}

// A handle is a plain JS object carrying the holder through napi_wrap, tagged as ours.
// dispose() removes the wrap, which frees the holder and its finalizer bookkeeping at once:
// Node 20 runs GC finalizers only when the event loop turns, so relying on them would let a
// synchronous attack loop accumulate one record per temporary tensor.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  // Tag first, wrap last: once napi_wrap succeeds the finalizer owns the holder, so no failure
  // path may delete it after that.
  napi_value obj;
  napi_status st = napi_create_object(env, &obj);
  if (st == napi_ok) st = napi_type_tag_object(env, obj, &kTensorTag);
  if (st != napi_ok) throw std::runtime_error("could not create a tensor handle");
  auto* h = new TensorHolder{std::move(t), 0};
  if (napi_wrap(env, obj, h, finalizeTensor, nullptr, nullptr) != napi_ok) {
    delete h;
    throw std::runtime_error("could not create a tensor handle");
  }
  h->reportedBytes = hostBytes(h->t);
  gLiveTensors++;
  adjustExternal(env, h->reportedBytes);
  return Napi::Value(env, obj);
}

TensorHolder* tensorHolder(const Napi::Value& v, const char* what) {
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(v.Env(), v, &kTensorTag, &tagged);
  if (!tagged) badArg(std::string("argument '") + what + "'", "a Tensor", v);
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok) return nullptr;  // the wrap was removed: disposed
  return static_cast<TensorHolder*>(data);
}

at::Tensor& unwrapTensor(const Napi::Value& v, const char* what) {
  TensorHolder* h = tensorHolder(v, what);
  if (h == nullptr || !h->t.defined()) throw ArgError(std::string("argument '") + what + "' is a Tensor that was disposed");
  return h->t;
}

namespace {

const at::Tensor& self(const Napi::CallbackInfo& info) { return unwrapTensor(info[0], "tensor"); }

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (tensorHolder(info[0], "tensor") == nullptr) return env.Undefined();  // idempotent
  void* data = nullptr;
  if (napi_remove_wrap(env, info[0], &data) == napi_ok && data != nullptr) {
    auto* h = static_cast<TensorHolder*>(data);
    release(env, h);
    delete h;
  }
  return env.Undefined();
}

Napi::Value Shape(const Napi::CallbackInfo& info) { return intList(info.Env(), self(info).sizes()); }
Napi::Value Strides(const Napi::CallbackInfo& info) { return intList(info.Env(), self(info).strides()); }

Napi::Value DType(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(self(info).scalar_type()));
}
Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), self(info).device().str()); }
Napi::Value RequiresGrad(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), self(info).requires_grad()); }
Napi::Value IsLeaf(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), self(info).is_leaf()); }

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  TensorHolder* h = tensorHolder(info[0], "tensor");
  return Napi::Boolean::New(info.Env(), h == nullptr || !h->t.defined());
}

// Same storage and offset: the JS side uses it to know an in-place op returned `self`.
Napi::Value SameTensor(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "a").is_same(unwrapTensor(info[1], "b")));
}

// fromBytes(data, shape, dtypeCode): copies the bytes into a new CPU tensor.
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  auto [ptr, len] = bytesOf(info[0]);
  at::Tensor t = emptyFor(info[1], info[2]);
  const size_t want = byteSize(t);
  if (want != len) {
    throw ArgError("data has " + std::to_string(len) + " bytes but shape " + c10::str(t.sizes()) + " of " +
                   c10::toString(t.scalar_type()) + " needs " + std::to_string(want));
  }
  if (len) std::memcpy(t.data_ptr(), ptr, len);
  return wrapTensor(info.Env(), std::move(t));
}

// toBytes(t): a fresh ArrayBuffer holding the tensor's values, contiguous, on the CPU.
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  at::Tensor t = self(info).detach().to(at::kCPU).contiguous();
  const size_t len = byteSize(t);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), len);
  if (len) std::memcpy(ab.Data(), t.data_ptr(), len);
  return ab;
}

// Closes the descriptor on every path out of FromFile, exceptions included.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// fromFile(path, offset, byteLength, shape, dtypeCode): reads a byte range straight into tensor
// memory, so loading weights never holds them in the JS heap.
Napi::Value FromFile(const Napi::CallbackInfo& info) {
  const std::string path = stringArg(info[0], "argument 'path'");
  const int64_t offset = intArg(info[1], "argument 'offset'", 0, INT64_MAX);
  const int64_t length = intArg(info[2], "argument 'byteLength'", 0, INT64_MAX);
  at::Tensor t = emptyFor(info[3], info[4]);
  const int64_t want = static_cast<int64_t>(byteSize(t));
  if (want != length) throw ArgError(path + ": byte length " + std::to_string(length) + " does not match shape (" + std::to_string(want) + " bytes)");
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  char* dst = static_cast<char*>(t.data_ptr());
  int64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(file.fd, dst + done, static_cast<size_t>(length - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::runtime_error(path + ": read failed at byte " + std::to_string(offset + done) + (n == 0 ? ": unexpected end of file" : std::string(": ") + std::strerror(errno)));
    }
    done += n;
  }
  return wrapTensor(info.Env(), std::move(t));
}

Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(gLiveTensors.load()));
}

const EntryPoint kEntryPoints[] = {
    {"dispose", Dispose},
    {"shape", Shape},
    {"strides", Strides},
    {"dtype", DType},
    {"device", Device},
    {"requiresGrad", RequiresGrad},
    {"isLeaf", IsLeaf},
    {"isDisposed", IsDisposed},
    {"sameTensor", SameTensor},
    {"fromBytes", FromBytes},
    {"toBytes", ToBytes},
    {"fromFile", FromFile},
    {"liveTensors", LiveTensors},
};

}  // namespace

void initTensor(Napi::Env env, Napi::Object exports) { exportEntryPoints(env, exports, kEntryPoints); }

}  // namespace immunize
