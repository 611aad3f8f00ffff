// Catch2 runner shared by every test binary: Kokkos is initialised around the whole session.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <Kokkos_Core.hpp>
#include <cstdlib>

int main(int argc, char* argv[]) {
  // OpenMP Kokkos prints an OMP_PROC_BIND warning on stdout unless the variable is set.
  setenv("OMP_PROC_BIND", "false", /*overwrite=*/0);
  // (OMP_WAIT_POLICY / GOMP_SPINCOUNT cannot be set here: libgomp reads them as it loads, before
  // main(); tests that need passive waiting get it from ctest's ENVIRONMENT property.)
  // Kokkos takes its --kokkos-* arguments out of argv; Catch2 sees the rest.
  Kokkos::initialize(argc, argv);
  int result = 0;
  {
    Catch::Session session;
    result = session.run(argc, argv);
  }
  Kokkos::finalize();
  return result;
}
