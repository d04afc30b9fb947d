# train: the data-parallel training loop, distributed evaluation.
#   tests/test_train(_np2.sh)  training on synthetic data, 1 and 2 ranks
#   tests/test_resume_np2.sh   checkpoint round trip and compatibility (cmocka, mpirun -np 2)
#   tests/test_resume.sh       SIGKILL / SIGUSR1 / a kill inside a checkpoint write, then
#                              --resume: bitwise the same weights
#   tests/test_fault_*.sh      a rank killed, stopped, hung or slow; NaN; failed writes;
#                              FIFO inputs with a signal; the default (auto) watchdog
#   tests/test_stop(_np2.sh)   a stop before the first step, then --resume from the start
#   tests/test_np_equiv(_syncbn).sh  -np 2 equals -np 1 at the same global batch (with
#                              synchronised batchnorm for a batchnorm net)
src_libmpicnn_la_SOURCES += src/train/train.c src/train/evaluate.c src/train/rundir.c
noinst_HEADERS += include/mpicnn/train.h include/mpicnn/evaluate.h include/mpicnn/rundir.h \
	tests/synth.h
check_PROGRAMS += tests/test_train
tests_test_train_SOURCES = tests/test_train.c tests/synth.h
check_PROGRAMS += tests/test_resume
tests_test_resume_SOURCES = tests/test_resume.c tests/synth.h
check_PROGRAMS += tests/test_stop
tests_test_stop_SOURCES = tests/test_stop.c tests/synth.h
check_PROGRAMS += tests/test_resume_synth
tests_test_resume_synth_SOURCES = tests/test_resume_synth.c tests/synth.h
TESTS += tests/test_train tests/test_train_np2.sh tests/test_resume_np2.sh tests/test_resume.sh \
	tests/test_fault_ranks.sh tests/test_fault_nan.sh tests/test_fault_disk.sh tests/test_stop \
	tests/test_stop_np2.sh tests/test_fault_inputs.sh tests/test_np_equiv.sh \
	tests/test_np_equiv_syncbn.sh
EXTRA_DIST += tests/test_train_np2.sh tests/test_resume_np2.sh tests/test_resume.sh \
	tests/fault_lib.sh tests/small_run.sh tests/test_fault_ranks.sh tests/test_fault_nan.sh \
	tests/test_fault_disk.sh tests/test_fault_inputs.sh tests/test_stop_np2.sh tests/test_np_equiv.sh \
	tests/test_np_equiv_syncbn.sh tests/np_equiv_lib.sh
