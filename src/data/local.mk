# data: IDX / CIFAR loaders, data set operations, the epoch sampler, [data] -> sets.
src_libmpicnn_la_SOURCES += src/data/idx.c src/data/cifar.c \
	src/data/dataset.c src/data/sampler.c src/data/dataprep.c src/data/resize.c \
	src/data/pack.c src/data/pack_list.c src/data/pack_impl.h
noinst_HEADERS += include/mpicnn/data.h include/mpicnn/dataprep.h include/mpicnn/resize.h \
	include/mpicnn/pack.h
check_PROGRAMS += tests/test_data
check_PROGRAMS += tests/test_sampler
# tests/test_resize: area / bilinear resizing against a naive reference, channel conversion
check_PROGRAMS += tests/test_resize
TESTS += tests/test_data tests/test_sampler tests/test_resize
