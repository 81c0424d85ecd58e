# File versions (larder_files_version): equality, remembering, racy
# timestamps, trees, errors, and writers changing the sources meanwhile.
larder_test(test_version test_version.c)
