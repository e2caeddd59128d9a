/* pngio.h - PNG files through libpng: 8-bit grey or RGB, written atomically.
 *
 *   lp_image img;
 *   lp_image_init(&img, 280, 140, 3, &err);      // zeroed (black) RGB pixels
 *   ... draw (canvas.h) ...
 *   lp_png_write("filters.png", &img, &err);     // temp file + rename: all or nothing
 *   lp_image_free(&img);
 *   lp_png_read("filters.png", &back, &err);     // tests and checks
 */
#ifndef LP_PNGIO_H
#define LP_PNGIO_H

#include "error.h"
#include <stdint.h>

/* Pixels row by row, top row first, `channels` bytes a pixel (1 grey, 3 RGB). */
typedef struct lp_image {
    int w, h, channels;
    uint8_t *px;     /* [h, w, channels] */
} lp_image;

/* Allocate a w x h image of 1 or 3 channels, every byte 0. LP_ERR_ARG for a size
 * outside 1..16384 or other channels, LP_ERR_NOMEM. */
lp_status lp_image_init(lp_image *img, int w, int h, int channels, lp_error *err);
void lp_image_free(lp_image *img);

/* Write img to path as an 8-bit PNG. The bytes go to "path.tmp.XXXXXX" in the same
 * directory, are flushed, then renamed over path: a failure (no such directory, no
 * permission, full disk) leaves no file behind, and the message names path (LP_ERR_IO). */
lp_status lp_png_write(const char *path, const lp_image *img, lp_error *err);

/* Read a PNG of any bit depth and colour type, converted to 8 bits, grey (1 channel)
 * or RGB (3); alpha is dropped. LP_ERR_IO when it cannot be opened, LP_ERR_DATA when
 * it is not a valid PNG. On error *img is left empty. */
lp_status lp_png_read(const char *path, lp_image *img, lp_error *err);

#endif
