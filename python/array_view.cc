#include "array_view.h"

#include "rotary/rotary.hpp"

namespace rotary_python {
namespace {

[[noreturn]] void Invalid(const std::string& message) { throw rotary::Error(rotary::Status::kInvalidArgument, message); }

ArrayView FromNumpy(const py::array& a) {
  ArrayView view;
  view.data = const_cast<void*>(a.data());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    view.shape.push_back(a.shape(i));
    view.strides.push_back(a.strides(i));
  }
  view.itemsize = a.itemsize();
  view.kind = a.dtype().kind();
  view.writable = a.writeable();
  view.native_order = a.dtype().attr("isnative").cast<bool>();
  view.type_name = py::str(a.dtype());
  view.owner = a;
  return view;
}

// The producer's capsule, taken over: renamed "used_dltensor" (so that its
// destructor leaves the tensor alone) and released through its deleter when
// the view goes. A torch tensor that requires grad exports only detached
// (the same memory).
ArrayView FromDlpack(const py::object& object, const char* name) {
  py::object capsule;
  try {
    capsule = object.attr("__dlpack__")();
  } catch (const py::error_already_set&) {
    if (!py::hasattr(object, "detach")) throw;
    capsule = object.attr("detach")().attr("__dlpack__")();
  }
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (managed == nullptr) throw py::error_already_set();
  if (PyCapsule_SetName(capsule.ptr(), "used_dltensor") != 0) throw py::error_already_set();
  ArrayView view;
  view.managed.reset(managed, [](DLManagedTensor* m) {
    if (m->deleter != nullptr) m->deleter(m);
  });
  view.owner = object;
  const DLTensor& t = managed->dl_tensor;
  if (t.device.device_type != 1) {
    Invalid(std::string(name) + ": a tensor on device type " + std::to_string(t.device.device_type) +
            "; rotary runs on the CPU (move it with .cpu())");
  }
  if (t.dtype.lanes != 1) Invalid(std::string(name) + ": vector element types are not supported");
  view.itemsize = t.dtype.bits / 8;
  view.kind = t.dtype.code == 2 ? 'f' : t.dtype.code == 4 ? 'b' : t.dtype.code == 1 ? 'u' : t.dtype.code == 0 ? 'i' : '?';
  view.type_name = std::string(view.kind == 'b' ? "bfloat" : view.kind == 'f' ? "float" : view.kind == 'u' ? "uint" : "int") +
                   std::to_string(t.dtype.bits);
  view.data = static_cast<char*>(t.data) + t.byte_offset;
  int64_t contiguous = view.itemsize;
  view.shape.assign(t.shape, t.shape + t.ndim);
  view.strides.resize(static_cast<size_t>(t.ndim));
  for (int32_t i = t.ndim - 1; i >= 0; --i) {
    view.strides[i] = t.strides != nullptr ? t.strides[i] * view.itemsize : contiguous;
    contiguous *= t.shape[i];
  }
  return view;
}

}  // namespace

ArrayView ViewOf(const py::object& object, const char* name) {
  if (py::isinstance<py::array>(object)) return FromNumpy(object.cast<py::array>());
  if (py::hasattr(object, "__dlpack__")) return FromDlpack(object, name);
  Invalid(std::string(name) + ": expected a numpy array or a tensor that exports DLPack (e.g. torch), got " +
          std::string(py::str(py::type::of(object).attr("__name__"))));
}

}  // namespace rotary_python
