# data: IDX / CIFAR loaders, data set operations, the epoch sampler, [data] -> sets.
src_libmpicnn_la_SOURCES += src/data/idx.c src/data/cifar.c \
	src/data/dataset.c src/data/sampler.c src/data/dataprep.c
noinst_HEADERS += include/mpicnn/data.h include/mpicnn/dataprep.h
check_PROGRAMS += tests/test_data
tests_test_data_SOURCES = tests/test_data.c
tests_test_data_CFLAGS = $(TEST_CFLAGS)
tests_test_data_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/test_sampler
tests_test_sampler_SOURCES = tests/test_sampler.c
tests_test_sampler_CFLAGS = $(TEST_CFLAGS)
tests_test_sampler_LDADD = $(TEST_LIBS)
TESTS += tests/test_data tests/test_sampler
