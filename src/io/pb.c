/* pb.c - the protocol buffers wire format (pb.h). */
#include "pb.h"

#include <stdlib.h>
#include <string.h>

void cnn_pb_free(cnn_pb_t *b)
{
    if (!b) return;
    free(b->data);
    *b = (cnn_pb_t){0};
}

cnn_status_t cnn_pb_status(const cnn_pb_t *b)
{
    return b->failed ? cnn_error_set(CNN_ENOMEM, "out of memory encoding the ONNX model") : CNN_OK;
}

/* Room for n more bytes, doubling the capacity. */
static int reserve(cnn_pb_t *b, size_t n)
{
    if (b->failed) return 0;
    if (n <= b->cap - b->len) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return 0;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void cnn_pb_raw(cnn_pb_t *b, const void *p, size_t n)
{
    if (n == 0 || !reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void cnn_pb_varint(cnn_pb_t *b, uint64_t v)
{
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) buf[n] |= 0x80;
        n++;
    } while (v);
    cnn_pb_raw(b, buf, n);
}

void cnn_pb_tag(cnn_pb_t *b, int field, int wire)
{
    cnn_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}

void cnn_pb_int(cnn_pb_t *b, int field, int64_t v)
{
    cnn_pb_tag(b, field, CNN_PB_VARINT);
    cnn_pb_varint(b, (uint64_t)v);
}

void cnn_pb_float(cnn_pb_t *b, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    const uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    cnn_pb_tag(b, field, CNN_PB_FIXED32);
    cnn_pb_raw(b, le, sizeof le);
}

void cnn_pb_bytes(cnn_pb_t *b, int field, const void *p, size_t n)
{
    cnn_pb_tag(b, field, CNN_PB_LEN);
    cnn_pb_varint(b, n);
    cnn_pb_raw(b, p, n);
}

void cnn_pb_string(cnn_pb_t *b, int field, const char *s)
{
    cnn_pb_bytes(b, field, s, strlen(s));
}

void cnn_pb_message(cnn_pb_t *b, int field, const cnn_pb_t *sub)
{
    if (sub->failed) b->failed = 1;
    cnn_pb_bytes(b, field, sub->data, sub->len);
}
