/* trainer/train/plot.c — the loss-curve picture of a run: training and evaluation loss
 * against the step, drawn from metrics.jsonl into a PNG (trainer/store's writer).
 *
 * Why drawn here, by hand: a model card should show how the run went, and lorafit takes no
 * plotting library for one picture. The canvas is RGB bytes; lines are Bresenham segments
 * two pixels wide, text the 5x7 font of plot_font.c scaled by 2, ticks at 1-2-5 steps. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/store/store.h"
#include "trainer/train/plot.h"
#include "trainer/train/train.h"

#define W      800
#define H      500
#define LEFT   96
#define RIGHT  24
#define TOP    56
#define BOTTOM 64
#define SCALE  2 /* font pixels per glyph pixel */

typedef struct {
    uint8_t px[H][W][3];
} Canvas;

typedef struct {
    uint8_t r, g, b;
} Rgb;

static const Rgb INK = {30, 30, 30}, GRID = {225, 225, 225}, TRAIN = {31, 119, 180},
                 EVAL = {230, 97, 1};

static void dot(Canvas *c, int x, int y, Rgb k) {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    c->px[y][x][0] = k.r, c->px[y][x][1] = k.g, c->px[y][x][2] = k.b;
}

static void rect(Canvas *c, int x0, int y0, int x1, int y1, Rgb k) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) dot(c, x, y, k);
}

/* A segment `width` pixels wide (Bresenham, then a square brush). */
static void line(Canvas *c, int x0, int y0, int x1, int y1, int width, Rgb k) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        rect(c, x0 - width / 2, y0 - width / 2, x0 + (width - 1) / 2, y0 + (width - 1) / 2, k);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static int text_width(const char *s) {
    return (int)strlen(s) * 6 * SCALE - SCALE;
}

/* s with its top-left corner at (x, y). */
static void text(Canvas *c, int x, int y, const char *s, Rgb k) {
    for (; *s; s++, x += 6 * SCALE) {
        const char *const *g = plot_glyph(*s);
        for (int row = 0; g && row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (g[row][col] == '#')
                    rect(c, x + col * SCALE, y + row * SCALE, x + col * SCALE + SCALE - 1,
                         y + row * SCALE + SCALE - 1, k);
    }
}

/* A tick spacing of 1, 2 or 5 times a power of ten giving about `want` intervals. */
static double nice_step(double span, int want) {
    double raw = span / want, p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void format_tick(double v, double step, char *out, size_t len) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < 1e-9 * step) v = 0.0; /* never "-0" */
    snprintf(out, len, "%.*f", decimals > 6 ? 6 : decimals, v);
}

typedef struct {
    double x0, x1, y0, y1;
} Range;

/* A pixel coordinate, clamped to a few canvases around the picture so that a segment to a
 * far-off point stays a bounded walk (dot() drops what falls outside). */
static int px_clamp(double v) {
    const double far = 4.0 * W;
    return v >= -far && v <= far ? (int)lround(v) : v > far ? (int)far : (int)-far;
}

static int px_x(const Range *r, double x) {
    return LEFT + px_clamp((x - r->x0) / (r->x1 - r->x0) * (W - LEFT - RIGHT));
}

static int px_y(const Range *r, double y) {
    return H - BOTTOM - px_clamp((y - r->y0) / (r->y1 - r->y0) * (H - TOP - BOTTOM));
}

/* Ticks at the multiples of step in [lo, hi]: their count (at most TICKS_MAX) and the first. */
#define TICKS_MAX 64
static int ticks(double lo, double hi, double step, double *first) {
    *first = ceil(lo / step - 1e-9) * step;
    double n = floor((hi - *first) / step + 1e-9) + 1;
    return n >= 1 && n <= TICKS_MAX ? (int)n : n > TICKS_MAX ? TICKS_MAX : 0;
}

