# The trust model of docs/security.md played by real Unix users: each
# script creates its users and group, attacks one group of promises as a
# member or an outsider, and removes them (tests/hostile/lib.sh).
if(TARGET larder_cli)
  foreach(t rewrite symlinks modes traps)
    add_test(NAME hostile_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/hostile/${t}.sh
                     $<TARGET_FILE:larder_cli>)
    set_tests_properties(hostile_${t} PROPERTIES TIMEOUT 900)
  endforeach()
endif()
