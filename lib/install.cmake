# What `cmake --install` puts under the prefix, and how consumers find it:
#   include/rotary/            rotary.h, rotary.hpp
#   lib/librotary.so*          the shared library (BUILD_SHARED_LIBS=ON, the default)
#   lib/librotary.a            the static library (always: beside the shared one when
#                              ROTARY_INSTALL_STATIC is ON, or alone with BUILD_SHARED_LIBS=OFF)
#   lib/cmake/rotary/          rotaryConfig.cmake, rotaryConfigVersion.cmake and the export sets:
#                                find_package(rotary)                    -> rotary::rotary
#                                find_package(rotary COMPONENTS static)  -> also rotary::rotary_static
#   lib/pkgconfig/rotary.pc    pkg-config for rotary::rotary (and rotary-static.pc for the static library)
#   bin/rotary-info            version, targets, CPU support, table cache
# Both package files are relocatable: they locate the prefix from their own path.
include(CMakePackageConfigHelpers)

set(ROTARY_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/rotary)
set(ROTARY_PKGCONFIG_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS rotary EXPORT rotaryTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT rotaryTargets NAMESPACE rotary:: DESTINATION ${ROTARY_CMAKE_INSTALL_DIR})
if(TARGET rotary_static)
  install(TARGETS rotary_static EXPORT rotaryStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT rotaryStaticTargets NAMESPACE rotary:: DESTINATION ${ROTARY_CMAKE_INSTALL_DIR})
endif()
install(DIRECTORY include/rotary DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET rotary-info)
  install(TARGETS rotary-info RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# ---- CMake package ----
if(BUILD_SHARED_LIBS)
  set(ROTARY_MAIN_IS_STATIC FALSE)
else()
  set(ROTARY_MAIN_IS_STATIC TRUE)
endif()
if(TARGET rotary_static)
  set(ROTARY_STATIC_EXPORTED TRUE)
else()
  set(ROTARY_STATIC_EXPORTED FALSE)
endif()
configure_package_config_file(lib/rotaryConfig.cmake.in ${PROJECT_BINARY_DIR}/rotaryConfig.cmake
  INSTALL_DESTINATION ${ROTARY_CMAKE_INSTALL_DIR})
# A consumer asking for 0.y accepts any later 0.x: the API only grows (the
# soname follows the ABI: ROTARY_ABI_VERSION in CMakeLists.txt).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rotaryConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rotaryConfig.cmake ${PROJECT_BINARY_DIR}/rotaryConfigVersion.cmake
  DESTINATION ${ROTARY_CMAKE_INSTALL_DIR})

# ---- pkg-config ----
# A static librotary needs Highway, oneTBB and libstdc++ on the link line too.
# A static-only library lists them in Requires/Libs. The shared one lists them
# in Libs.private only (for `pkg-config --static`), not in Requires.private:
# pkg-config reads the .pc files of Requires.private even for a shared link, and
# a consumer of librotary.so should not need Highway's and oneTBB's dev packages.
file(RELATIVE_PATH ROTARY_PC_TO_PREFIX ${CMAKE_INSTALL_PREFIX}/${ROTARY_PKGCONFIG_INSTALL_DIR} ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" ROTARY_PC_TO_PREFIX "${ROTARY_PC_TO_PREFIX}")
set(ROTARY_PC_DEPS_REQUIRES "libhwy tbb")
set(ROTARY_PC_DEPS_LIBS "-lstdc++ -lm -pthread")

function(rotary_pkgconfig file name description static_only lib)
  if(static_only)
    set(ROTARY_PC_CFLAGS " -DROTARY_STATIC")
    set(ROTARY_PC_CFLAGS_PRIVATE "")
    set(ROTARY_PC_LIBS "${lib} ${ROTARY_PC_DEPS_LIBS}")
    set(ROTARY_PC_LIBS_PRIVATE "")
    set(ROTARY_PC_REQUIRES "${ROTARY_PC_DEPS_REQUIRES}")
  else()
    set(ROTARY_PC_CFLAGS "")
    set(ROTARY_PC_CFLAGS_PRIVATE "-DROTARY_STATIC")
    set(ROTARY_PC_LIBS "${lib}")
    set(ROTARY_PC_LIBS_PRIVATE "-lhwy -ltbb ${ROTARY_PC_DEPS_LIBS}")
    set(ROTARY_PC_REQUIRES "")
  endif()
  set(ROTARY_PC_NAME "${name}")
  set(ROTARY_PC_DESCRIPTION "${description}")
  configure_file(lib/rotary.pc.in ${PROJECT_BINARY_DIR}/${file} @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${file} DESTINATION ${ROTARY_PKGCONFIG_INSTALL_DIR})
endfunction()

set(_rotary_description "Rotary position embedding (RoPE) for CPU inference")
rotary_pkgconfig(rotary.pc rotary "${_rotary_description}" ${ROTARY_MAIN_IS_STATIC} "-L\${libdir} -lrotary")
if(TARGET rotary_static)
  # Names the archive itself: beside librotary.so, -lrotary would pick the shared one.
  rotary_pkgconfig(rotary-static.pc rotary-static "${_rotary_description} (static library)" TRUE
                   "\${libdir}/librotary.a")
endif()
