/* viz.c - filters, feature maps and the tutorial's examples as pictures (viz.h). */
#include "viz.h"

#include "shape.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAD 6                     /* between maps and around a panel */
#define TITLE_SCALE 2
#define TITLE_H (LP_FONT_H * TITLE_SCALE + 10)
#define MARGIN 10                 /* around the whole picture */
#define DEFAULT_COLS 8

typedef struct panel_layout {
    lp_grid grid;
    int scale;
    int height;                   /* title band + grid */
} panel_layout;

static void layout_panel(const lp_viz_panel *p, int target_px, panel_layout *l)
{
    int side = p->h > p->w ? p->h : p->w;
    if (p->target_px > 0) target_px = p->target_px;
    l->scale = side > 0 && target_px / side > 1 ? target_px / side : 1;
    int cols = p->cols > 0 ? p->cols : DEFAULT_COLS;
    lp_grid_layout(&l->grid, p->n, cols, p->w * l->scale, p->h * l->scale, PAD, p->no_labels ? 0 : LP_LABEL_H);
    l->height = TITLE_H + l->grid.height;
}

static void range_of(const float *v, size_t count, float *lo, float *hi)
{
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(v[i])) continue;
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
    if (*lo > *hi) *lo = *hi = 0;
}

/* Each value as a number in its square, dark or light against the square's colour. */
static void draw_numbers(lp_image *img, int x, int y, const float *v, int h, int w, int scale)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            float f = v[(size_t)r * w + c];
            char t[16];
            if (f == roundf(f) && fabsf(f) < 1000) snprintf(t, sizeof t, "%d", (int)f);
            else snprintf(t, sizeof t, "%.1f", f);
            const uint8_t *p = img->px + ((size_t)(y + r * scale + 1) * img->w + x + c * scale + 1) * 3;
            int luma = (299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000;
            lp_rgb ink = luma < 128 ? (lp_rgb){255, 255, 255} : LP_INK;
            int tw = lp_text_width(t, 2);
            lp_canvas_text(img, x + c * scale + (scale - tw) / 2, y + r * scale + (scale - LP_FONT_H * 2) / 2, t, 2, ink);
        }
}

static void draw_map(lp_image *img, int x, int y, const float *v, int h, int w, int scale, float lo, float hi,
                     bool grey)
{
    if (grey)
        lp_canvas_map(img, x, y, v, h, w, scale, LP_MAP_GREY, lo, hi);
    else if (lo < 0) {
        float m = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
        lp_canvas_map(img, x, y, v, h, w, scale, LP_MAP_DIVERGING, -m, m);
    } else
        lp_canvas_map(img, x, y, v, h, w, scale, LP_MAP_GREY, 0, hi);
    if (scale >= 20 && img->channels == 3) draw_numbers(img, x, y, v, h, w, scale);
    lp_canvas_frame(img, x, y, w * scale, h * scale, LP_FRAME);
}

lp_status lp_viz_render(const lp_viz_panel *p, int n, int target_px, lp_image *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return lp_error_set(err, LP_ERR_ARG, "nothing to draw");
    panel_layout *l = calloc((size_t)n, sizeof *l);
    if (!l) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    int width = 0, height = 2 * MARGIN;
    for (int k = 0; k < n; k++) {
        layout_panel(&p[k], target_px, &l[k]);
        int tw = lp_text_width(p[k].title, TITLE_SCALE) + 2 * PAD;
        int pw = l[k].grid.width > tw ? l[k].grid.width : tw;
        if (pw > width) width = pw;
        height += l[k].height;
    }
    width += 2 * MARGIN;
    lp_status s = lp_image_init(out, width, height, 3, err);
    if (s) {
        free(l);
        return s;
    }
    lp_canvas_fill(out, LP_BACKGROUND);
    int top = MARGIN;
    for (int k = 0; k < n; k++) {
        const lp_viz_panel *q = &p[k];
        lp_canvas_text(out, MARGIN + PAD, top + 4, q->title, TITLE_SCALE, LP_INK);
        size_t per = (size_t)q->h * q->w;
        float lo = 0, hi = 0;
        if (q->shared_scale) range_of(q->maps, per * q->n, &lo, &hi);
        for (int i = 0; i < q->n; i++) {
            int x, y;
            lp_grid_cell(&l[k].grid, i, &x, &y);
            x += MARGIN;
            y += top + TITLE_H;
            if (!q->no_labels) {
                char label[32];
                if (q->label_channels > 1) snprintf(label, sizeof label, "%d.%d", i / q->label_channels, i % q->label_channels);
                else snprintf(label, sizeof label, "%d", i);
                lp_canvas_text(out, x, y - LP_LABEL_H + 1, label, 1, LP_INK);
            }
            const float *v = q->maps + per * i;
            if (!q->shared_scale) range_of(v, per, &lo, &hi);
            draw_map(out, x, y, v, q->h, q->w, l[k].scale, lo, hi, q->grey);
        }
        top += l[k].height;
    }
    free(l);
    return LP_OK;
}

