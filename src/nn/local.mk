# nn: the network (shape inference, memory plan, forward/backward), its
# double-precision runner and the optimizers.
src_libmpicnn_la_SOURCES += src/nn/net.c src/nn/net64.c src/nn/optim.c
noinst_HEADERS += include/mpicnn/net.h include/mpicnn/net64.h include/mpicnn/optim.h
check_PROGRAMS += tests/test_net
check_PROGRAMS += tests/test_optim
TESTS += tests/test_net tests/test_optim
