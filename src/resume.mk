# Resume, signals and SLURM (included at the end of Makefile.am).
#   tests/test_resume_np2.sh  checkpoint round trip and compatibility,
#                             resume of finished runs (cmocka, mpirun -np 2)
#   tests/test_resume.sh      SIGKILL / SIGUSR1 / a kill inside a checkpoint
#                             write, then --resume: bitwise the same weights
#   tests/test_slurm.sh       the jobs/*.slurm scripts on a one-node SLURM
#                             cluster it starts itself (SKIP without slurm-wlm)
check_PROGRAMS += tests/test_resume tests/test_resume_synth
tests_test_resume_SOURCES = tests/test_resume.c tests/synth.h
tests_test_resume_CFLAGS = $(TEST_CFLAGS)
tests_test_resume_LDADD = $(TEST_LIBS)
tests_test_resume_synth_SOURCES = tests/test_resume_synth.c tests/synth.h
TESTS += tests/test_resume_np2.sh tests/test_resume.sh tests/test_slurm.sh
EXTRA_DIST += tests/test_resume_np2.sh tests/test_resume.sh tests/test_slurm.sh
