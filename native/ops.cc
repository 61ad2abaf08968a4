// Calls any ATen operator by schema through the c10 dispatcher (boxed, as TorchScript's
// interpreter does). Autograd, type promotion and device dispatch all happen inside libtorch;
// this file only converts JS values to IValues following the operator's schema, and back.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/function_schema.h>
#include <ATen/core/jit_type.h>
#include <ATen/core/stack.h>

#include <cmath>
#include <vector>

namespace immunize {

namespace {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string label;  // "aten::conv2d" or "aten::add.Tensor", for messages
};

std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> ops;
  return ops;
}

struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

const char* jsTypeName(const Napi::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsBoolean()) return "boolean";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsArray()) return "array";
  if (v.IsExternal()) return "generator";
  return "object";
}

[[noreturn]] void badArg(const c10::Argument& arg, const char* expected, const Napi::Value& got) {
  throw ArgError("argument '" + arg.name() + "' expected " + expected + " but received " + jsTypeName(got));
}

int64_t toInt(const c10::Argument& arg, const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) badArg(arg, "an integer", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) throw ArgError("argument '" + arg.name() + "' expected an integer but received " + std::to_string(d));
  return static_cast<int64_t>(d);
}

double toDouble(const c10::Argument& arg, const Napi::Value& v) {
  if (!v.IsNumber()) badArg(arg, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
}

bool toBool(const c10::Argument& arg, const Napi::Value& v) {
  if (!v.IsBoolean()) badArg(arg, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

// A JS number is an integer Scalar when it has no fraction, so `x.add(1)` keeps an integer
// tensor integral as Python's `x + 1` does (JS cannot tell 1 from 1.0).
c10::IValue toScalar(const c10::Argument& arg, const Napi::Value& v) {
  if (v.IsBoolean()) return c10::IValue(v.As<Napi::Boolean>().Value());
  if (!v.IsNumber()) badArg(arg, "a number", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) return c10::IValue(static_cast<int64_t>(d));
  return c10::IValue(d);
}

c10::IValue toIValue(const c10::Argument& arg, const c10::TypePtr& type, const Napi::Value& v);

c10::IValue toList(const c10::Argument& arg, const c10::TypePtr& elem, const Napi::Value& v) {
  using c10::TypeKind;
  const TypeKind k = elem->kind();
  const bool isIntLike = k == TypeKind::IntType || k == TypeKind::SymIntType;
  // Python lets `stride=1` stand for `[1, 1]` when the schema fixes the length (int[2]).
  if (!v.IsArray()) {
    if ((isIntLike && v.IsNumber()) || (k == TypeKind::FloatType && v.IsNumber())) {
      size_t n = arg.N() ? static_cast<size_t>(*arg.N()) : 1;
      if (isIntLike) return c10::IValue(std::vector<int64_t>(n, toInt(arg, v)));
      return c10::IValue(std::vector<double>(n, toDouble(arg, v)));
    }
    badArg(arg, "an array", v);
  }
  Napi::Array a = v.As<Napi::Array>();
  const uint32_t n = a.Length();
  if (isIntLike) {
    std::vector<int64_t> out(n);
    for (uint32_t i = 0; i < n; i++) out[i] = toInt(arg, a.Get(i));
    return c10::IValue(out);
  }
  if (k == TypeKind::FloatType) {
    std::vector<double> out(n);
    for (uint32_t i = 0; i < n; i++) out[i] = toDouble(arg, a.Get(i));
    return c10::IValue(out);
  }
  if (k == TypeKind::BoolType) {
    c10::List<bool> out;
    for (uint32_t i = 0; i < n; i++) out.push_back(toBool(arg, a.Get(i)));
    return c10::IValue(out);
  }
  if (k == TypeKind::TensorType) {
    c10::List<at::Tensor> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; i++) out.push_back(unwrapTensor(a.Get(i), arg.name().c_str()));
    return c10::IValue(out);
  }
  if (k == TypeKind::OptionalType && elem->expectRef<c10::OptionalType>().getElementType()->kind() == TypeKind::TensorType) {
    c10::List<c10::optional<at::Tensor>> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value e = a.Get(i);
      if (e.IsNull() || e.IsUndefined()) out.push_back(c10::nullopt);
      else out.push_back(unwrapTensor(e, arg.name().c_str()));
    }
    return c10::IValue(out);
  }
  throw ArgError("argument '" + arg.name() + "' has unsupported list type " + elem->str() + "[]");
}

c10::IValue toIValue(const c10::Argument& arg, const c10::TypePtr& type, const Napi::Value& v) {
  using c10::TypeKind;
  switch (type->kind()) {
    case TypeKind::TensorType:
      if (!v.IsObject() || v.IsArray()) badArg(arg, "a Tensor", v);
      return c10::IValue(unwrapTensor(v, arg.name().c_str()));
    case TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return toIValue(arg, type->expectRef<c10::OptionalType>().getElementType(), v);
    case TypeKind::IntType:
    case TypeKind::SymIntType:
    case TypeKind::ScalarTypeType:
    case TypeKind::LayoutType:
    case TypeKind::MemoryFormatType:
      return c10::IValue(toInt(arg, v));
    case TypeKind::FloatType:
      return c10::IValue(toDouble(arg, v));
    case TypeKind::BoolType:
      return c10::IValue(toBool(arg, v));
    case TypeKind::NumberType:
      return toScalar(arg, v);
    case TypeKind::StringType:
      if (!v.IsString()) badArg(arg, "a string", v);
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case TypeKind::DeviceObjType:
      if (!v.IsString()) badArg(arg, "a device string", v);
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case TypeKind::GeneratorType:
      if (!v.IsExternal()) badArg(arg, "a Generator", v);
      return c10::IValue(unwrapGenerator(v, arg.name().c_str()));
    case TypeKind::ListType:
      return toList(arg, type->expectRef<c10::ListType>().getElementType(), v);
    default:
      throw ArgError("argument '" + arg.name() + "' has unsupported type " + type->str());
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrapTensor(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out[i] = wrapTensor(env, list.get(i));
    return out;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array out = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) out[i] = fromIValue(env, elems[i]);
    return out;
  }
  if (v.isIntList()) {
    auto list = v.toIntVector();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out[i] = Napi::Number::New(env, static_cast<double>(list[i]));
    return out;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out[i] = fromIValue(env, list[i]);
    return out;
  }
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  throw std::runtime_error("unsupported return type " + v.tagKind());
}

// op(name, overload) -> integer id; resolved once per operator by the TypeScript wrappers.
Napi::Value LookupOp(const Napi::CallbackInfo& info) {
  return guarded(info, "op", [&](Napi::Env env) -> Napi::Value {
    std::string name = info[0].As<Napi::String>().Utf8Value();
    std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle.has_value()) throw std::invalid_argument("no operator " + name + (overload.empty() ? "" : "." + overload) + " in this libtorch");
    registry().push_back({*handle, name + (overload.empty() ? "" : "." + overload)});
    return Napi::Number::New(env, static_cast<double>(registry().size() - 1));
  });
}

