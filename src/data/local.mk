# data module: IDX / CIFAR loaders, data set operations, epoch sampler.
# Included from the top-level Makefile.am; paths are relative to the top.
src_libmpicnn_la_SOURCES += src/data/idx.c src/data/cifar.c \
	src/data/dataset.c src/data/sampler.c
pkginclude_HEADERS += include/mpicnn/data.h

check_PROGRAMS += tests/test_data tests/test_sampler
tests_test_data_SOURCES = tests/test_data.c
tests_test_data_CFLAGS = $(TEST_CFLAGS)
tests_test_data_LDADD = $(TEST_LIBS)
tests_test_sampler_SOURCES = tests/test_sampler.c
tests_test_sampler_CFLAGS = $(TEST_CFLAGS)
tests_test_sampler_LDADD = $(TEST_LIBS)
TESTS += tests/test_data tests/test_sampler
