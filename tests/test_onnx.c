/* test_onnx.c - the protobuf wire format (src/io/pb.c) against known byte
 * sequences (the protobuf encoding guide's examples among them), and the
 * ONNX model of a small net: the header fields, one node byte for byte,
 * and the error for a layer type without a mapping. ONNX Runtime itself
 * runs exported models in tests/test_export.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/pb.h"
#include "mpicnn/net.h"
#include "mpicnn/onnx.h"

/* b holds exactly the n bytes of want. */
static void assert_bytes(const cnn_pb_t *b, const uint8_t *want, size_t n)
{
    assert_int_equal(cnn_pb_status(b), CNN_OK);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_varint(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        uint8_t bytes[10];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {1, {0x01}, 1},
        {127, {0x7f}, 1},
        {128, {0x80, 0x01}, 2},
        {150, {0x96, 0x01}, 2},
        {300, {0xac, 0x02}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
        {UINT64_MAX, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_pb_t b = {0};
        cnn_pb_varint(&b, cases[i].v);
        assert_bytes(&b, cases[i].bytes, cases[i].n);
        cnn_pb_free(&b);
    }
}

static void test_fields(void **state)
{
    (void)state;
    cnn_pb_t b = {0}, sub = {0};
    /* int32 a = 1 set to 150 */
    cnn_pb_int(&b, 1, 150);
    assert_bytes(&b, (const uint8_t[]){0x08, 0x96, 0x01}, 3);
    /* a negative int64 takes ten bytes */
    b.len = 0;
    cnn_pb_int(&b, 1, -1);
    assert_bytes(&b, (const uint8_t[]){0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x01}, 11);
    /* string b = 2 set to "testing" */
    b.len = 0;
    cnn_pb_string(&b, 2, "testing");
    assert_bytes(&b, (const uint8_t[]){0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}, 9);
    /* float f = 2 set to 1.0 (fixed32, little-endian) and -2.5 */
    b.len = 0;
    cnn_pb_float(&b, 2, 1.0f);
    cnn_pb_float(&b, 2, -2.5f);
    assert_bytes(&b, (const uint8_t[]){0x15, 0x00, 0x00, 0x80, 0x3f, 0x15, 0x00, 0x00, 0x20, 0xc0},
                 10);
    /* Test1 c = 3 holding a = 150; a field number above 15 takes two tag bytes */
    b.len = 0;
    cnn_pb_int(&sub, 1, 150);
    cnn_pb_message(&b, 3, &sub);
    cnn_pb_int(&b, 20, 7);
    assert_bytes(&b, (const uint8_t[]){0x1a, 0x03, 0x08, 0x96, 0x01, 0xa0, 0x01, 0x07}, 8);
    /* an empty sub-message and empty bytes */
    b.len = 0;
    cnn_pb_t empty = {0};
    cnn_pb_message(&b, 7, &empty);
    cnn_pb_bytes(&b, 9, NULL, 0);
    assert_bytes(&b, (const uint8_t[]){0x3a, 0x00, 0x4a, 0x00}, 4);
    /* a failed sub-message fails its parent */
    sub.failed = 1;
    cnn_pb_message(&b, 3, &sub);
    assert_int_equal(cnn_pb_status(&b), CNN_ENOMEM);
    cnn_pb_free(&b);
    cnn_pb_free(&sub);
}

static cnn_layer_spec_t L(const char *name, const char *type)
{
    cnn_layer_spec_t s = {0};
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.type, sizeof s.type, "%s", type);
    return s;
}

/* The bytes of a file, malloc'd. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* 1 if the m bytes of needle occur in the n bytes of hay. */
static int contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m)) return 1;
    return 0;
}

/* relu "r" on (1, 2, 2) images, as ONNX */
static void test_model_bytes(void **state)
{
    (void)state;
    cnn_layer_spec_t specs[] = {L("r", "relu")};
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(specs, 1, (cnn_shape_t){1, 1, 2, 2}, 1, &net), CNN_OK);
    char path[] = "/tmp/mpicnn-test-onnx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *names[] = {"a", "b\"c", "d", "e"};
    const cnn_onnx_model_t om = {.layers = net->layers, .nlayers = 1, .input = net->input,
                                 .output = net->output, .class_names = names, .nclasses = 4,
                                 .version = "9.8.7"};
    assert_int_equal(cnn_onnx_export(path, &om), CNN_OK);
    size_t n;
    uint8_t *m = slurp(path, &n);
    /* ir_version 7 first, then producer_name and producer_version */
    static const uint8_t head[] = {0x08, 0x07, 0x12, 0x06, 'm', 'p', 'i', 'c', 'n', 'n',
                                   0x1a, 0x05, '9', '.', '8', '.', '7'};
    assert_true(n > sizeof head);
    assert_memory_equal(m, head, sizeof head);
    /* the node: input "input", output and name "r", op_type "Relu" */
    static const uint8_t node[] = {0x0a, 0x13, 0x0a, 0x05, 'i', 'n', 'p', 'u', 't', 0x12, 0x01,
                                   'r', 0x1a, 0x01, 'r', 0x22, 0x04, 'R', 'e', 'l', 'u'};
    assert_true(contains(m, n, node, sizeof node));
    /* opset_import { version 13 } */
    static const uint8_t opset[] = {0x42, 0x02, 0x10, 0x0d};
    assert_true(contains(m, n, opset, sizeof opset));
    /* the class names as JSON, with the quote escaped */
    const char *json = "[\"a\",\"b\\\"c\",\"d\",\"e\"]";
    assert_true(contains(m, n, json, strlen(json)));
    /* the dynamic batch of the input */
    assert_true(contains(m, n, "\x12\x01N", 3));
    free(m);
    unlink(path);
    cnn_net_free(net);
}

/* a type without a mapping: CNN_ECONFIG naming the layer and type, no file */
static void test_no_mapping(void **state)
{
    (void)state;
    cnn_layer_spec_t specs[] = {L("r", "relu"), L("second", "relu")};
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(specs, 2, (cnn_shape_t){1, 1, 2, 2}, 1, &net), CNN_OK);
    cnn_layer_ops_t unmapped = *net->layers[1].ops;
    unmapped.onnx = NULL;
    unmapped.type = "novel";
    net->layers[1].ops = &unmapped;
    const char *path = "/tmp/mpicnn-test-onnx-unmapped.onnx";
    unlink(path);
    const cnn_onnx_model_t om = {.layers = net->layers, .nlayers = 2, .input = net->input,
                                 .output = net->output};
    assert_int_equal(cnn_onnx_export(path, &om), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "layer 'second' (type 'novel')"));
    assert_int_equal(access(path, F_OK), -1);
    cnn_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_model_bytes),
        cmocka_unit_test(test_no_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
