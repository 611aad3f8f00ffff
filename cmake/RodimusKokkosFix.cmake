# Repairs the Kokkos::kokkos target of Kokkos installs whose include dirs lack Kokkos_Core.hpp.
#
# Debian's Trilinos 13 package (Kokkos 3.4) exports Kokkos::kokkos with INTERFACE_INCLUDE_DIRECTORIES
# set to /usr/lib/include (a path that does not exist), while the headers live in
# /usr/include/trilinos, the directory that its KokkosConfig.cmake reports in Kokkos_INCLUDE_DIRS. For any Kokkos whose target already
# carries Kokkos_Core.hpp (all upstream installs, 3.x and 4.x) this is a no-op.
#
# Call after find_package(Kokkos). Used by the top-level CMakeLists.txt and by rodimusConfig.cmake.

function(_rodimus_kokkos_target_has_core target out)
  set(found FALSE)
  set(targets ${target})
  get_target_property(links ${target} INTERFACE_LINK_LIBRARIES)
  foreach(link IN LISTS links)
    if(TARGET "${link}")
      list(APPEND targets "${link}")
    endif()
  endforeach()
  foreach(t IN LISTS targets)
    get_target_property(dirs ${t} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "\\$<")
        # A generator expression (e.g. BUILD_INTERFACE): trust it.
        set(found TRUE)
      elseif(EXISTS "${dir}/Kokkos_Core.hpp")
        set(found TRUE)
      endif()
    endforeach()
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

function(rodimus_fix_kokkos_target)
  if(NOT TARGET Kokkos::kokkos)
    return()
  endif()
  _rodimus_kokkos_target_has_core(Kokkos::kokkos has_core)
  if(has_core)
    return()
  endif()
  set(fixed_dirs)
  foreach(dir IN LISTS Kokkos_INCLUDE_DIRS)
    get_filename_component(dir "${dir}" ABSOLUTE)
    if(EXISTS "${dir}/Kokkos_Core.hpp")
      list(APPEND fixed_dirs "${dir}")
    endif()
  endforeach()
  if(NOT fixed_dirs)
    message(WARNING "rodimus: Kokkos::kokkos carries no include dir with Kokkos_Core.hpp and "
                    "Kokkos_INCLUDE_DIRS (${Kokkos_INCLUDE_DIRS}) has none either.")
    return()
  endif()
  # Drop the dirs that do not exist (CMake rejects those on imported targets of a package that
  # links Kokkos::kokkos), keep the others. The target is imported, so the dirs stay system dirs.
  get_target_property(old_dirs Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(kept_dirs)
  foreach(dir IN LISTS old_dirs)
    if(dir AND (dir MATCHES "\\$<" OR EXISTS "${dir}"))
      list(APPEND kept_dirs "${dir}")
    endif()
  endforeach()
  list(APPEND kept_dirs ${fixed_dirs})
  set_property(TARGET Kokkos::kokkos PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${kept_dirs})
  if(NOT rodimus_FIND_QUIETLY)
    message(STATUS "rodimus: include dirs of Kokkos::kokkos repaired: ${kept_dirs}")
  endif()
endfunction()
