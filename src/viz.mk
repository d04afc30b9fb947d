# viz module: PNG I/O, image filters through the conv layer (mpicnn
# filter) and the k-NN baseline (mpicnn knn). Included from the top-level
# Makefile.am; paths are relative to the top.
src_libmpicnn_la_SOURCES += src/png.c src/filter.c src/knn.c
src_mpicnn_SOURCES += src/cli/filter.c src/cli/knn.c
pkginclude_HEADERS += include/mpicnn/png.h include/mpicnn/filter.h \
	include/mpicnn/knn.h

check_PROGRAMS += tests/test_filter tests/test_knn
tests_test_filter_SOURCES = tests/test_filter.c
tests_test_filter_CFLAGS = $(TEST_CFLAGS)
tests_test_filter_LDADD = $(TEST_LIBS)
tests_test_knn_SOURCES = tests/test_knn.c
tests_test_knn_CFLAGS = $(TEST_CFLAGS)
tests_test_knn_LDADD = $(TEST_LIBS)
TESTS += tests/test_filter tests/test_knn tests/test_knn_mpi.sh
EXTRA_DIST += tests/test_knn_mpi.sh
