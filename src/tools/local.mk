# tools: image filters through the conv layer, the k-NN baseline, pictures for mpicnn plot.
src_libmpicnn_la_SOURCES += src/tools/filter.c src/tools/knn.c src/tools/plot.c
noinst_HEADERS += include/mpicnn/filter.h include/mpicnn/knn.h include/mpicnn/plot.h
check_PROGRAMS += tests/test_filter
tests_test_filter_SOURCES = tests/test_filter.c
tests_test_filter_CFLAGS = $(TEST_CFLAGS)
tests_test_filter_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/test_knn
tests_test_knn_SOURCES = tests/test_knn.c
tests_test_knn_CFLAGS = $(TEST_CFLAGS)
tests_test_knn_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/test_plot
tests_test_plot_SOURCES = tests/test_plot.c tests/synth.h
tests_test_plot_CFLAGS = $(TEST_CFLAGS)
tests_test_plot_LDADD = $(TEST_LIBS)
TESTS += tests/test_filter tests/test_knn tests/test_knn_mpi.sh tests/test_plot
EXTRA_DIST += tests/test_knn_mpi.sh
