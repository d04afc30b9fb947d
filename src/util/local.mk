# util: status codes and messages, number lists (CSV), files (the atomic writer,
# mkdir -p), randomness and hashing, string trimming.
src_libmpicnn_la_SOURCES += src/util/status.c src/util/csv.c src/util/fs.c src/util/rng.c \
	src/util/str.c
noinst_HEADERS += include/mpicnn/status.h include/mpicnn/csv.h include/mpicnn/fs.h include/mpicnn/rng.h \
	include/mpicnn/str.h
check_PROGRAMS += tests/test_fs
TESTS += tests/test_fs