// call(id, ...args): missing or undefined trailing arguments take the schema's defaults.
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& ops = registry();
  const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= ops.size()) throwJs(env, "call", "bad operator id " + std::to_string(id));
  const OpEntry& op = ops[id];
  try {
    const auto& args = op.handle.schema().arguments();
    const size_t given = info.Length() - 1;
    if (given > args.size()) throw ArgError("takes " + std::to_string(args.size()) + " arguments but received " + std::to_string(given));
    torch::jit::Stack stack;
    stack.reserve(args.size());
    for (size_t i = 0; i < args.size(); i++) {
      const c10::Argument& arg = args[i];
      Napi::Value v = i < given ? info[i + 1] : env.Undefined();
      if (v.IsUndefined()) {
        if (arg.default_value().has_value()) { stack.push_back(*arg.default_value()); continue; }
        if (arg.type()->kind() == c10::TypeKind::OptionalType) { stack.emplace_back(); continue; }
        throw ArgError("missing required argument '" + arg.name() + "'");
      }
      stack.push_back(toIValue(arg, arg.real_type(), v));
    }
    op.handle.callBoxed(&stack);
    if (stack.size() == 1) return fromIValue(env, stack[0]);
    Napi::Array out = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) out[i] = fromIValue(env, stack[i]);
    return out;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throwJs(env, op.label, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throwJs(env, op.label, e.what());
  }
}

Napi::Value Schema(const Napi::CallbackInfo& info) {
  return guarded(info, "schema", [&](Napi::Env env) -> Napi::Value {
    const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    if (id >= registry().size()) throw std::invalid_argument("bad operator id");
    return Napi::String::New(env, c10::toString(registry()[id].handle.schema()));
  });
}

}  // namespace

void initOps(Napi::Env env, Napi::Object exports) {
  exports.Set("op", Napi::Function::New(env, LookupOp));
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("schema", Napi::Function::New(env, Schema));
}

}  // namespace immunize
