#!/bin/sh
# test_dist under mpirun -np 4: the gradient sum through shared memory on
# one node, through shared memory + MPI over two "nodes" of 2, and MPI only.
exec ${MPIEXEC:-mpirun} -np 4 --oversubscribe "${top_builddir:-.}/tests/test_dist"
