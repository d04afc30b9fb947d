# config: the INI config (libinih), --set overrides, validation, resolved text.
src_libmpicnn_la_SOURCES += src/config/config.c
noinst_HEADERS += include/mpicnn/config.h
check_PROGRAMS += tests/test_config
tests_test_config_SOURCES = tests/test_config.c
tests_test_config_CFLAGS = $(TEST_CFLAGS)
tests_test_config_LDADD = $(TEST_LIBS)
TESTS += tests/test_config
