/* idx.h - read IDX files (the MNIST format), raw or gzip, validated before use.
 *
 *   uint8_t *px; int n, rows, cols;
 *   if (lp_idx_read_images("data/mnist/train-images-idx3-ubyte", &px, &n, &rows, &cols, &err))
 *       ... err.msg names the file and what is wrong ...
 *   free(px);
 *
 * Format: a big-endian header - magic 0x00000803 then n, rows, cols for images,
 * magic 0x00000801 then n for labels - followed by exactly the bytes it declares.
 * Gzip is recognised by its magic bytes (1F 8B), never by the file name.
 *
 * Every header field is checked before anything is allocated: dimensions >= 1,
 * n <= LP_IDX_MAX_ITEMS, rows and cols <= LP_IDX_MAX_SIDE, payload <= LP_IDX_MAX_BYTES.
 * The payload must be exactly as long as the header says (a short file or trailing
 * bytes are errors giving expected vs actual sizes); a truncated or corrupt .gz is an
 * error, never a crash. All errors are LP_ERR_DATA (LP_ERR_IO when the file cannot be
 * opened or read, LP_ERR_NOMEM) and their message starts with the file's path.
 */
#ifndef LP_IDX_H
#define LP_IDX_H

#include "error.h"
#include <stdint.h>

#define LP_IDX_MAGIC_LABELS 0x00000801u
#define LP_IDX_MAGIC_IMAGES 0x00000803u

#define LP_IDX_MAX_ITEMS 10000000            /* images or labels in one file */
#define LP_IDX_MAX_SIDE  4096                /* rows, cols */
#define LP_IDX_MAX_BYTES (1LL << 30)         /* payload of one file (1 GiB) */

/* Read an images file: *pixels gets n*rows*cols bytes, row-major per image (the caller
 * frees it with free()). On error nothing is returned and *pixels is NULL. */
lp_status lp_idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols,
                             lp_error *err);

/* Read a labels file: *labels gets n bytes, each checked to be < max_class (1..256);
 * a label out of range is an error naming its index and value. Caller frees. */
lp_status lp_idx_read_labels(const char *path, int max_class, uint8_t **labels, int *n,
                             lp_error *err);

#endif
