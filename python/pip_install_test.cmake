# `pip install --no-build-isolation .` as docs/python.md shows it, from a copy
# of the checkout into a virtual environment that sees the system's numpy,
# with no package index: the module imports from the environment and rotates.
# One kernel target, at -O0 (ROTARY_CMAKE_ARGS; a fifth less compile time than
# -O1, two fifths less than -O3): the packaging is under test here, the
# kernels in every other test.
#   cmake -DPYTHON=... -DSOURCE=<checkout> -DWORK=<scratch dir> -P pip_install_test.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/src")
file(GLOB _entries RELATIVE "${SOURCE}" "${SOURCE}/*")
foreach(_entry IN LISTS _entries)
  if(NOT _entry MATCHES "^(build|build-.*|\\.git|.*\\.egg-info)$")
    file(COPY "${SOURCE}/${_entry}" DESTINATION "${WORK}/src")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "failed (${_rc}): ${ARGN}\n${_out}")
  endif()
  set(_last_output "${_out}" PARENT_SCOPE)
endfunction()

run("${PYTHON}" -m venv --system-site-packages "${WORK}/venv")
set(ENV{ROTARY_CMAKE_ARGS} "-DROTARY_HWY_TARGETS=static -DCMAKE_CXX_FLAGS_RELEASE=-O0")
run("${WORK}/venv/bin/python" -m pip install --no-build-isolation --no-deps --no-index "${WORK}/src")
run("${WORK}/venv/bin/python" -c
    "import numpy, rotary, sys; x = numpy.ones((1, 3, 2, 8), numpy.float32); rotary.Rope(head_dim=8).apply(x); \
assert rotary.__file__.startswith(sys.prefix), rotary.__file__; assert abs(x[0, 1, 0, 0] - (numpy.cos(1) - numpy.sin(1))) < 1e-6; \
print(rotary.__file__, rotary.version())")
message(STATUS "${_last_output}")
