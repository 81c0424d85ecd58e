# The Python binding's tests (python/tests, pytest through
# /usr/bin/python3); they skip, with the reason, where the binding is not
# built or pytest is missing. Under the sanitizer build they run with
# the compiler's ASan and UBSan runtimes preloaded into the interpreter.
add_test(NAME python
         COMMAND ${CMAKE_COMMAND} -E env LARDER_CC=${CMAKE_C_COMPILER}
                 sh ${CMAKE_SOURCE_DIR}/python/tests/run.sh ${CMAKE_BINARY_DIR}
                 $<IF:$<BOOL:${LARDER_SANITIZE}>,ON,OFF>)
set_tests_properties(python PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
