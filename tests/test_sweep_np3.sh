#!/bin/sh
# test_sweep under mpirun -np 3: three groups of one rank, and with
# ranks_per_trial = 2 one group of two plus an idle rank.
exec ${MPIEXEC:-mpirun} -np 3 --oversubscribe "${top_builddir:-.}/tests/test_sweep"
