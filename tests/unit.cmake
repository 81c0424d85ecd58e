# Unit and multi-process tests of the entry format and the store.
larder_test(test_format test_format.c)
