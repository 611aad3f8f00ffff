// Exception types thrown by rodimus: every bad input becomes one of these, with a message
// that names the offending key, tensor, file or argument.
#pragma once

#include <stdexcept>
#include <string>

namespace rodimus {

/// Base class of every error rodimus throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A config.json that is missing a key, has a wrong type, or has inconsistent sizes.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint file that is unreadable, truncated, corrupt, or lacks/mis-shapes a tensor.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// A call with arguments of the wrong shape, size or range (token ids, batch sizes, ...).
class ArgumentError : public Error {
 public:
  using Error::Error;
};

/// A call the backend cannot run from here (e.g. a second host thread on Kokkos 3.x OpenMP).
class BackendError : public Error {
 public:
  using Error::Error;
};

/// A serialised decode state that does not match the model or is corrupt.
class StateError : public Error {
 public:
  using Error::Error;
};

}  // namespace rodimus
