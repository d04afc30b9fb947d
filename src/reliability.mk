# Reliability: the training watchdog, MPICNN_FAULT fault injection and
# the tests that prove docs/reliability.md. Included at the end of the
# top-level Makefile.am; paths are relative to the top.
#   tests/test_fault            cmocka: MPICNN_FAULT parsing and triggers, the
#                               watchdog's life cycle and arrival check, the
#                               message of an agreed failure (1 rank; and 2 in
#                               tests/test_fault_np2.sh)
#   tests/test_fault_ranks.sh   a rank killed, stopped, hung or slow (mpirun -np 2)
#   tests/test_fault_nan.sh     NaN on one rank (skip, stop); NaN weights not written
#   tests/test_fault_disk.sh    a failed write, a full disk, a read-only directory
#   tests/test_badinput.sh      a corpus of bad inputs through the program
#   tests/make_badfiles         writes that corpus (IDX, CIFAR, HDF5 variants)
#   make valgrind               2-rank runs under memcheck (not in make check)
#   fuzz/fuzz_model.c           the model-file reader under libFuzzer (make fuzz)
src_libmpicnn_la_SOURCES += src/fault.c src/watchdog.c
pkginclude_HEADERS += include/mpicnn/fault.h include/mpicnn/watchdog.h

check_PROGRAMS += tests/test_fault
tests_test_fault_SOURCES = tests/test_fault.c
tests_test_fault_CFLAGS = $(TEST_CFLAGS)
tests_test_fault_LDADD = $(TEST_LIBS)
TESTS += tests/test_fault tests/test_fault_np2.sh
EXTRA_DIST += tests/test_fault_np2.sh

TESTS += tests/test_fault_ranks.sh tests/test_fault_nan.sh tests/test_fault_disk.sh
EXTRA_DIST += tests/fault_lib.sh tests/small_run.sh tests/test_fault_ranks.sh tests/test_fault_nan.sh \
	tests/test_fault_disk.sh

check_PROGRAMS += tests/make_badfiles
tests_make_badfiles_SOURCES = tests/make_badfiles.c
tests_make_badfiles_LDADD = $(LIBDEPS)
TESTS += tests/test_badinput.sh
EXTRA_DIST += tests/test_badinput.sh

# the model-file fuzz target (make fuzz builds it with the others)
EXTRA_DIST += fuzz/fuzz_model.c

# --- make valgrind: the 2-rank training test (tests/test_train) and a
# 2-rank `mpicnn train` with the watchdog on, each rank under memcheck
# with Open MPI's suppressions (not part of make check: minutes, not
# seconds). A definite leak or any memory error fails it.
VALGRIND = valgrind
VALGRIND_SUPP = /usr/share/openmpi/openmpi-valgrind.supp
VALGRIND_FLAGS = --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --track-origins=yes --num-callers=30 \
	--suppressions=$(VALGRIND_SUPP) --suppressions=$(abs_top_srcdir)/tests/valgrind.supp
EXTRA_DIST += tests/valgrind.supp tests/valgrind.sh
.PHONY: valgrind
valgrind: tests/test_train tests/test_resume_synth src/mpicnn
	$(AM_TESTS_ENVIRONMENT) VALGRIND='$(VALGRIND) $(VALGRIND_FLAGS)' \
	$(SHELL) $(srcdir)/tests/valgrind.sh
