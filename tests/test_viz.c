/* test_viz.c - pictures: the PNG writer and reader (libpng) round trip and refuse
 * what they must, the grid layout, nearest-neighbour upscaling through the colour
 * maps, and the filter grid of a model really trained on MNIST (not constant). */
#include <criterion/criterion.h>

#include "compute.h"
#include "config.h"
#include "dataset.h"
#include "snapshot.h"
#include "train.h"
#include "viz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/loupe-test-viz.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

TestSuite(viz, .init = make_dir, .fini = remove_dir);

static void round_trip(int w, int h, int channels)
{
    lp_error err = {0};
    lp_image img, back;
    cr_assert_eq(lp_image_init(&img, w, h, channels, &err), LP_OK, "%s", err.msg);
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)w * h * channels; i++) {
        x = x * 1664525u + 1013904223u;
        img.px[i] = (uint8_t)(x >> 24);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/rt-%d.png", dir, channels);
    cr_assert_eq(lp_png_write(path, &img, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_png_read(path, &back, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(back.w, w);
    cr_assert_eq(back.h, h);
    cr_assert_eq(back.channels, channels);
    cr_assert(!memcmp(img.px, back.px, (size_t)w * h * channels), "pixels differ after the round trip");
    cr_assert_eq(files_in_dir(), 1, "only the PNG: no temporary file left");
    lp_image_free(&img);
    lp_image_free(&back);
}

Test(viz, png_round_trip_rgb) { round_trip(37, 23, 3); }
Test(viz, png_round_trip_grey) { round_trip(1, 300, 1); }

Test(viz, png_read_refuses_what_is_not_a_png)
{
    char path[128];
    snprintf(path, sizeof path, "%s/fake.png", dir);
    FILE *f = fopen(path, "wb");
    fputs("GIF89a not a png at all", f);
    fclose(f);
    lp_image img;
    lp_error err = {0};
    cr_assert_eq(lp_png_read(path, &img, &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "not a valid PNG"), "%s", err.msg);
    cr_assert_null(img.px);

    /* A real PNG cut short: libpng's error comes back as a message, not an abort. */
    lp_image good;
    cr_assert_eq(lp_image_init(&good, 64, 64, 3, &err), LP_OK);
    for (int i = 0; i < 64 * 64 * 3; i++) good.px[i] = (uint8_t)(i * 7);
    snprintf(path, sizeof path, "%s/cut.png", dir);
    cr_assert_eq(lp_png_write(path, &good, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(truncate(path, 60), 0);
    lp_error_clear(&err);
    cr_assert_eq(lp_png_read(path, &img, &err), LP_ERR_DATA);
    cr_assert_null(img.px);
    lp_image_free(&good);

    lp_error_clear(&err);
    snprintf(path, sizeof path, "%s/absent.png", dir);
    cr_assert_eq(lp_png_read(path, &img, &err), LP_ERR_IO);
}

Test(viz, png_write_to_a_missing_directory_leaves_nothing)
{
    lp_image img;
    lp_error err = {0};
    cr_assert_eq(lp_image_init(&img, 4, 4, 1, &err), LP_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    cr_assert_eq(lp_png_write(path, &img, &err), LP_ERR_IO);
    cr_assert(strstr(err.msg, "x.png") && strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert_eq(files_in_dir(), 0);
    lp_image_free(&img);
}

Test(viz, image_sizes_are_checked)
{
    lp_image img;
    lp_error err = {0};
    cr_assert_eq(lp_image_init(&img, 0, 5, 3, &err), LP_ERR_ARG);
    lp_error_clear(&err);
    cr_assert_eq(lp_image_init(&img, 5, 5, 2, &err), LP_ERR_ARG);
}

Test(viz, grid_layout_places_cells_in_rows_without_overlap)
{
    lp_grid g;
    lp_grid_layout(&g, 10, 4, 20, 12, 3, 5);   /* 10 cells of 20x12, 4 a row */
    cr_assert_eq(g.cols, 4);
    cr_assert_eq(g.rows, 3);
    cr_assert_eq(g.width, 3 + 4 * (20 + 3));
    cr_assert_eq(g.height, 3 + 3 * (5 + 12 + 3));
    int x, y;
    lp_grid_cell(&g, 0, &x, &y);
    cr_assert(x == 3 && y == 3 + 5, "cell 0 at %d,%d", x, y);
    lp_grid_cell(&g, 5, &x, &y);               /* row 1, column 1 */
    cr_assert(x == 3 + 23 && y == 3 + 20 + 5, "cell 5 at %d,%d", x, y);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < i; j++) {
            int xi, yi, xj, yj;
            lp_grid_cell(&g, i, &xi, &yi);
            lp_grid_cell(&g, j, &xj, &yj);
            bool apart = xi >= xj + 20 || xj >= xi + 20 || yi >= yj + 12 + 5 || yj >= yi + 12 + 5;
            cr_assert(apart, "cells %d and %d overlap", i, j);
            cr_assert(xi + 20 + 3 <= g.width && yi + 12 + 3 <= g.height, "cell %d outside", i);
        }
    lp_grid_layout(&g, 3, 8, 10, 10, 2, 0);    /* fewer cells than a row */
    cr_assert_eq(g.cols, 3);
    cr_assert_eq(g.rows, 1);
}

Test(viz, maps_are_upscaled_by_nearest_neighbour)
{
    /* One 2x3 map of signed values, 10 pixels a value: every pixel of a value's
     * square has exactly its colour, and the corners show the diverging scale. */
    const float v[6] = {-2, 0, 2, 1, -1, 0.5f};
    lp_viz_panel p = {.title = "t", .maps = v, .n = 1, .h = 2, .w = 3, .no_labels = true, .shared_scale = true};
    lp_image img;
    lp_error err = {0};
    cr_assert_eq(lp_viz_render(&p, 1, 30, &img, &err), LP_OK, "%s", err.msg);
    /* find the map: the first pixel from the left on the row through its middle
     * that has the colour of -2 (full blue) */
    lp_rgb blue = lp_colormap_apply(LP_MAP_DIVERGING, -2, -2, 2), red = lp_colormap_apply(LP_MAP_DIVERGING, 2, -2, 2);
    cr_assert(blue.b > blue.r && red.r > red.b, "the diverging ends are blue and red");
    int x0 = -1, y0 = -1;
    for (int y = 0; y < img.h && x0 < 0; y++)
        for (int x = 0; x < img.w; x++) {
            const uint8_t *q = img.px + ((size_t)y * img.w + x) * 3;
            if (q[0] == blue.r && q[1] == blue.g && q[2] == blue.b) {
                x0 = x, y0 = y;
                break;
            }
        }
    cr_assert(x0 >= 0, "the map's -2 is drawn");
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++) {
            lp_rgb want = lp_colormap_apply(LP_MAP_DIVERGING, v[r * 3 + c], -2, 2);
            for (int dy = 0; dy < 10; dy++)
                for (int dx = 0; dx < 10; dx++) {
                    const uint8_t *q = img.px + ((size_t)(y0 + r * 10 + dy) * img.w + x0 + c * 10 + dx) * 3;
                    cr_assert(q[0] == want.r && q[1] == want.g && q[2] == want.b,
                              "value (%d, %d), pixel (%d, %d) of its square: %d %d %d, want %d %d %d", r, c, dx, dy,
                              q[0], q[1], q[2], want.r, want.g, want.b);
                }
        }
    /* and the frame just outside it */
    const uint8_t *q = img.px + ((size_t)(y0 - 1) * img.w + x0) * 3;
    cr_assert(q[0] == LP_FRAME.r && q[1] == LP_FRAME.g, "framed");
    lp_image_free(&img);
}

/* A few hundred steps of the shipped two-conv net on real MNIST, then its weights
 * through a checkpoint into a fresh graph, as `loupe viz filters` reads them. */
Test(viz, filter_grid_of_a_trained_checkpoint_is_not_constant, .timeout = 120)
{
    lp_error err = {0};
    lp_experiment_config cfg;
    const char *sets[] = {"data.train_limit=3000", "data.test_limit=500", "train.epochs=1"};
    cr_assert_eq(lp_config_load("configs/mnist_two_conv.yaml", sets, 3, &cfg, &err), LP_OK, "%s", err.msg);
    lp_threads_init(1);
    lp_dataset train = {0}, test = {0};
    lp_status s = lp_dataset_load("mnist", cfg.data.dir, true, 3000, &train, &err);
    if (!s) s = lp_dataset_load("mnist", cfg.data.dir, false, 500, &test, &err);
    cr_assert_eq(s, LP_OK, "real MNIST is needed (make data): %s", err.msg);
    lp_dataset_normalize(&train, cfg.data.mean, cfg.data.std);
    lp_dataset_normalize(&test, cfg.data.mean, cfg.data.std);
    lp_graph *g = NULL, *g2 = NULL;
    cr_assert_eq(lp_graph_build(&cfg.model, &g, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_graph_build(&cfg.model, &g2, &err), LP_OK, "%s", err.msg);
    lp_graph_init_params(g, 1);
    lp_train_options opt = {.epochs = 1, .batch_size = 32, .seed = 1, .shuffle = true,
                            .optim = cfg.train.optim, .schedule = {0}, .quiet = true};
    opt.schedule.type = LP_SCHEDULE_CONSTANT;
    lp_trainer t;
    cr_assert_eq(lp_trainer_init(&t, g, &train, &test, &opt, &err), LP_OK, "%s", err.msg);
    lp_epoch_result r;
    cr_assert_eq(lp_trainer_run(&t, NULL, NULL, &r, &err), LP_OK, "%s", err.msg);
    cr_assert_gt(r.test_acc, 0.8, "it learned something: %.3f", r.test_acc);
    void *blob;
    size_t size;
    cr_assert_eq(lp_snapshot_encode(g, NULL, NULL, &blob, &size, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_snapshot_restore(blob, size, g2, NULL, NULL, "checkpoint", &err), LP_OK, "%s", err.msg);
    free(blob);

    lp_image img, back;
    cr_assert_eq(lp_viz_filters(g2, "conv1", &img, &err), LP_OK, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/filters.png", dir);
    cr_assert_eq(lp_png_write(path, &img, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_png_read(path, &back, &err), LP_OK, "%s", err.msg);
    cr_assert(back.w == img.w && back.h == img.h && back.channels == 3);
    /* The 8 kernels of 3x3 trained weights: many different colours, not one. */
    int distinct = 0;
    static uint8_t seen[1 << 15];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < back.w * back.h; i++) {
        const uint8_t *q = back.px + (size_t)i * 3;
        int key = (q[0] >> 3) << 10 | (q[1] >> 3) << 5 | (q[2] >> 3);
        distinct += !seen[key];
        seen[key] = 1;
    }
    cr_assert_gt(distinct, 30, "the filter grid has %d distinct colours", distinct);

    /* Not a conv layer: refused, naming the conv layers. */
    lp_image none;
    lp_error_clear(&err);
    cr_assert_eq(lp_viz_filters(g2, "fc1", &none, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "not a conv layer") && strstr(err.msg, "conv1, conv2"), "%s", err.msg);

    lp_image_free(&img);
    lp_image_free(&back);
    lp_trainer_free(&t);
    lp_graph_free(g);
    lp_graph_free(g2);
    lp_dataset_free(&train);
    lp_dataset_free(&test);
    lp_config_free(&cfg);
}

Test(viz, convolve_reproduces_the_tutorials_edge_example)
{
    /* The digit: the tutorial's block, larger. The picture must exist and hold both
     * the full red and full blue of a signed edge map. */
    float digit[8 * 8] = {0};
    for (int r = 2; r < 6; r++)
        for (int c = 2; c < 6; c++) digit[r * 8 + c] = 1;
    lp_threads_init(1);
    lp_image img;
    lp_error err = {0};
    cr_assert_eq(lp_viz_convolve(digit, 8, 8, "block", &img, &err), LP_OK, "%s", err.msg);
    lp_rgb red = lp_colormap_apply(LP_MAP_DIVERGING, 1, -1, 1), blue = lp_colormap_apply(LP_MAP_DIVERGING, -1, -1, 1);
    int n_red = 0, n_blue = 0;
    for (int i = 0; i < img.w * img.h; i++) {
        const uint8_t *q = img.px + (size_t)i * 3;
        n_red += q[0] == red.r && q[1] == red.g && q[2] == red.b;
        n_blue += q[0] == blue.r && q[1] == blue.g && q[2] == blue.b;
    }
    cr_assert(n_red > 100 && n_blue > 100, "red %d, blue %d pixels", n_red, n_blue);
    lp_image_free(&img);
}
