/* pngio.c - PNG writing and reading with libpng (see pngio.h). libpng reports errors by
 * longjmp, so every call into it sits behind one setjmp per function, and whatever
 * those functions own is declared volatile or kept outside the jump. */
#include "pngio.h"

#include <png.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIDE 16384

lp_status lp_image_init(lp_image *img, int w, int h, int channels, lp_error *err)
{
    memset(img, 0, sizeof *img);
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE || (channels != 1 && channels != 3))
        return lp_error_set(err, LP_ERR_ARG, "image of %d x %d x %d: sides must be 1..%d, channels 1 or 3",
                            w, h, channels, MAX_SIDE);
    img->px = calloc((size_t)w * h * channels, 1);
    if (!img->px) return lp_error_set(err, LP_ERR_NOMEM, "out of memory for a %d x %d image", w, h);
    img->w = w;
    img->h = h;
    img->channels = channels;
    return LP_OK;
}

void lp_image_free(lp_image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* libpng's error handler: keep its message, then jump back. */
static void on_png_error(png_structp png, png_const_charp msg)
{
    char *buf = png_get_error_ptr(png);
    if (buf) snprintf(buf, 200, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Encode img into the open file f. Returns 0, or -1 with why[] filled. */
static int encode(FILE *f, const lp_image *img, char why[200])
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, why, on_png_error, on_png_warning);
    if (!png) {
        snprintf(why, 200, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info) snprintf(why, 200, "out of memory");
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);   /* pictures are small, flat and committed to docs */
    png_write_info(png, info);
    size_t stride = (size_t)img->w * img->channels;
    for (int y = 0; y < img->h; y++) png_write_row(png, img->px + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

lp_status lp_png_write(const char *path, const lp_image *img, lp_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return lp_error_set(err, LP_ERR_IO, "%s: cannot create the file (%s)", path, strerror(errno));
    }
    FILE *f = fdopen(fd, "wb");
    char why[200] = "";
    const char *step = NULL;
    if (!f) step = "open";
    else if (encode(f, img, why)) step = "encode";
    else if (fflush(f) != 0 || ferror(f)) step = "write";
    else if (fsync(fileno(f)) != 0) step = "sync";
    else if (fchmod(fileno(f), 0644) != 0) step = "chmod";   /* mkstemp makes 0600 */
    if (f) {
        if (fclose(f) != 0 && !step) step = "close";
    } else close(fd);
    if (!step && rename(tmp, path) != 0) step = "rename";
    lp_status s = LP_OK;
    if (step) {
        int e = errno;
        unlink(tmp);
        if (!strcmp(step, "encode")) s = lp_error_set(err, LP_ERR_IO, "%s: PNG encoding failed: %s", path, why);
        else s = lp_error_set(err, LP_ERR_IO, "%s: cannot write the file (%s: %s)", path, step, strerror(e));
    }
    free(tmp);
    return s;
}

/* Decode the open file f into img. Returns 0, or -1 with why[] filled. */
static int decode(FILE *f, lp_image *img, char why[200])
{
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        snprintf(why, 200, "not a PNG file (bad signature)");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, why, on_png_error, on_png_warning);
    if (!png) {
        snprintf(why, 200, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info) snprintf(why, 200, "out of memory");
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, MAX_SIDE, MAX_SIDE);
    png_read_info(png, info);
    int type = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int ch = png_get_channels(png, info);
    if (ch != 1 && ch != 3) png_error(png, "unexpected channel count after conversion");
    size_t stride = png_get_rowbytes(png, info);
    px = malloc(stride * (size_t)h);
    rows = malloc((size_t)h * sizeof *rows);
    if (!px || !rows) png_error(png, "out of memory");
    for (int y = 0; y < h; y++) rows[y] = px + (size_t)y * stride;
    png_read_image(png, rows);   /* all passes of an interlaced file too */
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    img->w = w;
    img->h = h;
    img->channels = ch;
    img->px = px;
    return 0;
}

lp_status lp_png_read(const char *path, lp_image *img, lp_error *err)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error_set(err, LP_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    char why[200] = "";
    int r = decode(f, img, why);
    fclose(f);
    if (r) return lp_error_set(err, LP_ERR_DATA, "%s: not a valid PNG: %s", path, why);
    return LP_OK;
}
