# Installs the build into a prefix inside it, then builds the separate project
# tests/consumer against that prefix, as a backend would, and runs what it built:
#   1. find_package(rotary): consumer_c, consumer_cpp (shared), consumer_static (librotary.a);
#   2. pkg-config: consumer.c compiled with `pkg-config --cflags --libs rotary`, and rotary-static;
#   3. the installed bin/rotary-info.
# Each shared program must load librotary.so from the prefix; each static one must not need it.
#   cmake -DBUILD_DIR= -DCONSUMER_DIR= -DGENERATOR= -DC_COMPILER= -DCXX_COMPILER= -DPKG_CONFIG= -DVERSION=
#         [-DSANITIZE=address,undefined] -P consumer_test.cmake
set(prefix ${BUILD_DIR}/install-test)
set(work ${BUILD_DIR}/consumer-test)
file(REMOVE_RECURSE ${prefix} ${work})

# A sanitized rotary needs its runtime in the consumer too.
set(sanitize_flags "")
set(c_link_flags "")
set(cmake_sanitize "")
if(SANITIZE)
  set(sanitize_flags -fsanitize=${SANITIZE})
  # clang links UBSan's C++ part (the library's vptr checks need it) only into
  # C++ programs; a C program calling the library needs it too.
  if(C_COMPILER MATCHES "clang" AND SANITIZE MATCHES "undefined")
    set(c_link_flags -fsanitize-link-c++-runtime -lstdc++)
  endif()
  string(JOIN " " exe_link_flags ${sanitize_flags} ${c_link_flags})
  set(cmake_sanitize -DCMAKE_C_FLAGS=${sanitize_flags} -DCMAKE_CXX_FLAGS=${sanitize_flags}
                     "-DCMAKE_EXE_LINKER_FLAGS=${exe_link_flags}")
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${command}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# Runs a consumer program; it must report the installed version, and load librotary.so or not.
function(check_program program linkage)
  run(${program})
  if(NOT run_output MATCHES "consumer: rotary ${VERSION} on [A-Z0-9_]+: ok")
    message(FATAL_ERROR "${program} printed:\n${run_output}")
  endif()
  run(readelf -d ${program})
  if(linkage STREQUAL "shared" AND NOT run_output MATCHES "NEEDED[^\n]*librotary\\.so")
    message(FATAL_ERROR "${program} does not load librotary.so:\n${run_output}")
  elseif(linkage STREQUAL "static" AND run_output MATCHES "librotary")
    message(FATAL_ERROR "${program} should have librotary.a linked in, but needs:\n${run_output}")
  endif()
  message(STATUS "${program} (${linkage}): ok")
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
file(GLOB_RECURSE pc_files ${prefix}/*/rotary.pc)
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
get_filename_component(lib_dir ${pc_dir} DIRECTORY)
set(shared_kind shared)
if(NOT EXISTS ${lib_dir}/librotary.so)
  set(shared_kind static)  # a BUILD_SHARED_LIBS=OFF install
endif()

# 1. find_package.
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${work}/cmake -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    ${cmake_sanitize})
run(${CMAKE_COMMAND} --build ${work}/cmake)
check_program(${work}/cmake/consumer_c ${shared_kind})
run(${work}/cmake/consumer_cpp)
message(STATUS "consumer_cpp: ${run_output}")
if(EXISTS ${lib_dir}/librotary.a)
  check_program(${work}/cmake/consumer_static static)
endif()

# The shared library alone needs no dependency's CMake package.
if(shared_kind STREQUAL "shared")
  run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${work}/cmake-shared-only -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
      -DWITH_STATIC=OFF -DCMAKE_DISABLE_FIND_PACKAGE_hwy=ON -DCMAKE_DISABLE_FIND_PACKAGE_TBB=ON ${cmake_sanitize})
  run(${CMAKE_COMMAND} --build ${work}/cmake-shared-only --target consumer_c)
  check_program(${work}/cmake-shared-only/consumer_c shared)
endif()

# 2. pkg-config, from a plain compiler command line. The shared library's
#    rotary.pc must work with only rotary's own .pc files on the search path.
if(NOT PKG_CONFIG OR NOT EXISTS "${PKG_CONFIG}")
  message(FATAL_ERROR "pkg-config was not found when configuring; apt-get install pkg-config")
endif()
function(build_with_pkg_config package output)
  set(search PKG_CONFIG_PATH=${pc_dir})
  if(package STREQUAL "rotary" AND shared_kind STREQUAL "shared")
    set(search PKG_CONFIG_LIBDIR=${pc_dir})
  endif()
  run(${CMAKE_COMMAND} -E env ${search} ${PKG_CONFIG} --cflags --libs ${package})
  string(STRIP "${run_output}" flags)
  message(STATUS "pkg-config --cflags --libs ${package}: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanitize_flags} ${CONSUMER_DIR}/consumer.c -o ${output} ${flags}
      ${c_link_flags} -Wl,-rpath,${lib_dir})
endfunction()
build_with_pkg_config(rotary ${work}/consumer_pkg_config)
check_program(${work}/consumer_pkg_config ${shared_kind})
if(EXISTS ${pc_dir}/rotary-static.pc)
  build_with_pkg_config(rotary-static ${work}/consumer_pkg_config_static)
  check_program(${work}/consumer_pkg_config_static static)
endif()

# 3. The installed rotary-info finds the installed library by itself.
run(${prefix}/bin/rotary-info --max-positions=16 --position=16)
if(NOT run_output MATCHES "^rotary ${VERSION}\n.*active target: ")
  message(FATAL_ERROR "installed rotary-info printed:\n${run_output}")
endif()
message(STATUS "installed rotary-info: ok")
