# io: the checked HDF5 layer, the model and checkpoint files (and the training state
# they hold), PNG images, the ONNX export (pb.c: the protobuf wire format).
src_libmpicnn_la_SOURCES += src/io/h5io.c src/io/model.c src/io/checkpoint.c src/io/png.c \
	src/io/jpeg.c src/io/datafile.c src/io/train_state.c \
	src/io/pb.c src/io/pb.h src/io/onnx.c
noinst_HEADERS += include/mpicnn/h5io.h include/mpicnn/model.h include/mpicnn/checkpoint.h \
	include/mpicnn/png.h include/mpicnn/jpeg.h include/mpicnn/datafile.h include/mpicnn/train_state.h \
	include/mpicnn/onnx.h
check_PROGRAMS += tests/test_model
TESTS += tests/test_model
check_PROGRAMS += tests/test_onnx
TESTS += tests/test_onnx
