# SQL sources (SQLite here; PostgreSQL in its own file): the normalizer,
# the formats, versions, tracked tables, errors, concurrency, memory.
larder_test(test_sql test_sql.c)
# libsqlite3 itself too: the test makes its databases through it
# (liblarder loads it only when a call opens one).
target_link_libraries(test_sql PRIVATE PkgConfig::SQLITE3)

# The command line: tests/cli/sql.sh drives the built `larder` and the
# sqlite3 tool.
if(TARGET larder_cli)
  add_test(NAME cli_sql
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/sql.sh
                   $<TARGET_FILE:larder_cli>)
  set_tests_properties(cli_sql PROPERTIES TIMEOUT 300
                       SKIP_REGULAR_EXPRESSION "SKIP: ")
endif()
