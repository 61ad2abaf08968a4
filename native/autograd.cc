// Autograd entry points that are not ATen operators: grad, backward, .grad, grad mode.
#include "common.h"

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

namespace immunize {

namespace {

std::vector<at::Tensor> tensorList(const Napi::Value& v, const char* what, bool allowNull) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(what) + " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (allowNull && (e.IsNull() || e.IsUndefined())) out.emplace_back();
    else out.push_back(unwrapTensor(e, what));
  }
  return out;
}

c10::optional<bool> optBool(const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  return c10::nullopt;
}

// grad(outputs, inputs, gradOutputs, retainGraph?, createGraph, allowUnused) = torch.autograd.grad
Napi::Value Grad(const Napi::CallbackInfo& info) {
  return guarded(info, "grad", [&](Napi::Env env) -> Napi::Value {
    auto outputs = tensorList(info[0], "outputs", false);
    auto inputs = tensorList(info[1], "inputs", false);
    auto gradOutputs = tensorList(info[2], "gradOutputs", true);
    bool createGraph = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    bool allowUnused = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, optBool(info[3]), createGraph, allowUnused);
    Napi::Array out = Napi::Array::New(env, grads.size());
    for (size_t i = 0; i < grads.size(); i++) out[i] = wrapTensor(env, grads[i]);
    return out;
  });
}

// backward(tensors, gradTensors, retainGraph?, createGraph) accumulates into leaves' .grad.
Napi::Value Backward(const Napi::CallbackInfo& info) {
  return guarded(info, "backward", [&](Napi::Env env) -> Napi::Value {
    auto tensors = tensorList(info[0], "tensors", false);
    auto grads = tensorList(info[1], "gradTensors", true);
    bool createGraph = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    torch::autograd::backward(tensors, grads, optBool(info[2]), createGraph);
    return env.Undefined();
  });
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "grad", [&](Napi::Env env) -> Napi::Value {
    return wrapTensor(env, unwrapTensor(info[0], "tensor").grad());
  });
}

// setGrad(t, g | null): null clears the accumulated gradient (optimiser.zero_grad(set_to_none)).
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "setGrad", [&](Napi::Env env) -> Napi::Value {
    at::Tensor& t = unwrapTensor(info[0], "tensor");
    if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad().reset();
    else {
      const at::Tensor& g = unwrapTensor(info[1], "grad");
      // The checks PyTorch's Python binding makes (THPVariable_set_grad); libtorch itself does not.
      if (g.sizes() != t.sizes()) throw std::invalid_argument("assigned grad has shape " + c10::str(g.sizes()) + " but the tensor has shape " + c10::str(t.sizes()));
      if (g.scalar_type() != t.scalar_type()) throw std::invalid_argument(std::string("assigned grad has dtype ") + c10::toString(g.scalar_type()) + " but the tensor has dtype " + c10::toString(t.scalar_type()));
      if (g.device() != t.device()) throw std::invalid_argument("assigned grad is on " + g.device().str() + " but the tensor is on " + t.device().str());
      t.mutable_grad() = g;
    }
    return env.Undefined();
  });
}

Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  return guarded(info, "gradFn", [&](Napi::Env env) -> Napi::Value {
    const auto& fn = unwrapTensor(info[0], "tensor").grad_fn();
    if (!fn) return env.Null();
    return Napi::String::New(env, fn->name());
  });
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  return guarded(info, "setGradEnabled", [&](Napi::Env env) -> Napi::Value {
    c10::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

}  // namespace

void initAutograd(Napi::Env env, Napi::Object exports) {
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("getGrad", Napi::Function::New(env, GetGrad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("gradFn", Napi::Function::New(env, GradFnName));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
}

}  // namespace immunize
