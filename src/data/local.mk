# data: IDX / CIFAR loaders, data set operations, the epoch sampler, [data] -> sets.
src_libmpicnn_la_SOURCES += src/data/idx.c src/data/cifar.c \
	src/data/dataset.c src/data/sampler.c src/data/dataprep.c
noinst_HEADERS += include/mpicnn/data.h include/mpicnn/dataprep.h
check_PROGRAMS += tests/test_data
check_PROGRAMS += tests/test_sampler
TESTS += tests/test_data tests/test_sampler
