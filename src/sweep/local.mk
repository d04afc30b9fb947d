# sweep: grid search and successive halving on groups of ranks (docs/sweeps.md).
src_libmpicnn_la_SOURCES += src/sweep/grid.c src/sweep/journal.c src/sweep/schedule.c \
	src/sweep/resume.c src/sweep/runner.c src/sweep/report.c
noinst_HEADERS += include/mpicnn/sweep.h src/sweep/sweep_impl.h
check_PROGRAMS += tests/test_sweep
tests_test_sweep_SOURCES = tests/test_sweep.c tests/synth.h
TESTS += tests/test_sweep tests/test_sweep_np2.sh tests/test_sweep_np3.sh
EXTRA_DIST += tests/test_sweep_np2.sh tests/test_sweep_np3.sh
