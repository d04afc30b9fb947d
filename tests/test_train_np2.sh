#!/bin/sh
# test_train under mpirun -np 2: replicas, uneven shards, early stopping,
# model round trip, agreed errors.
exec ${MPIEXEC:-mpirun} -np 2 --oversubscribe "${top_builddir:-.}/tests/test_train"