/* The conv kernels of node i: its parameter "<name>.weight" when it is [F, C, kh, kw]. */
static int kernel_param(const lp_graph *g, int node)
{
    char want[160];
    snprintf(want, sizeof want, "%s.weight", lp_graph_node_name(g, node));
    for (int k = 0; k < lp_graph_num_params(g); k++)
        if (!strcmp(lp_graph_param_name(g, k), want) && lp_graph_param_shape(g, k).ndim == 4) return k;
    return -1;
}

static int find_node(const lp_graph *g, const char *name)
{
    for (int i = 0; i < lp_graph_num_nodes(g); i++)
        if (!strcmp(lp_graph_node_name(g, i), name)) return i;
    return -1;
}

/* "conv1, conv2" into buf: the nodes for which keep() holds. */
static const char *list_nodes(const lp_graph *g, bool (*keep)(const lp_graph *, int), char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 1; i < lp_graph_num_nodes(g) && o < size; i++)
        if (keep(g, i)) o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? ", " : "", lp_graph_node_name(g, i));
    return buf;
}

static bool is_conv(const lp_graph *g, int i) { return kernel_param(g, i) >= 0; }

lp_status lp_viz_filters(const lp_graph *g, const char *layer, lp_image *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    char convs[512];
    list_nodes(g, is_conv, convs, sizeof convs);
    if (!convs[0]) return lp_error_set(err, LP_ERR_ARG, "the model has no conv layer: no filters to draw");
    int only = -1;
    if (layer) {
        only = find_node(g, layer);
        if (only < 0) return lp_error_set(err, LP_ERR_ARG, "no layer '%s' in the model (its conv layers: %s)", layer, convs);
        if (!is_conv(g, only))
            return lp_error_set(err, LP_ERR_ARG, "layer '%s' is a %s, not a conv layer: it has no filters (conv layers: %s)",
                                layer, lp_graph_node_op(g, only), convs);
    }
    lp_viz_panel panels[64];
    int n = 0;
    const float *params = lp_graph_params((lp_graph *)g);   /* read only */
    for (int i = 1; i < lp_graph_num_nodes(g) && n < 64; i++) {
        int k = kernel_param(g, i);
        if (k < 0 || (only >= 0 && i != only)) continue;
        lp_shape s = lp_graph_param_shape(g, k);
        lp_viz_panel *p = &panels[n++];
        memset(p, 0, sizeof *p);
        snprintf(p->title, sizeof p->title, "%s: %d filters x %d channels, %dx%d%s", lp_graph_node_name(g, i),
                 s.dims[0], s.dims[1], s.dims[2], s.dims[3], s.dims[1] > 1 ? " (label filter.channel)" : "");
        p->maps = params + lp_graph_param_offset(g, k);
        p->n = s.dims[0] * s.dims[1];
        p->h = s.dims[2];
        p->w = s.dims[3];
        /* whole filters a row: 16 squares when the channels fit (conv2: 2 filters of 8) */
        p->cols = s.dims[1] > 1 ? s.dims[1] * (s.dims[1] < 16 ? 16 / s.dims[1] : 1) : (s.dims[0] < 16 ? s.dims[0] : 16);
        p->shared_scale = true;
        p->label_channels = s.dims[1];
    }
    return lp_viz_render(panels, n, 40, out, err);
}

