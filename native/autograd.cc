// Autograd entry points that are not ATen operators: grad, backward, .grad, grad mode.
#include "common.h"

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

namespace immunize {

namespace {

std::vector<at::Tensor> tensorList(const Napi::Value& v, const char* what, bool allowNull) {
  if (!v.IsArray()) badArg(std::string("argument '") + what + "'", "an array of tensors", v);
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

// retainGraph: a boolean, or undefined/null for "same as createGraph".
c10::optional<bool> retainGraphArg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return boolArg(v, "argument 'retainGraph'");
}

// grad(outputs, inputs, gradOutputs, retainGraph?, createGraph, allowUnused) = torch.autograd.grad
Napi::Value Grad(const Napi::CallbackInfo& info) {
  auto outputs = tensorList(info[0], "outputs", false);
  auto inputs = tensorList(info[1], "inputs", false);
  auto gradOutputs = tensorList(info[2], "gradOutputs", true);
  auto retainGraph = retainGraphArg(info[3]);
  bool createGraph = boolArg(info[4], "argument 'createGraph'");
  bool allowUnused = boolArg(info[5], "argument 'allowUnused'");
  auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retainGraph, createGraph, allowUnused);
  Napi::Array out = Napi::Array::New(info.Env(), grads.size());
  for (size_t i = 0; i < grads.size(); i++) out[i] = wrapTensor(info.Env(), grads[i]);
  return out;
}

// backward(tensors, gradTensors, retainGraph?, createGraph) accumulates into leaves' .grad.
Napi::Value Backward(const Napi::CallbackInfo& info) {
  auto tensors = tensorList(info[0], "tensors", false);
  auto grads = tensorList(info[1], "gradTensors", true);
  auto retainGraph = retainGraphArg(info[2]);
  bool createGraph = boolArg(info[3], "argument 'createGraph'");
  torch::autograd::backward(tensors, grads, retainGraph, createGraph);
  return info.Env().Undefined();
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  return wrapTensor(info.Env(), unwrapTensor(info[0], "tensor").grad());
}

// setGrad(t, g | null): null clears the accumulated gradient (optimiser.zero_grad(set_to_none)).
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
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
  return info.Env().Undefined();
}

Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  const auto& fn = unwrapTensor(info[0], "tensor").grad_fn();
  if (!fn) return info.Env().Null();
  return Napi::String::New(info.Env(), fn->name());
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  c10::GradMode::set_enabled(boolArg(info[0], "argument 'on'"));
  return info.Env().Undefined();
}

const EntryPoint kEntryPoints[] = {
    {"grad", Grad},
    {"backward", Backward},
    {"getGrad", GetGrad},
    {"setGrad", SetGrad},
    {"gradFn", GradFnName},
    {"isGradEnabled", IsGradEnabled},
    {"setGradEnabled", SetGradEnabled},
};

}  // namespace

void initAutograd(Napi::Env env, Napi::Object exports) { exportEntryPoints(env, exports, kEntryPoints); }

}  // namespace immunize
