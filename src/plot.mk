# plot module: `mpicnn plot RUN_DIR` (image grids with a built-in bitmap
# font, gnuplot charts). Included at the end of the top-level Makefile.am;
# paths are relative to the top.
#   tests/test_plot     the grid layouts, the font and the gnuplot runner
#   tests/test_plot.sh  train a tiny model on synthetic data, then
#                       `mpicnn plot` and `--activations` end to end
#                       (gnuplot parts SKIP without gnuplot)
src_libmpicnn_la_SOURCES += src/plot.c
src_mpicnn_SOURCES += src/cli/plot.c
pkginclude_HEADERS += include/mpicnn/plot.h

check_PROGRAMS += tests/test_plot
tests_test_plot_SOURCES = tests/test_plot.c tests/synth.h
tests_test_plot_CFLAGS = $(TEST_CFLAGS)
tests_test_plot_LDADD = $(TEST_LIBS)
TESTS += tests/test_plot tests/test_plot.sh tests/test_predict.sh
EXTRA_DIST += tests/test_plot.sh tests/test_predict.sh
