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
