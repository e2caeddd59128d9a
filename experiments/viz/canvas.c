/* canvas.c - see canvas.h. */
#include "canvas.h"

#include <math.h>
#include <string.h>

static void put(lp_image *img, int x, int y, lp_rgb c)
{
    if (x < 0 || y < 0 || x >= img->w || y >= img->h) return;
    uint8_t *p = img->px + ((size_t)y * img->w + x) * img->channels;
    if (img->channels == 1) {
        p[0] = (uint8_t)((299 * c.r + 587 * c.g + 114 * c.b + 500) / 1000);
        return;
    }
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

int lp_text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (n * (LP_FONT_W + 1) - 1) * scale : 0;
}

void lp_canvas_text(lp_image *img, int x, int y, const char *s, int scale, lp_rgb color)
{
    for (; *s; s++, x += (LP_FONT_W + 1) * scale) {
        const char *const *rows = lp_font_glyph(*s);
        if (!rows) continue;
        for (int r = 0; r < LP_FONT_H; r++)
            for (int c = 0; c < LP_FONT_W; c++)
                if (rows[r][c] == '#') lp_canvas_rect(img, x + c * scale, y + r * scale, scale, scale, color);
    }
}

void lp_canvas_fill(lp_image *img, lp_rgb color) { lp_canvas_rect(img, 0, 0, img->w, img->h, color); }

void lp_canvas_rect(lp_image *img, int x, int y, int w, int h, lp_rgb color)
{
    for (int j = y < 0 ? 0 : y; j < y + h && j < img->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < img->w; i++) put(img, i, j, color);
}

void lp_canvas_frame(lp_image *img, int x, int y, int w, int h, lp_rgb color)
{
    lp_canvas_rect(img, x - 1, y - 1, w + 2, 1, color);
    lp_canvas_rect(img, x - 1, y + h, w + 2, 1, color);
    lp_canvas_rect(img, x - 1, y, 1, h, color);
    lp_canvas_rect(img, x + w, y, 1, h, color);
}

static uint8_t mix(uint8_t a, uint8_t b, float t) { return (uint8_t)lroundf(a + (b - a) * t); }

lp_rgb lp_colormap_apply(lp_colormap cm, float v, float lo, float hi)
{
    if (isnan(v)) return (lp_rgb){255, 0, 255};
    if (cm == LP_MAP_GREY) {
        float t = hi > lo ? (v - lo) / (hi - lo) : 0;   /* a constant map is black */
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        uint8_t g = (uint8_t)lroundf(255 * t);
        return (lp_rgb){g, g, g};
    }
    /* Diverging: white at 0, to a strong blue (negative) or red (positive) at |hi|. */
    float m = fabsf(hi);
    float t = m > 0 ? v / m : 0;
    t = t < -1 ? -1 : t > 1 ? 1 : t;
    lp_rgb end = t < 0 ? (lp_rgb){33, 102, 172} : (lp_rgb){178, 24, 43};
    float a = fabsf(t);
    return (lp_rgb){mix(255, end.r, a), mix(255, end.g, a), mix(255, end.b, a)};
}

void lp_canvas_map(lp_image *img, int x, int y, const float *v, int h, int w, int scale,
                   lp_colormap cm, float lo, float hi)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++)
            lp_canvas_rect(img, x + c * scale, y + r * scale, scale, scale,
                           lp_colormap_apply(cm, v[(size_t)r * w + c], lo, hi));
}

void lp_grid_layout(lp_grid *g, int n, int cols, int cell_w, int cell_h, int pad, int label_h)
{
    memset(g, 0, sizeof *g);
    g->n = n;
    g->cols = n < cols ? n : cols;
    if (g->cols < 1) g->cols = 1;
    g->rows = n > 0 ? (n + g->cols - 1) / g->cols : 0;
    g->cell_w = cell_w;
    g->cell_h = cell_h;
    g->pad = pad;
    g->label_h = label_h;
    g->width = pad + g->cols * (cell_w + pad);
    g->height = pad + g->rows * (label_h + cell_h + pad);
}

void lp_grid_cell(const lp_grid *g, int i, int *x, int *y)
{
    int r = i / g->cols, c = i % g->cols;
    *x = g->pad + c * (g->cell_w + g->pad);
    *y = g->pad + r * (g->label_h + g->cell_h + g->pad) + g->label_h;
}
