# config module: INI config parser (libinih), overrides, resolved text.
src_libmpicnn_la_SOURCES += src/config.c
pkginclude_HEADERS += include/mpicnn/config.h
check_PROGRAMS += tests/test_config
tests_test_config_SOURCES = tests/test_config.c
tests_test_config_CFLAGS = $(TEST_CFLAGS)
tests_test_config_LDADD = $(TEST_LIBS)
TESTS += tests/test_config
