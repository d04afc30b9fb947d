/* augment.h - random changes to training images ([augment]).
 *
 * Pure functions on one uint8 image (c,h,w), before normalisation:
 *   crop_pad = P  pad every side with P zero pixels and crop a random
 *                 h x w window back (torchvision's RandomCrop(padding=P));
 *   flip          mirror left-right with probability 1/2;
 *   cutout = N    zero an N x N square (clipped at the borders) centred on
 *                 a random pixel (DeVries and Taylor).
 * They run in that order. Every draw is cnn_hash4(seed, epoch, index, k)
 * for a fixed k per draw, where index is the image's index in the
 * training split: the same image of the same epoch changes the same way
 * whatever the rank count, the load mode or a resume. */
#ifndef MPICNN_AUGMENT_H
#define MPICNN_AUGMENT_H

#include <stdint.h>

#include "mpicnn/config.h"

/* 1 if a changes anything (some key is not at its default). */
int cnn_augment_enabled(const cnn_augment_config_t *a);

/* Applies a to img (c,h,w) in place; scratch has room for one image
 * (c*h*w bytes). Draws from (seed, epoch, index) as above. */
void cnn_augment_image(const cnn_augment_config_t *a, uint64_t seed, long epoch, uint64_t index,
                       int c, int h, int w, uint8_t *img, uint8_t *scratch);

#endif
