# README.md shows tests/examples/example.c and example.cpp verbatim. Build and
# run both against the public rotary::rotary target, and fail if the README's
# copy differs from the files.
add_executable(readme_example_c examples/example.c)
target_link_libraries(readme_example_c PRIVATE rotary::rotary)
target_compile_options(readme_example_c PRIVATE -Wall -Wextra -Werror)
add_executable(readme_example_cpp examples/example.cpp)
target_link_libraries(readme_example_cpp PRIVATE rotary::rotary)
target_compile_options(readme_example_cpp PRIVATE -Wall -Wextra -Werror)
add_test(NAME readme.example_c COMMAND readme_example_c)
add_test(NAME readme.example_cpp COMMAND readme_example_cpp)
add_test(NAME readme.examples_match_files
  COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md
          -DEXAMPLES=${CMAKE_CURRENT_SOURCE_DIR}/examples/example.c|${CMAKE_CURRENT_SOURCE_DIR}/examples/example.cpp
          -P ${CMAKE_CURRENT_SOURCE_DIR}/check_readme_examples.cmake)
