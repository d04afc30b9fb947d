# nn: the network (shape inference, memory plan, forward/backward) and the optimizers.
src_libmpicnn_la_SOURCES += src/nn/net.c src/nn/optim.c
noinst_HEADERS += include/mpicnn/net.h include/mpicnn/optim.h
check_PROGRAMS += tests/test_net
check_PROGRAMS += tests/test_optim
TESTS += tests/test_net tests/test_optim
