// A dense row-major matrix with a blocked multiply, for the examples.
#include <cassert>
#include <cstddef>
#include <iostream>
#include <vector>

template <class T>
class Matrix {
 public:
  Matrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols), data_(rows * cols) {}

  T& operator()(std::size_t i, std::size_t j) { return data_[i * cols_ + j]; }
  const T& operator()(std::size_t i, std::size_t j) const { return data_[i * cols_ + j]; }
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }

 private:
  std::size_t rows_, cols_;
  std::vector<T> data_;
};

// c = a * b with 32 x 32 blocks.
template <class T>
void multiply(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c) {
  assert(a.cols() == b.rows() && c.rows() == a.rows() && c.cols() == b.cols());
  constexpr std::size_t block = 32;
  for (std::size_t i = 0; i < c.rows(); ++i)
    for (std::size_t j = 0; j < c.cols(); ++j) c(i, j) = T(0);
  for (std::size_t ii = 0; ii < a.rows(); ii += block)
    for (std::size_t kk = 0; kk < a.cols(); kk += block)
      for (std::size_t jj = 0; jj < b.cols(); jj += block)
        for (std::size_t i = ii; i < std::min(ii + block, a.rows()); ++i)
          for (std::size_t k = kk; k < std::min(kk + block, a.cols()); ++k) {
            const T aik = a(i, k);
            for (std::size_t j = jj; j < std::min(jj + block, b.cols()); ++j) c(i, j) += aik * b(k, j);
          }
}

int main() {
  Matrix<double> a(3, 4), b(4, 2), c(3, 2);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < 4; ++k) a(i, k) = double(i + k);
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t j = 0; j < 2; ++j) b(k, j) = double(k) - double(j);
  multiply(a, b, c);
  for (std::size_t i = 0; i < 3; ++i) std::cout << c(i, 0) << '\t' << c(i, 1) << '\n';
  return 0;
}
