// A tensor argument of the Python module as raw memory, viewed in place: a
// numpy array, or anything that exports DLPack (`__dlpack__`: torch tensors,
// including bf16 ones, which numpy cannot hold). numpy.from_dlpack is no help
// here: its arrays are read-only, and rotary writes in place.
#ifndef ROTARY_PYTHON_ARRAY_VIEW_H_
#define ROTARY_PYTHON_ARRAY_VIEW_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rotary_python {

namespace py = pybind11;

// DLPack's C structs (dlpack.h, ABI of versions 0.5 to 0.8), declared from the
// specification as every consumer does: what a producer's "dltensor" capsule holds.
struct DLDevice {
  int32_t device_type;  // 1: CPU
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float, 4 bfloat
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL: C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

struct ArrayView {
  void* data = nullptr;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in bytes
  int64_t itemsize = 0;
  char kind = '?';  // numpy's dtype kinds: 'f' float, 'u' unsigned, 'i' signed; 'b' bfloat (DLPack)
  bool writable = true;
  bool native_order = true;
  std::string type_name;  // for messages
  py::object owner;       // the numpy array, or the DLPack producer's object
  std::shared_ptr<DLManagedTensor> managed;  // DLPack: released (its deleter) with the last copy

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t size() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  bool c_contiguous() const {
    int64_t expected = itemsize;
    for (int64_t i = ndim() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
};

// Throws rotary::Error (kInvalidArgument) for what cannot be viewed in place.
ArrayView ViewOf(const py::object& object, const char* name);

}  // namespace rotary_python

#endif  // ROTARY_PYTHON_ARRAY_VIEW_H_
