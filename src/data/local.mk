# data: IDX / CIFAR / DATA.h5 readers, augmentation, batch sources, data set operations, the epoch sampler, [data] -> sets.
src_libmpicnn_la_SOURCES += src/data/idx.c src/data/cifar.c \
	src/data/dataset.c src/data/sampler.c src/data/dataprep.c src/data/resize.c \
	src/data/pack.c src/data/pack_list.c src/data/pack_impl.h \
	src/data/hdf5.c src/data/augment.c src/data/source.c
noinst_HEADERS += include/mpicnn/data.h include/mpicnn/dataprep.h include/mpicnn/resize.h \
	include/mpicnn/pack.h include/mpicnn/source.h include/mpicnn/augment.h
check_PROGRAMS += tests/test_data
check_PROGRAMS += tests/test_sampler
# tests/test_resize: area / bilinear resizing against a naive reference, channel conversion
check_PROGRAMS += tests/test_resize
TESTS += tests/test_data tests/test_sampler tests/test_resize
# tests/make_datafile writes an IDX pair as a DATA.h5 (tests, make bench-data)
check_PROGRAMS += tests/make_datafile
check_PROGRAMS += tests/test_augment tests/test_source
TESTS += tests/test_augment tests/test_source tests/test_datafile.sh
EXTRA_DIST += tests/test_datafile.sh
