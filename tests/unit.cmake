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
