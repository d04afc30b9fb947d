# cli: the program src/mpicnn, main.c and one file per subcommand.
#   tests/test_pack.sh      mpicnn pack: 1 vs 2 ranks, a folder of every bad case, IDX and
#                           CIFAR sources, a killed pack (tests/make_images writes the inputs)
#   tests/test_jobs.sh      jobs/get-data.sh on local stand-ins (checksums), every seed job
#                           on small data files
#   tests/test_badinput.sh  a corpus of bad inputs (tests/make_badfiles) through the program
#   tests/test_slurm.sh     the jobs/*.slurm scripts on a one-node SLURM cluster it starts
#                           itself (SKIP without slurm-wlm)
#   tests/test_membudget.sh plans over a small explicit memory budget refused with exit 8
#                           (train on 1 and 2 ranks, eval, predict, knn, sweep trials)
#   tests/test_install.sh   make install DESTDIR=... from the build directory: the program,
#                           the man page, docs and jobs, and no header
#   tests/test_rundir.sh    one run at a time per run or sweep directory (exit 9,
#                           --lock-wait, the O_EXCL fallback), DIR/status after a signal
#                           to mpirun or a SIGKILL
#   tests/test_export.sh    mpicnn export: usage, the bad model corpus as eval, and ONNX
#                           Runtime (tests/ort_run.js) against predict --logits per layer type
#   tests/test_exitcodes.sh the exit codes and messages docs/reliability.md promises for
#                           --out "", unknown flags, --resume into nothing, an old run in
#                           DIR (--force), a changed sweep config, MPICNN_FAULT, | head
bin_PROGRAMS = src/mpicnn
src_mpicnn_SOURCES = src/cli/main.c src/cli/cli.h src/cli/args.c src/cli/common.c \
	src/cli/train.c src/cli/sweep.c src/cli/eval.c src/cli/predict.c src/cli/export.c src/cli/pack.c src/cli/info.c \
	src/cli/op.c src/cli/gradcheck.c src/cli/filter.c src/cli/knn.c src/cli/plot.c
src_mpicnn_LDADD = src/libmpicnn.la $(LIBDEPS)

check_PROGRAMS += tests/make_badfiles
tests_make_badfiles_LDADD = $(LIBDEPS)
check_PROGRAMS += tests/make_images
check_PROGRAMS += tests/make_model64
TESTS += tests/test_sweep_cli.sh tests/test_plot.sh tests/test_predict.sh tests/test_pack.sh \
	tests/test_jobs.sh tests/test_badinput.sh tests/test_slurm.sh tests/test_install.sh \
	tests/test_membudget.sh tests/test_rundir.sh tests/test_exitcodes.sh tests/test_graph.sh \
	tests/test_export.sh tests/test_predict_f64.sh tests/test_gradcheck.sh
EXTRA_DIST += tests/test_sweep_cli.sh tests/test_plot.sh tests/test_predict.sh tests/test_pack.sh \
	tests/test_jobs.sh tests/test_badinput.sh tests/test_slurm.sh tests/test_install.sh \
	tests/test_membudget.sh tests/test_rundir.sh tests/test_exitcodes.sh tests/test_graph.sh \
	tests/test_export.sh tests/ort_run.js tests/test_predict_f64.sh tests/test_gradcheck.sh \
	tests/model64_reference.py tests/cli_lib.sh
