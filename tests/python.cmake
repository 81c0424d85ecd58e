# The Python binding's tests (python/tests, pytest through
# /usr/bin/python3); they skip, with the reason, where the binding is not
# built or pytest is missing. Under the sanitizer build they run with
# the compiler's ASan and UBSan runtimes preloaded into the interpreter.
add_test(NAME python
         COMMAND ${CMAKE_COMMAND} -E env LARDER_CC=${CMAKE_C_COMPILER}
                 sh ${CMAKE_SOURCE_DIR}/python/tests/run.sh ${CMAKE_BINARY_DIR}
                 $<IF:$<BOOL:${LARDER_SANITIZE}>,ON,OFF>)
set_tests_properties(python PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
# sql() against a real PostgreSQL server: python/tests/test_sql_pg.py under
# the private server tests/pg/run.sh starts and stops (as sql_pg does);
# skipped where PostgreSQL cannot be installed or run.
add_test(NAME python_pg
         COMMAND ${CMAKE_COMMAND} -E env LARDER_CC=${CMAKE_C_COMPILER}
                 LARDER_PY_TESTS=test_sql_pg.py
                 sh ${CMAKE_SOURCE_DIR}/tests/pg/run.sh
                 sh ${CMAKE_SOURCE_DIR}/python/tests/run.sh ${CMAKE_BINARY_DIR}
                 $<IF:$<BOOL:${LARDER_SANITIZE}>,ON,OFF>)
set_tests_properties(python_pg PROPERTIES
  TIMEOUT 900
  SKIP_RETURN_CODE 77
  RESOURCE_LOCK larder_pg)
