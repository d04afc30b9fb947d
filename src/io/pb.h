/* pb.h - the protocol buffers wire format, for writing ONNX files.
 *
 * A cnn_pb_t is a growing byte buffer a message is encoded into, field by
 * field: a tag (field number << 3 | wire type) then a varint, a fixed32
 * or a length-delimited run of bytes (strings, bytes, sub-messages). A
 * sub-message is encoded into its own buffer first and appended with
 * cnn_pb_message(), which prefixes its length. A failed allocation makes
 * the buffer sticky-failed: later calls do nothing and cnn_pb_status()
 * reports CNN_ENOMEM, so encoders check once at the end. */
#ifndef MPICNN_PB_H
#define MPICNN_PB_H

#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"

typedef struct {
    uint8_t *data; /* len bytes, owned: cnn_pb_free */
    size_t len, cap;
    int failed;    /* 1 after an allocation failed */
} cnn_pb_t;

/* Protobuf wire types. */
enum { CNN_PB_VARINT = 0, CNN_PB_LEN = 2, CNN_PB_FIXED32 = 5 };

/* Releases b's bytes and empties it (a zeroed cnn_pb_t is empty). */
void cnn_pb_free(cnn_pb_t *b);

/* CNN_OK, or CNN_ENOMEM (recorded) if an append failed. */
cnn_status_t cnn_pb_status(const cnn_pb_t *b);

/* Appends n raw bytes. */
void cnn_pb_raw(cnn_pb_t *b, const void *p, size_t n);
/* Appends v as a base-128 varint (1 to 10 bytes). */
void cnn_pb_varint(cnn_pb_t *b, uint64_t v);
/* Appends the tag of field `field` with wire type `wire`. */
void cnn_pb_tag(cnn_pb_t *b, int field, int wire);
/* An int64/int32/enum field; negative values take 10 bytes (two's
 * complement), as protobuf encodes them. */
void cnn_pb_int(cnn_pb_t *b, int field, int64_t v);
/* A float field (fixed32, IEEE 754 little-endian). */
void cnn_pb_float(cnn_pb_t *b, int field, float v);
/* A bytes field of n bytes. */
void cnn_pb_bytes(cnn_pb_t *b, int field, const void *p, size_t n);
/* A string field (its bytes without the NUL). */
void cnn_pb_string(cnn_pb_t *b, int field, const char *s);
/* A sub-message field holding sub's bytes (sub is left as it is; a
 * failed sub fails b). */
void cnn_pb_message(cnn_pb_t *b, int field, const cnn_pb_t *sub);

#endif
