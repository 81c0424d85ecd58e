# The read path: what a reader hands out is what it verified, streaming,
# compressed entries, newer formats and traps at entry names (test_read.c).
larder_test(test_read test_read.c)
