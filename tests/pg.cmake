# The PostgreSQL source against a real server (issue 4): tests/pg/pg.sh
# initdb's a private cluster in /tmp/larder-pg, starts it on 127.0.0.1 and
# a private port, and stops it by pid; tests/pg/run.sh wraps the test
# program with start and stop (from a trap). Installs PostgreSQL with
# apt-get if missing; where that cannot be done the test prints
# "SKIP: <reason>" and exits 77 (CTest reports it skipped).
# docs/testing.md has more.
#
# Not registered through larder_test(): the program needs the server that
# run.sh starts, so CTest runs run.sh.
add_executable(test_sql_pg test_sql_pg.c)
target_compile_definitions(test_sql_pg PRIVATE _GNU_SOURCE)
# libpq itself too: the test program sets up its databases through it
# (liblarder loads it only when a call needs it).
target_link_libraries(test_sql_pg PRIVATE larder_static larder_harness
                      larder_store_util PkgConfig::LIBPQ)
add_test(NAME sql_pg
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/pg/run.sh
                 $<TARGET_FILE:test_sql_pg>)
# One server per machine at a time (fixed base directory; run.sh also
# takes a lock, for runs from other build directories).
set_tests_properties(sql_pg PROPERTIES
  TIMEOUT 600
  SKIP_RETURN_CODE 77
  RESOURCE_LOCK larder_pg)
# The `larder` tool, for the command-line test.
if(TARGET larder_cli)
  set_tests_properties(sql_pg PROPERTIES
    ENVIRONMENT "LARDER_CLI=$<TARGET_FILE:larder_cli>")
endif()
