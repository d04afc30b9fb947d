# layers: one file per layer type behind the ops table, the registry, the losses.
src_libmpicnn_la_SOURCES += src/layers/registry.c src/layers/conv.c src/layers/conv_im2col.c \
	src/layers/conv_smallgemm.c src/layers/conv_winograd.c src/layers/conv_1x1.c \
	src/layers/conv_engine.h \
	src/layers/relu.c src/layers/pool.c src/layers/flatten.c src/layers/dense.c \
	src/layers/dropout.c src/layers/batchnorm.c src/layers/loss.c
noinst_HEADERS += include/mpicnn/layer.h include/mpicnn/loss.h src/layers/layer_util.h
check_PROGRAMS += tests/test_layers
tests_test_layers_SOURCES = tests/test_layers.c tests/naive.c tests/naive.h
check_PROGRAMS += tests/test_op
tests_test_op_SOURCES = tests/test_op.c tests/naive.c tests/naive.h
TESTS += tests/test_layers tests/test_op
