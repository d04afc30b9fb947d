# tools: image filters through the conv layer, the k-NN baseline, pictures for mpicnn plot.
src_libmpicnn_la_SOURCES += src/tools/filter.c src/tools/knn.c src/tools/plot.c
noinst_HEADERS += include/mpicnn/filter.h include/mpicnn/knn.h include/mpicnn/plot.h
check_PROGRAMS += tests/test_filter
check_PROGRAMS += tests/test_knn
check_PROGRAMS += tests/test_plot
tests_test_plot_SOURCES = tests/test_plot.c tests/synth.h
TESTS += tests/test_filter tests/test_knn tests/test_knn_mpi.sh tests/test_plot
EXTRA_DIST += tests/test_knn_mpi.sh
