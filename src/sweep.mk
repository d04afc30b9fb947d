# sweep module: grid expansion and the sweep runner (mpicnn sweep).
# Included at the end of the top-level Makefile.am; paths are relative to
# the top.
src_libmpicnn_la_SOURCES += src/sweep.c
src_mpicnn_SOURCES += src/cli/sweep.c
pkginclude_HEADERS += include/mpicnn/sweep.h

check_PROGRAMS += tests/test_sweep
tests_test_sweep_SOURCES = tests/test_sweep.c tests/synth.h
tests_test_sweep_CFLAGS = $(TEST_CFLAGS)
tests_test_sweep_LDADD = $(TEST_LIBS)
TESTS += tests/test_sweep tests/test_sweep_np2.sh tests/test_sweep_np3.sh \
	tests/test_sweep_cli.sh
EXTRA_DIST += tests/test_sweep_np2.sh tests/test_sweep_np3.sh tests/test_sweep_cli.sh
