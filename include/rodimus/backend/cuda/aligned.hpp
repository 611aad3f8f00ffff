// The one 16-byte alignment test of the CUDA backend (vector loads, cp.async, the GEMV's and the
// scan's operands); plain C++, so host-side dispatch (gemv_supports) can use it in every build.
#pragma once

#include <cstdint>

namespace rodimus::backend::cuda {

/// Whether p may be read and written in 16-byte vectors.
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace rodimus::backend::cuda
