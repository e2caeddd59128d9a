/* viz.h - pictures of what a network sees: its learned filters, the feature maps of
 * one image, and the tutorial's edge-filter examples, each as one labelled RGB image
 * (write it with lp_png_write). Layout: titled panels one under another, each a grid
 * of maps upscaled by an integer factor (nearest neighbour: every value stays a crisp
 * square), framed and numbered.
 *
 * Colours (canvas.h): signed values (weights, conv outputs) on a diverging scale,
 * white at 0, red positive, blue negative; non-negative values (images, ReLU and
 * pooling outputs) in grey, black at 0.
 */
#ifndef LP_VIZ_H
#define LP_VIZ_H

#include "canvas.h"
#include "graph.h"
#include <stdbool.h>

/* A titled group of n maps of h x w values. */
typedef struct lp_viz_panel {
    char title[128];
    const float *maps;      /* [n, h, w] */
    int n, h, w;
    int cols;               /* maps a row; 0: up to 8 */
    bool shared_scale;      /* one colour range for the panel (else one per map) */
    bool no_labels;         /* no number above each map */
    int label_channels;     /* > 1: label map i "i/C.i%C" (filter.channel) instead of i */
    bool grey;              /* grey from the map's minimum to its maximum (an image) */
    int target_px;          /* this panel's map size in pixels; 0: lp_viz_render's */
} lp_viz_panel;

/* Draw the panels one under another, each map upscaled to about target_px pixels a
 * side (an integer factor, at least 1), into a new RGB image (*out; free it). The
 * colour scale is diverging when a map's (or the shared) range has negative values,
 * grey otherwise (black at 0; an all-zero map is black). Maps drawn at 20 pixels a
 * value or more (the tutorial's 5x5 examples) show each value as a number too. */
lp_status lp_viz_render(const lp_viz_panel *p, int n, int target_px, lp_image *out, lp_error *err);

/* The learned kernels of every conv2d node (or only of node `layer`), one panel per
 * layer: one map per (output filter, input channel), whole filters a row (16 maps
 * when the channels fit) labelled filter.channel, on the diverging scale shared by the layer (full colour at
 * its largest |w|). LP_ERR_ARG when layer is not a node, or is one without conv2d
 * kernels (the message lists the conv layers), or the model has no conv layer. */
lp_status lp_viz_filters(const lp_graph *g, const char *layer, lp_image *out, lp_error *err);

/* After lp_graph_forward of ONE sample: the input and the output of every node whose
 * output is an image [C, H, W] (conv, pooling, ReLU on them), or of node `layer`
 * only, a panel each titled with the node, its op and shape; caption (may be NULL)
 * titles the input. Folded nodes (graph.h) are skipped. LP_ERR_ARG when layer is
 * not a node or has no [C, H, W] output. */
lp_status lp_viz_maps(const lp_graph *g, const char *layer, const char *caption, lp_image *out,
                      lp_error *err);

/* An image of 8-bit pixels px [c, h, w] (c 1 or 3, planar as datasets hold them)
 * upscaled `scale` times by nearest neighbour, grey or RGB, into *out. */
lp_status lp_viz_upscale(const uint8_t *px, int c, int h, int w, int scale, lp_image *out, lp_error *err);

/* The tutorial's worked examples as pictures, computed by loupe's conv2d and maxpool
 * ops: its 5x5 block through the vertical [-1 0 1] and horizontal edge kernels
 * (docs/tutorial-notes.md), then the same kernels on digit [h, w] (values in [0, 1]):
 * vertical edges, horizontal edges, edge strength sqrt(v^2 + h^2) and its 2x2 max-pool. */
lp_status lp_viz_convolve(const float *digit, int h, int w, const char *caption, lp_image *out,
                          lp_error *err);

#endif
