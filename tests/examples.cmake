# examples/: programs for users to read and copy. Each is built as a user
# builds it — the public header only, linked with the shared library
# `larder` (whose internal symbols are hidden) — and run by a test, so
# that what README.md shows keeps compiling and doing what it says.
add_executable(cache_query ${PROJECT_SOURCE_DIR}/examples/cache_query.c)
# Plain C11, no _GNU_SOURCE: nothing beyond the standard and larder.h.
set_target_properties(cache_query PROPERTIES C_EXTENSIONS OFF)
target_link_libraries(cache_query PRIVATE larder)
# With the tool at hand, the test also reads the entry back through it.
if(TARGET larder_cli)
  set(example_cli $<TARGET_FILE:larder_cli>)
else()
  set(example_cli "")
endif()
add_test(NAME example_cache_query_fills_then_hits
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/examples/cache_query.sh
                 $<TARGET_FILE:cache_query> ${example_cli})
set_tests_properties(example_cache_query_fills_then_hits PROPERTIES
                     TIMEOUT 120)
# The README's C fragment is an excerpt of the example, line for line,
# so it names nothing that the example does not define.
add_test(NAME example_readme_fragment_is_an_excerpt
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/examples/excerpt.sh
                 ${PROJECT_SOURCE_DIR}/README.md
                 ${PROJECT_SOURCE_DIR}/examples/cache_query.c)
set_tests_properties(example_readme_fragment_is_an_excerpt PROPERTIES
                     TIMEOUT 60)
# The README's Python example (a slow SQLite query's result as a pandas
# DataFrame, kept across processes), run as a user runs it, through
# Debian's /usr/bin/python3 and the build tree's package; its README
# fragment is checked to be an excerpt of it.
add_test(NAME example_python_sales_frame
         COMMAND ${CMAKE_COMMAND} -E env LARDER_CC=${CMAKE_C_COMPILER}
                 sh ${CMAKE_CURRENT_SOURCE_DIR}/examples/python_sales.sh
                 ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}
                 $<IF:$<BOOL:${LARDER_SANITIZE}>,ON,OFF>)
set_tests_properties(example_python_sales_frame PROPERTIES
                     TIMEOUT 300 SKIP_RETURN_CODE 77)
