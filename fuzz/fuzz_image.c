/* fuzz_image.c - the PNG and JPEG readers on arbitrary bytes (the first
 * byte picks the reader and, for JPEG, whether DCT scaling is asked for),
 * then a resize of what they decode: a read never crashes, hands out an
 * image within the limits, and a bad file is a CNN_EDATA naming it. */
#include <string.h>

#include "fuzz_util.h"
#include "mpicnn/jpeg.h"
#include "mpicnn/png.h"
#include "mpicnn/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char path[256];
    if (fuzz_file("image", data + 1, size - 1, path, sizeof path)) return 0;
    cnn_image_t img;
    const int jpeg = data[0] & 1, scaled = data[0] & 2;
    cnn_status_t st = jpeg ? cnn_jpeg_read(path, scaled ? 3 : 0, scaled ? 3 : 0, &img)
                           : cnn_png_read(path, &img);
    if (st == CNN_OK) {
        if (img.w < 1 || img.h < 1 || img.channels < 1 || img.channels > 4 ||
            (size_t)img.w * (size_t)img.h > CNN_IMAGE_MAX_PIXELS)
            __builtin_trap();
        uint8_t out[5 * 4 * 4];
        cnn_rect_t r = cnn_resize_crop_rect(img.w, img.h, 5, 4);
        if (cnn_resize_u8(img.pixels, (size_t)img.w * (size_t)img.channels, img.channels, r, out,
                          5, 4) != CNN_OK)
            __builtin_trap();
        cnn_image_free(&img);
    } else if (st == CNN_EDATA && !strstr(cnn_error_message(), path)) {
        __builtin_trap();
    }
    remove(path);
    return 0;
}
