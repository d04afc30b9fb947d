# nn: the network (shape inference, memory plan, forward/backward) and the optimizers.
src_libmpicnn_la_SOURCES += src/nn/net.c src/nn/optim.c
noinst_HEADERS += include/mpicnn/net.h include/mpicnn/optim.h
check_PROGRAMS += tests/test_net
tests_test_net_SOURCES = tests/test_net.c
tests_test_net_CFLAGS = $(TEST_CFLAGS)
tests_test_net_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/test_optim
tests_test_optim_SOURCES = tests/test_optim.c
tests_test_optim_CFLAGS = $(TEST_CFLAGS)
tests_test_optim_LDADD = $(TEST_LIBS)
TESTS += tests/test_net tests/test_optim
