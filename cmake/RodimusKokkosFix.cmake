# Repairs the Kokkos::kokkos target of Kokkos installs whose include dirs lack Kokkos_Core.hpp.
#
# Debian's Trilinos 13 package (Kokkos 3.4) exports Kokkos::kokkos with INTERFACE_INCLUDE_DIRECTORIES
# set to <prefix>/include, while the headers live in <prefix>/include/trilinos, the directory that
# its KokkosConfig.cmake reports in Kokkos_INCLUDE_DIRS. For any Kokkos whose target already
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
  # The target is imported, so these dirs are treated as system includes, like the original ones.
  set_property(TARGET Kokkos::kokkos APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${fixed_dirs})
  if(NOT rodimus_FIND_QUIETLY)
    message(STATUS "rodimus: added ${fixed_dirs} to the include dirs of Kokkos::kokkos")
  endif()
endfunction()
