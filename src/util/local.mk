# util: status codes and messages, number lists (CSV).
src_libmpicnn_la_SOURCES += src/util/status.c src/util/csv.c
noinst_HEADERS += include/mpicnn/status.h include/mpicnn/csv.h
