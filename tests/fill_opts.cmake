# What larder_get_or_fill accepts (the shortest lease, waits) and how a
# caller stops it (the cancel flag).
larder_test(test_fill_opts test_fill_opts.c)
target_link_libraries(test_fill_opts PRIVATE m)
