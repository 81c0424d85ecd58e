# Modes, ownership, the marker, symlinks and stray files in a store
# (docs/security.md): src/store.c, src/fsutil.c and the commands that
# create and configure a store.
larder_test(test_perms test_perms.c)
