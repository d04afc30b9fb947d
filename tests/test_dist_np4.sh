#!/bin/sh
# test_dist under mpirun -np 4: the gradient sum through shared memory on
# one node, through shared memory + MPI over two "nodes" of 2, and MPI only.
# (Bounded in time: a rank that fails alone would leave the others waiting.)
exec timeout -k 5 120 ${MPIEXEC:-mpirun} -np 4 --oversubscribe "${top_builddir:-.}/tests/test_dist"
