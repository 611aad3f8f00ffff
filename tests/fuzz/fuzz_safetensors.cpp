// libFuzzer target: SafetensorsFile::parse on any bytes either succeeds or throws rodimus::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "rodimus/io/safetensors.hpp"

namespace {

float element_f32(const rodimus::io::TensorRef& t, rodimus::DType d, std::size_t i) {
  const std::byte* p = t.bytes.data() + i * rodimus::dtype_size(d);
  switch (d) {
    case rodimus::DType::F32: {
      float v;
      std::memcpy(&v, p, 4);
      return rodimus::to_f32(v);
    }
    case rodimus::DType::F16: {
      rodimus::fp16 v;
      std::memcpy(&v.bits, p, 2);
      return rodimus::to_f32(v);
    }
    case rodimus::DType::BF16: {
      rodimus::bf16 v;
      std::memcpy(&v.bits, p, 2);
      return rodimus::to_f32(v);
    }
  }
  return 0.f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rodimus::io;
  try {
    const auto f =
        SafetensorsFile::parse(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz");
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      if (f.find(t.name) != &t) std::abort();
      const auto nbytes = static_cast<std::size_t>(t.numel()) * st_dtype_size(t.dtype);
      if (nbytes != t.bytes.size()) std::abort();
      for (std::byte b : t.bytes) sum += std::to_integer<unsigned>(b);
      if (const auto d = as_float_dtype(t.dtype)) {
        const auto n = static_cast<std::size_t>(t.numel());
        for (std::size_t i = 0; i < n && i < 4; ++i)
          sum += static_cast<unsigned>(element_f32(t, *d, i) != 0.f);
        if (n) sum += static_cast<unsigned>(element_f32(t, *d, n - 1) != 0.f);
      }
    }
    for (const auto& [k, v] : f.metadata()) sum += static_cast<unsigned>(k.size() + v.size());
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const rodimus::Error&) {
  }
  return 0;
}