static void axes(Canvas *c, const Range *r, const char *title) {
    double ys = nice_step(r->y1 - r->y0, 6), xs = nice_step(r->x1 - r->x0, 8);
    char label[32];
    double first;
    for (int i = 0, n = ticks(r->y0, r->y1, ys, &first); i < n; i++) {
        double v = first + i * ys;
        int y = px_y(r, v);
        line(c, LEFT, y, W - RIGHT, y, 1, GRID);
        line(c, LEFT - 6, y, LEFT, y, 2, INK);
        format_tick(v, ys, label, sizeof label);
        text(c, LEFT - 10 - text_width(label), y - 7, label, INK);
    }
    for (int i = 0, n = ticks(r->x0, r->x1, xs, &first); i < n; i++) {
        double v = first + i * xs;
        int x = px_x(r, v);
        line(c, x, TOP, x, H - BOTTOM, 1, GRID);
        line(c, x, H - BOTTOM, x, H - BOTTOM + 6, 2, INK);
        format_tick(v, xs, label, sizeof label);
        text(c, x - text_width(label) / 2, H - BOTTOM + 12, label, INK);
    }
    line(c, LEFT, TOP, LEFT, H - BOTTOM, 2, INK);
    line(c, LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, 2, INK);
    text(c, (W - text_width("step")) / 2, H - 24, "step", INK);
    text(c, 12, TOP - 30, "loss", INK);
    text(c, (W - text_width(title)) / 2, 14, title, INK);
}

static void curve(Canvas *c, const Range *r, const int64_t *xs, const double *ys, int n, Rgb k,
                  bool markers) {
    for (int i = 0; i < n; i++) {
        int x = px_x(r, (double)xs[i]), y = px_y(r, ys[i]);
        if (i > 0) line(c, px_x(r, (double)xs[i - 1]), px_y(r, ys[i - 1]), x, y, 2, k);
        if (markers || n == 1) rect(c, x - 3, y - 3, x + 3, y + 3, k);
    }
}

static void legend(Canvas *c, bool has_eval) {
    int x = W - RIGHT - 16 - text_width("train loss") - 36, y = TOP + 10;
    rect(c, x - 10, y - 8, W - RIGHT - 8, y + (has_eval ? 44 : 22), (Rgb){255, 255, 255});
    line(c, x, y + 6, x + 26, y + 6, 3, TRAIN);
    text(c, x + 36, y, "train loss", INK);
    if (has_eval) {
        line(c, x, y + 30, x + 26, y + 30, 3, EVAL);
        rect(c, x + 10, y + 27, x + 16, y + 33, EVAL);
        text(c, x + 36, y + 24, "eval loss", INK);
    }
}

/* Losses beyond this are drawn at the edge, not scaled into the axis (a diverged run's or a
 * hand-edited file's: the span of the rest must stay a finite number). */
#define LOSS_DRAWN_MAX 1e15

static void range_of(const LossPoints *p, Range *r) {
    r->x0 = 0, r->x1 = 1, r->y0 = INFINITY, r->y1 = -INFINITY;
    for (int i = 0; i < p->n_train + p->n_eval; i++) {
        bool t = i < p->n_train;
        double x = (double)(t ? p->train_step[i] : p->eval_step[i - p->n_train]);
        double y = t ? p->train_loss[i] : p->eval_loss[i - p->n_train];
        if (x > r->x1) r->x1 = x;
        if (!(fabs(y) <= LOSS_DRAWN_MAX)) continue;
        if (y < r->y0) r->y0 = y;
        if (y > r->y1) r->y1 = y;
    }
    if (!(r->y1 >= r->y0)) r->y0 = 0, r->y1 = 0; /* no loss within range */
    /* equal, or so close that ticks could not be told apart: a unit-wide axis around them */
    if (!(r->y1 - r->y0 > 1e-9 * fmax(fabs(r->y0), fabs(r->y1)))) r->y0 -= 0.5, r->y1 += 0.5;
    double pad = 0.06 * (r->y1 - r->y0);
    r->y0 = r->y0 - pad < 0 && r->y0 >= 0 ? 0 : r->y0 - pad;
    r->y1 += pad;
}

