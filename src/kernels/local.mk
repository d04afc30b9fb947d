# kernels: pure numeric kernels (im2col, GEMM wrappers, small GEMMs, Winograd, max pool).
src_libmpicnn_la_SOURCES += src/kernels/im2col.c src/kernels/winograd.c src/kernels/winograd_fused.c \
	src/kernels/gemm.c src/kernels/smallgemm.c src/kernels/maxpool.c src/kernels/util.c
noinst_HEADERS += include/mpicnn/kernels.h src/kernels/simd.h src/kernels/smallgemm_body.h \
	src/kernels/winograd_fused_body.h
check_PROGRAMS += tests/test_kernels
TESTS += tests/test_kernels
