// Consumer smoke test: includes the umbrella header, runs one Kokkos kernel, prints the version.
#include <rodimus/rodimus.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char* argv[]) {
  // OpenMP Kokkos warns on stdout when OMP_PROC_BIND is unset.
  setenv("OMP_PROC_BIND", "false", /*overwrite=*/0);
  Kokkos::initialize(argc, argv);
  long sum = 0;
  Kokkos::parallel_reduce(
      "consumer_sum", 100, KOKKOS_LAMBDA(const int i, long& acc) { acc += i; }, sum);
  std::printf("rodimus %s on %s\n", RODIMUS_VERSION_STRING,
              Kokkos::DefaultExecutionSpace::name());
  Kokkos::finalize();
  return sum == 4950 ? EXIT_SUCCESS : EXIT_FAILURE;
}