int train_plot_loss(const char *metrics_path, int64_t max_step, const char *title,
                    const char *png_path, char *err, size_t errlen) {
    LossPoints p;
    if (loss_points_read(metrics_path, max_step, &p, err, errlen) != 0) return -1;
    if (p.n_train + p.n_eval == 0) {
        loss_points_free(&p);
        return store_error(err, errlen, 0, "%s: no training or evaluation losses to draw",
                           metrics_path);
    }
    Canvas *c = malloc(sizeof *c);
    if (!c) {
        loss_points_free(&p);
        return store_error(err, errlen, 0, "out of memory drawing %s", png_path);
    }
    memset(c, 255, sizeof *c);
    Range r;
    range_of(&p, &r);
    axes(c, &r, title);
    curve(c, &r, p.train_step, p.train_loss, p.n_train, TRAIN, false);
    curve(c, &r, p.eval_step, p.eval_loss, p.n_eval, EVAL, true);
    legend(c, p.n_eval > 0);
    int rc = png_write_rgb(png_path, W, H, &c->px[0][0][0], err, errlen);
    free(c);
    loss_points_free(&p);
    return rc;
}

void loss_points_free(LossPoints *p) {
    free(p->train_step);
    free(p->eval_step);
    free(p->train_loss);
    free(p->eval_loss);
    memset(p, 0, sizeof *p);
}

static int push(int64_t **xs, double **ys, int *n, int *cap, int64_t x, double y) {
    if (*n == *cap) {
        if (*cap > INT32_MAX / 2) return -1;
        int c = *cap ? 2 * *cap : 256;
        int64_t *nx = realloc(*xs, (size_t)c * sizeof *nx);
        if (!nx) return -1;
        *xs = nx;
        double *ny = realloc(*ys, (size_t)c * sizeof *ny);
        if (!ny) return -1;
        *ys = ny;
        *cap = c;
    }
    (*xs)[*n] = x;
    (*ys)[(*n)++] = y;
    return 0;
}

int loss_points_read(const char *metrics_path, int64_t max_step, LossPoints *p, char *err,
                     size_t errlen) {
    memset(p, 0, sizeof *p);
    p->last_tokens = -1;
    FILE *f = fopen(metrics_path, "rb");
    if (!f) return store_error(err, errlen, errno, "%s: cannot open", metrics_path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int cap_t = 0, cap_e = 0, rc = 0;
    while (rc == 0 && (len = getline(&buf, &cap, f)) > 0) {
        json_t *j = json_loadb(buf, (size_t)len, 0, NULL); /* a torn last line is skipped */
        json_t *s = json_object_get(j, "step"), *loss = json_object_get(j, "loss"),
               *eval = json_object_get(j, "eval_loss"), *tokens = json_object_get(j, "tokens"),
               *nonfinite = json_object_get(j, "nonfinite_skipped");
        int64_t step = json_is_integer(s) ? json_integer_value(s) : -1;
        if (step >= 0 && step <= max_step) {
            if (json_is_number(loss))
                rc = push(&p->train_step, &p->train_loss, &p->n_train, &cap_t, step,
                          json_number_value(loss));
            if (rc == 0 && json_is_number(eval))
                rc = push(&p->eval_step, &p->eval_loss, &p->n_eval, &cap_e, step,
                          json_number_value(eval));
            if (json_is_integer(tokens)) { /* a training line */
                p->last_tokens = json_integer_value(tokens);
                p->last_step = step;
                p->last_nonfinite_skipped =
                    json_is_integer(nonfinite) ? json_integer_value(nonfinite) : 0;
            }
        }
        json_decref(j);
    }
    free(buf);
    fclose(f);
    if (rc != 0) {
        loss_points_free(p);
        return store_error(err, errlen, 0, "%s: out of memory reading the metrics", metrics_path);
    }
    return 0;
}
