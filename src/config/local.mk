# config: the INI config (libinih), --set overrides, validation, resolved text.
src_libmpicnn_la_SOURCES += src/config/config.c
noinst_HEADERS += include/mpicnn/config.h
check_PROGRAMS += tests/test_config
TESTS += tests/test_config
