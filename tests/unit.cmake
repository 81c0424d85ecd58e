# Unit and multi-process tests of the entry format and the store.
larder_test(test_format test_format.c)
larder_test(test_store test_store.c)
# The memo of verified entries: repeat hits, its checks, bounds, fork.
larder_test(test_memo test_memo.c)
# The head cache: version-less lookups, its checks, bound, fork.
larder_test(test_head test_head.c)
target_link_libraries(test_head PRIVATE pthread)
target_link_libraries(test_memo PRIVATE pthread)
larder_test(test_concurrency test_concurrency.c)
# The public API's own promises: inits, versions, messages, callbacks.
larder_test(test_api test_api.c)
target_link_libraries(test_api PRIVATE pthread)
# The storage seam's conformance suite (docs/backends.md): every case on
# the store's own directory, and again on a directory opened by path.
# LARDER_TEST_BACKEND=<where> runs it on another backend.
larder_test(test_backend test_backend.c)
add_test(NAME test_backend_dir COMMAND test_backend)
set_tests_properties(test_backend_dir PROPERTIES TIMEOUT 900
                     SKIP_RETURN_CODE 77 ENVIRONMENT LARDER_TEST_BACKEND=dir)
# ... and on a tier: the store's own directory in front of a shared one.
add_test(NAME test_backend_tier COMMAND test_backend)
set_tests_properties(test_backend_tier PROPERTIES TIMEOUT 900
                     SKIP_RETURN_CODE 77 ENVIRONMENT LARDER_TEST_BACKEND=tier:dir)
