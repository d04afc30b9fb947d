# parallel: checked MPI calls and the gradient sum, the watchdog, fault injection, the memory budget.
#   tests/test_fault        MPICNN_FAULT parsing and triggers, the watchdog's life
#                           cycle, the message of an agreed failure (1 and 2 ranks)
#   tests/test_memlimit     the node's memory limits from made-up cgroup, meminfo and
#                           Slurm values, and the budgets made from them
src_libmpicnn_la_SOURCES += src/parallel/dist.c src/parallel/watchdog.c src/parallel/fault.c \
	src/parallel/memlimit.c
noinst_HEADERS += include/mpicnn/dist.h include/mpicnn/watchdog.h include/mpicnn/fault.h \
	include/mpicnn/memlimit.h \
	tests/testutil.h
check_PROGRAMS += tests/test_dist
tests_test_dist_SOURCES = tests/test_dist.c tests/testutil.h
check_PROGRAMS += tests/test_fault
check_PROGRAMS += tests/test_memlimit
TESTS += tests/test_dist tests/test_dist_np4.sh tests/test_fault tests/test_fault_np2.sh \
	tests/test_memlimit
EXTRA_DIST += tests/test_dist_np4.sh tests/test_fault_np2.sh
