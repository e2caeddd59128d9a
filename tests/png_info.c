/* png_info.c - decode PNG files with loupe's reader (libpng) for the end-to-end
 * scripts: one line per file, "PATH W H CHANNELS DISTINCT_VALUES", where distinct
 * counts the different pixel colours (1: a constant picture). Exit 1 if any file
 * does not decode. Not a test itself; tests/e2e_report.sh runs it. */
#include "pngio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        lp_image img;
        lp_error err = {0};
        if (lp_png_read(argv[i], &img, &err)) {
            fprintf(stderr, "png_info: %s\n", err.msg);
            rc = 1;
            continue;
        }
        /* colours quantised to 5 bits a channel: distinct up to 32768 */
        static unsigned char seen[1 << 15];
        memset(seen, 0, sizeof seen);
        long distinct = 0;
        for (long p = 0; p < (long)img.w * img.h; p++) {
            const unsigned char *q = img.px + p * img.channels;
            int key = img.channels == 1 ? q[0] >> 3 : (q[0] >> 3) << 10 | (q[1] >> 3) << 5 | (q[2] >> 3);
            distinct += !seen[key];
            seen[key] = 1;
        }
        printf("%s %d %d %d %ld\n", argv[i], img.w, img.h, img.channels, distinct);
        lp_image_free(&img);
    }
    return rc;
}
