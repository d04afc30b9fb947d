#!/bin/sh
# test_fault under mpirun -np 2: the watchdog's arrival check and the
# message of an agreed failure, with a real peer.
exec timeout -k 5 60 ${MPIEXEC:-mpirun} -np 2 --oversubscribe "${top_builddir:-.}/tests/test_fault"
