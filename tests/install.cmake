# `make install` and pkg-config give a working library and tool. A
# sanitized library needs a sanitized program in front of it.
if(LARDER_SANITIZE)
  set(install_app_cflags "-fsanitize=address,undefined")
else()
  set(install_app_cflags "")
endif()
add_test(NAME install_pkgconfig
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install/install.sh
                 ${CMAKE_BINARY_DIR} "${install_app_cflags}")
set_tests_properties(install_pkgconfig PROPERTIES TIMEOUT 120)
# ... and the Python package (python/), where /usr/bin/python3 finds it.
add_test(NAME install_python
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install/python.sh
                 ${CMAKE_BINARY_DIR} $<IF:$<BOOL:${LARDER_SANITIZE}>,ON,OFF>)
set_tests_properties(install_python PROPERTIES TIMEOUT 120
                     SKIP_RETURN_CODE 77)
