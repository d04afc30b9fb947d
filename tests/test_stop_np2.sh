#!/bin/sh
# test_stop under mpirun -np 2: a stop requested on one rank before the
# first step stops both, with checkpoint.none; --resume starts afresh.
exec timeout -k 5 120 ${MPIEXEC:-mpirun} -np 2 --oversubscribe "${top_builddir:-.}/tests/test_stop"
