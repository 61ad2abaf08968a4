// Calls any ATen operator by schema through the c10 dispatcher (boxed, as TorchScript's
// interpreter does). Autograd, type promotion and device dispatch all happen inside libtorch;
// this file only converts JS values to IValues following the operator's schema, and back.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/function_schema.h>
#include <ATen/core/jit_type.h>
#include <ATen/core/stack.h>

#include <cmath>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace immunize {

namespace {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string label;  // "aten::conv2d" or "aten::add.Tensor", for messages
};

// One entry per operator ever looked up, found again by label: looking up the same schema twice
// returns the same id. A deque keeps entries in place while others are added; the mutex covers
// lookups from worker threads, which share this addon's statics.
struct Registry {
  std::mutex mutex;
  std::deque<OpEntry> entries;
  std::unordered_map<std::string, size_t> ids;
};

Registry& registry() {
  static Registry r;
  return r;
}

const OpEntry& entryAt(const Napi::Value& id) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.entries[static_cast<size_t>(intArg(id, "argument 'id'", 0, static_cast<int64_t>(r.entries.size()) - 1))];
}

std::string argName(const c10::Argument& arg) { return "argument '" + arg.name() + "'"; }

// (qualified: unqualified lookup from here would find this overload and recurse)
[[noreturn]] void badArg(const c10::Argument& arg, const char* expected, const Napi::Value& got) {
  immunize::badArg(argName(arg), expected, got);
}

int64_t toInt(const c10::Argument& arg, const Napi::Value& v) { return intArg(v, argName(arg)); }

double toDouble(const c10::Argument& arg, const Napi::Value& v) {
  if (!v.IsNumber()) badArg(arg, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
}

bool toBool(const c10::Argument& arg, const Napi::Value& v) { return boolArg(v, argName(arg)); }

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
      return c10::IValue(toInt(arg, v));
    // Enum codes: refused outside the enum before libtorch casts them.
    case TypeKind::ScalarTypeType:
      return c10::IValue(intArg(v, argName(arg), 0, static_cast<int64_t>(c10::ScalarType::NumOptions) - 1));
    case TypeKind::LayoutType:
      return c10::IValue(intArg(v, argName(arg), 0, static_cast<int64_t>(c10::Layout::NumOptions) - 1));
    case TypeKind::MemoryFormatType:
      return c10::IValue(intArg(v, argName(arg), 0, static_cast<int64_t>(c10::MemoryFormat::NumOptions) - 1));
    case TypeKind::FloatType:
      return c10::IValue(toDouble(arg, v));
    case TypeKind::BoolType:
      return c10::IValue(toBool(arg, v));
    case TypeKind::NumberType:
      return toScalar(arg, v);
    case TypeKind::StringType:
      return c10::IValue(stringArg(v, argName(arg)));
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
  const std::string name = stringArg(info[0], "argument 'name'");
  const std::string overload = info[1].IsUndefined() ? "" : stringArg(info[1], "argument 'overload'");
  const std::string label = name + (overload.empty() ? "" : "." + overload);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto found = r.ids.find(label);
  if (found == r.ids.end()) {
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle.has_value()) throw ArgError("no operator " + label + " in this libtorch");
    r.entries.push_back({*handle, label});
    found = r.ids.emplace(label, r.entries.size() - 1).first;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(found->second));
}

// How many operators have been looked up (each schema counts once).
Napi::Value OpCount(const Napi::CallbackInfo& info) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(r.entries.size()));
}

// call(id, ...args): missing or undefined trailing arguments take the schema's defaults. Errors
// past the id name the operator, not "call".
Napi::Value Call(const Napi::CallbackInfo& info) {
  const OpEntry& op = entryAt(info[0]);
  Napi::Env env = info.Env();
  return guarded(env, op.label, [&]() -> Napi::Value {
    const auto& args = op.handle.schema().arguments();
    const size_t given = info.Length() == 0 ? 0 : info.Length() - 1;
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
  });
}

Napi::Value Schema(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), c10::toString(entryAt(info[0]).handle.schema()));
}

const EntryPoint kEntryPoints[] = {
    {"op", LookupOp},
    {"opCount", OpCount},
    {"call", Call},
    {"schema", Schema},
};

}  // namespace

void initOps(Napi::Env env, Napi::Object exports) { exportEntryPoints(env, exports, kEntryPoints); }

}  // namespace immunize
