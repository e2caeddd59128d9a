/* canvas.h - drawing on an lp_image (pngio.h): rectangles, float maps upscaled by
 * nearest neighbour through a colour map, labels in a built-in 5x7 font, and the
 * layout of labelled grids.
 *
 *   lp_grid g;
 *   lp_grid_layout(&g, 8, 4, 78, 78, 6, LP_LABEL_H);  // 8 cells of 78x78, 4 a row
 *   lp_image img;  lp_image_init(&img, g.width, g.height, 3, &err);
 *   lp_canvas_fill(&img, LP_BACKGROUND);
 *   for each cell i: int x, y; lp_grid_cell(&g, i, &x, &y);
 *       lp_canvas_text(&img, x, y - LP_LABEL_H, "3", 1, LP_INK);
 *       lp_canvas_map(&img, x, y, map, 26, 26, 3, LP_MAP_GREY, 0, max);
 */
#ifndef LP_CANVAS_H
#define LP_CANVAS_H

#include "pngio.h"

typedef struct lp_rgb {
    uint8_t r, g, b;
} lp_rgb;

#define LP_BACKGROUND ((lp_rgb){250, 250, 248})
#define LP_INK ((lp_rgb){40, 40, 40})
#define LP_FRAME ((lp_rgb){170, 170, 170})

/* The font: each glyph LP_FONT_W x LP_FONT_H, advancing LP_FONT_W + 1 pixels (x scale). */
#define LP_FONT_W 5
#define LP_FONT_H 7
/* Height of a one-line label at scale 1, gap below it included. */
#define LP_LABEL_H (LP_FONT_H + 3)

const char *const *lp_font_glyph(char c);

/* Width in pixels of s drawn at `scale`. */
int lp_text_width(const char *s, int scale);
/* Draw s with its top-left at (x, y); pixels outside the image are clipped. */
void lp_canvas_text(lp_image *img, int x, int y, const char *s, int scale, lp_rgb color);

void lp_canvas_fill(lp_image *img, lp_rgb color);
/* A filled rectangle (clipped). */
void lp_canvas_rect(lp_image *img, int x, int y, int w, int h, lp_rgb color);
/* A one-pixel outline just outside the w x h box at (x, y) (clipped). */
void lp_canvas_frame(lp_image *img, int x, int y, int w, int h, lp_rgb color);

typedef enum lp_colormap {
    LP_MAP_GREY,       /* lo black .. hi white (all black when hi <= lo) */
    LP_MAP_DIVERGING   /* -hi blue .. 0 white .. +hi red (lo ignored): signed values */
} lp_colormap;

/* Colour of v under cm on [lo, hi] (values outside are clamped; a NaN is magenta). */
lp_rgb lp_colormap_apply(lp_colormap cm, float v, float lo, float hi);

/* Draw map v [h, w] with its top-left at (x, y), each value a scale x scale block. */
void lp_canvas_map(lp_image *img, int x, int y, const float *v, int h, int w, int scale,
                   lp_colormap cm, float lo, float hi);

/* n cells of cell_w x cell_h pixels, `cols` a row (fewer when n is smaller), each
 * with a label band of label_h pixels above it, pad pixels between cells and around
 * the whole. */
typedef struct lp_grid {
    int n, cols, rows;
    int cell_w, cell_h, pad, label_h;
    int width, height;  /* of the whole grid */
} lp_grid;

void lp_grid_layout(lp_grid *g, int n, int cols, int cell_w, int cell_h, int pad, int label_h);
/* Top-left of cell i's picture (its label band is the label_h pixels above it),
 * relative to the grid's top-left; cells fill rows left to right. */
void lp_grid_cell(const lp_grid *g, int i, int *x, int *y);

#endif
