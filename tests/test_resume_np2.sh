#!/bin/sh
# test_resume under mpirun -np 2: checkpoint round trip, compatibility,
# bitwise resume with more epochs, finished and early-stopped runs, stale
# temp files, no silent restart, another world size refused.
exec timeout -k 5 120 ${MPIEXEC:-mpirun} -np 2 --oversubscribe "${top_builddir:-.}/tests/test_resume"
