# layers: one file per layer type behind the ops table, the registry, the losses.
src_libmpicnn_la_SOURCES += src/layers/registry.c src/layers/conv.c src/layers/conv_im2col.c \
	src/layers/conv_smallgemm.c src/layers/conv_winograd.c src/layers/conv_1x1.c \
	src/layers/conv_stride2.c \
	src/layers/conv_engine.h \
	src/layers/relu.c src/layers/pool.c src/layers/flatten.c src/layers/dense.c \
	src/layers/dropout.c src/layers/batchnorm.c src/layers/loss.c \
	src/layers/add.c src/layers/concat.c
# the initialisers of conv and dense
src_libmpicnn_la_SOURCES += src/layers/init.c src/layers/init.h
noinst_HEADERS += include/mpicnn/layer.h include/mpicnn/loss.h src/layers/layer_util.h \
	src/layers/merge_util.h
# the activations besides relu, on layer_util.h's elementwise scaffolding
src_libmpicnn_la_SOURCES += src/layers/sigmoid.c src/layers/tanh.c src/layers/leaky_relu.c \
	src/layers/elu.c src/layers/gelu.c
# tests/test_activations_torch.sh: `mpicnn op` against PyTorch for every activation
# (a SKIP without python3-torch)
TESTS += tests/test_activations_torch.sh
EXTRA_DIST += tests/test_activations_torch.sh
check_PROGRAMS += tests/test_layers
tests_test_layers_SOURCES = tests/test_layers.c tests/naive.c tests/naive.h
check_PROGRAMS += tests/test_op
tests_test_op_SOURCES = tests/test_op.c tests/naive.c tests/naive.h
# tests/test_pool_torch.sh: `mpicnn op` pools against PyTorch (SKIP without torch)
TESTS += tests/test_layers tests/test_op tests/test_pool_torch.sh
EXTRA_DIST += tests/test_pool_torch.sh
check_PROGRAMS += tests/test_init
TESTS += tests/test_init
# tests/test_loss: label-smoothed softmax cross-entropy against a naive reference
check_PROGRAMS += tests/test_loss
TESTS += tests/test_loss