/* An image output: [C, H, W], or [H, W] as one channel. */
static bool image_shape(lp_shape s, int *c, int *h, int *w)
{
    if (s.ndim == 3) *c = s.dims[0], *h = s.dims[1], *w = s.dims[2];
    else if (s.ndim == 2) *c = 1, *h = s.dims[0], *w = s.dims[1];
    else return false;
    return *h > 1 && *w > 1;
}

static bool has_maps(const lp_graph *g, int i)
{
    int c, h, w;
    return lp_graph_node_output(g, i) && image_shape(lp_graph_node_shape(g, i), &c, &h, &w);
}

lp_status lp_viz_maps(const lp_graph *g, const char *layer, const char *caption, lp_image *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    char names[512];
    list_nodes(g, has_maps, names, sizeof names);
    int only = -1;
    if (layer) {
        only = find_node(g, layer);
        if (only < 0 || only == 0 || !has_maps(g, only))
            return lp_error_set(err, LP_ERR_ARG, "%s '%s'%s (layers with feature maps: %s)",
                                only < 0 ? "no layer" : "no feature maps for layer", layer,
                                only < 0 ? " in the model" : ": its output is not an image [C, H, W]",
                                names[0] ? names : "none");
    } else if (!names[0])
        return lp_error_set(err, LP_ERR_ARG, "the model has no layer with feature maps [C, H, W]: no conv or pooling layer");
    int c, h, w;
    if (!image_shape(lp_graph_input_shape(g), &c, &h, &w))
        return lp_error_set(err, LP_ERR_ARG, "the model's input is not an image [C, H, W]");
    lp_viz_panel panels[128];
    int n = 0;
    for (int i = 0; i < lp_graph_num_nodes(g) && n < 128; i++) {
        if (i > 0 && (!has_maps(g, i) || (only >= 0 && i != only))) continue;
        lp_shape s = lp_graph_node_shape(g, i);
        image_shape(s, &c, &h, &w);
        lp_viz_panel *p = &panels[n++];
        memset(p, 0, sizeof *p);
        char shape[64];
        lp_shape_str(s, shape, sizeof shape);
        if (i == 0) snprintf(p->title, sizeof p->title, "%s", caption ? caption : "input");
        else snprintf(p->title, sizeof p->title, "%s (%s) %s", lp_graph_node_name(g, i), lp_graph_node_op(g, i), shape);
        p->maps = lp_graph_node_output(g, i);
        p->n = c;
        p->h = h;
        p->w = w;
        p->no_labels = i == 0 && c == 1;
        p->grey = i == 0;
        if (i == 0) p->target_px = 112;   /* the image itself a little larger than its maps */
    }
    return lp_viz_render(panels, n, 78, out, err);
}

lp_status lp_viz_upscale(const uint8_t *px, int c, int h, int w, int scale, lp_image *out, lp_error *err)
{
    if (c != 1 && c != 3) return lp_error_set(err, LP_ERR_ARG, "an image of %d channels cannot be drawn (1 or 3)", c);
    lp_status s = lp_image_init(out, w * scale, h * scale, c, err);
    for (int y = 0; !s && y < out->h; y++)
        for (int x = 0; x < out->w; x++)
            for (int k = 0; k < c; k++)
                out->px[((size_t)y * out->w + x) * c + k] = px[((size_t)k * h + y / scale) * w + x / scale];
    return s;
}

/* ---- the tutorial's examples, through loupe's own ops ---- */

static lp_value *scalar(const char *text) { return lp_value_new_scalar(text, (lp_loc){"viz", 0, 0}); }

/* One-node graph on a [1, h, w] input: conv2d with the two 3x3 kernels k[2][9] (no
 * bias), or a 2x2 max-pool of stride 2 when k is NULL. out receives its output. */
