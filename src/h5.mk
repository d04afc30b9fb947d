# h5io + model module: the checked HDF5 layer and the model file format
# (docs/model-format.md). Included at the end of the top-level Makefile.am.
src_libmpicnn_la_SOURCES += src/h5io.c src/model.c
pkginclude_HEADERS += include/mpicnn/h5io.h include/mpicnn/model.h

check_PROGRAMS += tests/test_model
tests_test_model_SOURCES = tests/test_model.c
tests_test_model_CFLAGS = $(TEST_CFLAGS)
tests_test_model_LDADD = $(TEST_LIBS)
TESTS += tests/test_model
