#!/bin/sh
# test_sweep under mpirun -np 2: two groups of one rank (rank 0 trains
# too), and one group of two for ranks_per_trial = 2.
exec ${MPIEXEC:-mpirun} -np 2 --oversubscribe "${top_builddir:-.}/tests/test_sweep"