static lp_status run_op(const float *x, int h, int w, const float *k, float *out, size_t out_floats, lp_error *err)
{
    lp_model_spec spec = {0};
    spec.input = (lp_shape){3, {1, h, w}};
    lp_value *attrs = lp_value_new_map((lp_loc){"viz", 0, 0});
    lp_loc at = {"viz", 0, 0};
    if (!attrs) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    if (k) {
        lp_value_map_set(attrs, "filters", at, scalar("2"));
        lp_value_map_set(attrs, "kernel", at, scalar("3"));
        lp_value_map_set(attrs, "bias", at, scalar("false"));
    } else {
        lp_value_map_set(attrs, "size", at, scalar("2"));
        lp_value_map_set(attrs, "stride", at, scalar("2"));
    }
    const char *in[] = {"input"};
    lp_graph *g = NULL;
    lp_status s = lp_model_spec_add(&spec, k ? "edges" : "pool", k ? "conv2d" : "maxpool", in, 1, attrs)
                      ? lp_error_set(err, LP_ERR_NOMEM, "out of memory")
                      : lp_graph_build(&spec, &g, err);
    lp_model_spec_free(&spec);
    if (!s) s = lp_graph_plan(g, 1, err);
    if (!s && (size_t)lp_shape_numel(lp_graph_logits_shape(g)) != out_floats)
        s = lp_error_set(err, LP_ERR_SHAPE, "unexpected output size");
    if (!s) {
        if (k) memcpy(lp_graph_params(g), k, 18 * sizeof(float));
        lp_graph_forward(g, x, NULL, 1, false);
        memcpy(out, lp_graph_logits(g), out_floats * sizeof(float));
    }
    lp_graph_free(g);
    return s;
}

/* The tutorial's kernels: vertical edges [-1 0 1] on each row, horizontal its transpose. */
static const float edge_kernels[18] = {
    -1, 0, 1, -1, 0, 1, -1, 0, 1,
    -1, -1, -1, 0, 0, 0, 1, 1, 1,
};

lp_status lp_viz_convolve(const float *digit, int h, int w, const char *caption, lp_image *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    if (h < 6 || w < 6) return lp_error_set(err, LP_ERR_ARG, "the digit must be at least 6x6, got %dx%d", h, w);
    float block[25] = {0}, block_edges[18];
    for (int r = 1; r <= 3; r++)
        for (int c = 1; c <= 3; c++) block[r * 5 + c] = 1;
    int oh = h - 2, ow = w - 2, ph = oh / 2, pw = ow / 2;
    size_t per = (size_t)oh * ow;
    float *edges = malloc(2 * per * sizeof *edges), *strength = malloc(per * sizeof *strength);
    float *pooled = malloc((size_t)ph * pw * sizeof *pooled);
    lp_status s = !edges || !strength || !pooled ? lp_error_set(err, LP_ERR_NOMEM, "out of memory") : LP_OK;
    if (!s) s = run_op(block, 5, 5, edge_kernels, block_edges, 18, err);
    if (!s) s = run_op(digit, h, w, edge_kernels, edges, 2 * per, err);
    if (!s) {
        for (size_t i = 0; i < per; i++) strength[i] = sqrtf(edges[i] * edges[i] + edges[per + i] * edges[per + i]);
        s = run_op(strength, oh, ow, NULL, pooled, (size_t)ph * pw, err);
    }
    if (!s) {
        lp_viz_panel p[8];
        memset(p, 0, sizeof p);
        int n = 0;
        /* The tutorial's 5x5 block, its two kernels and what each gives (3x3). */
#define PANEL(t, m, count, hh, ww, ...) \
    (lp_viz_panel) { .title = t, .maps = m, .n = count, .h = hh, .w = ww, .cols = count, __VA_ARGS__ }
        p[n++] = PANEL("tutorial: 5x5 block of ones", block, 1, 5, 5, .no_labels = true, .grey = true);
        p[n++] = PANEL("kernels: vertical [-1 0 1], horizontal", edge_kernels, 2, 3, 3, .shared_scale = true);
        p[n++] = PANEL("block edges: vertical, horizontal", block_edges, 2, 3, 3, .shared_scale = true);
        p[n++] = PANEL("", digit, 1, h, w, .no_labels = true, .grey = true);
        snprintf(p[n - 1].title, sizeof p[n - 1].title, "%s", caption ? caption : "digit");
        p[n++] = PANEL("vertical edges, horizontal edges", edges, 2, oh, ow, .shared_scale = true);
        p[n++] = PANEL("edge strength sqrt(v2 + h2)", strength, 1, oh, ow, .no_labels = true);
        p[n++] = PANEL("after 2x2 max-pool", pooled, 1, ph, pw, .no_labels = true);
#undef PANEL
        s = lp_viz_render(p, n, 112, out, err);
    }
    free(edges);
    free(strength);
    free(pooled);
    return s;
}
