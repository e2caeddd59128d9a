#include "train.h"

#include "compute.h"
#include "dist.h"
#include "rng.h"
#include "shape.h"
#include "train_dist.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void lp_train_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool lp_train_stop_requested(void) { return stop_requested != 0; }

/* True when every one of x[n] is finite (once per epoch: a pass over the weights). */
static bool finite_block(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static int eval_batch_of(const lp_train_options *o) { return o->eval_batch > 0 ? o->eval_batch : 500; }

/* The rule that flags the best epoch: early stopping's when it is on, else the
 * highest val/acc when there is a validation split, else the highest test/acc. */
static lp_early_stop_config selection_of(const lp_trainer *t)
{
    if (t->opt.early_stop.enabled) return t->opt.early_stop;
    return (lp_early_stop_config){.metric = t->val ? LP_METRIC_VAL_ACC : LP_METRIC_TEST_ACC, .maximize = true};
}

static double metric_of(const lp_epoch_result *r, lp_metric_id m)
{
    switch (m) {
    case LP_METRIC_TRAIN_LOSS: return r->train_loss;
    case LP_METRIC_TRAIN_ACC: return r->train_acc;
    case LP_METRIC_VAL_LOSS: return r->val_loss;
    case LP_METRIC_VAL_ACC: return r->val_acc;
    case LP_METRIC_TEST_LOSS: return r->test_loss;
    case LP_METRIC_TEST_ACC: return r->test_acc;
    }
    return NAN;
}

lp_status lp_trainer_init(lp_trainer *t, lp_graph *g, const lp_dataset *train,
                          const lp_dataset *test, const lp_train_options *opt, lp_error *err)
{
    memset(t, 0, sizeof *t);
    t->graph = g;
    t->train = train;
    t->test = test;
    t->opt = *opt;
    if (opt->batch_size < 1) return lp_error_set(err, LP_ERR_ARG, "batch size must be at least 1");
    long long per_sample = lp_shape_numel(lp_graph_input_shape(g));
    if (per_sample != (long long)train->c * train->h * train->w)
        return lp_error_set(err, LP_ERR_SHAPE,
                            "model input has %lld values per image, the data has %d x %d x %d",
                            per_sample, train->c, train->h, train->w);
    int max_batch = opt->batch_size > eval_batch_of(opt) ? opt->batch_size : eval_batch_of(opt);
    lp_status s = lp_evaluation_init(&t->eval, (int)lp_shape_numel(lp_graph_logits_shape(g)),
                                     test ? test->n : 0, "test", err);
    if (!s) s = lp_graph_plan_lanes(g, max_batch, lp_threads(), err);
    if (!s) s = lp_optim_init(&t->optim, &opt->optim, lp_graph_param_floats(g), err);
    if (s) {
        lp_trainer_free(t);
        return s;
    }
    lp_plateau_init(&t->plateau, &opt->schedule.plateau, opt->optim.lr);
    lp_early_stop_config sel = selection_of(t);
    lp_early_stop_init(&t->select, &sel);
    t->order = malloc((size_t)train->n * sizeof *t->order);
    t->x = malloc((size_t)max_batch * (size_t)per_sample * sizeof *t->x);
    t->y = malloc((size_t)max_batch * sizeof *t->y);
    if (!t->order || !t->x || !t->y) {
        lp_trainer_free(t);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory for batch buffers");
    }
    s = lp_train_dist_init(t, err);
    if (s) lp_trainer_free(t);
    return s;
}

void lp_trainer_free(lp_trainer *t)
{
    lp_optim_free(&t->optim);
    lp_evaluation_free(&t->eval);
    free(t->order);
    free(t->x);
    free(t->y);
    free(t->reduce);
    t->reduce = NULL;
    t->order = NULL;
    t->x = NULL;
    t->y = NULL;
}

/* Count of rows of logits[n, k] whose arg-max equals the label. */
static int count_correct(const float *logits, const int32_t *y, int n, int k)
{
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        correct += best == y[i];
    }
    return correct;
}

/* Loss and accuracy over d in batches of `batch`, each gathered into x (room for
 * `batch` samples); the confusion matrix etc. into ev too when it is not NULL. */
static void evaluate_into(lp_graph *g, const lp_dataset *d, int batch, float *x, double *loss,
                          double *acc, lp_evaluation *ev)
{
    int k = (int)lp_shape_numel(lp_graph_logits_shape(g));
    double loss_sum = 0;
    long long correct = 0;
    if (ev) lp_evaluation_reset(ev);
    for (int start = 0; start < d->n; start += batch) {
        int n = d->n - start < batch ? d->n - start : batch;
        const int32_t *y = d->labels + start;
        lp_dataset_gather_range(d, start, n, x, NULL);
        loss_sum += (double)lp_graph_infer(g, x, y, n) * n;
        if (ev) lp_evaluation_add_batch(ev, lp_graph_batch_logits(g), y, n, k, start);
        else correct += count_correct(lp_graph_batch_logits(g), y, n, k);
    }
    if (ev) {
        lp_evaluation_compute_classes(ev);
        correct = ev->correct;
    }
    *loss = d->n ? loss_sum / d->n : 0;
    *acc = d->n ? (double)correct / d->n : 0;
}

void lp_evaluate(lp_graph *g, const lp_dataset *d, int batch, double *loss, double *acc)
{
    lp_evaluate_confusion(g, d, batch, loss, acc, NULL);
}

void lp_evaluate_confusion(lp_graph *g, const lp_dataset *d, int batch, double *loss, double *acc,
                           lp_evaluation *ev)
{
    size_t per = (size_t)d->c * d->h * d->w;
    /* Test batches are gathered into one buffer, allocated once per call (the set is
     * held as bytes: gather converts them). Should that fail, smaller batches (same
     * result up to rounding); without room for one sample, the loss is NaN (the trainer
     * then stops). */
    if (batch > d->n) batch = d->n > 0 ? d->n : 1;
    float *x = NULL;
    while (batch >= 1 && !(x = malloc((size_t)batch * per * sizeof *x))) batch /= 2;
    if (!x) {
        *loss = *acc = NAN;
        return;
    }
    evaluate_into(g, d, batch, x, loss, acc, ev);
    free(x);
}

void lp_trainer_evaluate(lp_trainer *t, double *loss, double *acc)
{
    /* Under mpirun rank 0 evaluates the whole test set (the evaluation's records,
     * confusion and misclassified images, are its to commit) and every rank gets its
     * figures: the others add zeros, exactly (dist.h). */
    double r[2] = {0, 0};
    if (lp_dist_rank() == 0)
        evaluate_into(t->graph, t->test, eval_batch_of(&t->opt), t->x, &r[0], &r[1], &t->eval);
    lp_dist_sum_f64(r, 2);
    *loss = r[0];
    *acc = r[1];
}

static void format_eta(double s, char *buf, size_t size)
{
    if (s < 0 || s > 359999) s = 0;
    int sec = (int)(s + 0.5);
    if (sec >= 3600) snprintf(buf, size, "%dh%02dm", sec / 3600, sec / 60 % 60);
    else if (sec >= 60) snprintf(buf, size, "%dm%02ds", sec / 60, sec % 60);
    else snprintf(buf, size, "%ds", sec);
}

static void draw_progress(int epoch, int epochs, int done, int total, double elapsed,
                          double loss, double acc)
{
    const int width = 24;
    int filled = total ? (int)((long long)done * width / total) : width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = '\0';
    double rate = elapsed > 0 ? done / elapsed : 0;
    char eta[16];
    format_eta(rate > 0 ? (total - done) / rate : 0, eta, sizeof eta);
    fprintf(stderr, "\repoch %d/%d [%s] %3d%% %7.0f img/s ETA %-6s loss %.4f acc %.2f%%\033[K",
            epoch, epochs, bar, total ? (int)(100LL * done / total) : 100, rate, eta, loss,
            100 * acc);
    fflush(stderr);
}

lp_status lp_trainer_run(lp_trainer *t, lp_epoch_hook hook, void *hook_ctx, lp_epoch_result *last,
                         lp_error *err)
{
    const lp_train_options *o = &t->opt;
    const lp_dataset *d = t->train;
    lp_graph *g = t->graph;
    FILE *log = o->log ? o->log : stderr;
    int k = (int)lp_shape_numel(lp_graph_logits_shape(g));
    int steps_per_epoch = (d->n + o->batch_size - 1) / o->batch_size;
    long long step = (long long)t->start_epoch * steps_per_epoch;
    float *params = lp_graph_params(g);
    const float *grads = lp_graph_grads(g);
    size_t per_sample = (size_t)d->c * d->h * d->w;
    /* Resumed after the epoch that early stopping ended on (killed before the run
     * was closed): nothing more to train. */
    lp_early_stop_config sel0 = selection_of(t);
    if (t->start_epoch > 0 && lp_early_stop_due(&t->select, &sel0)) {
        lp_early_stop_reason(&t->select, &sel0, t->stop_reason, sizeof t->stop_reason);
        return LP_OK;
    }

    for (int epoch = t->start_epoch; epoch < o->epochs; epoch++) {
        lp_rng rng;
        lp_rng_seed(&rng, lp_rng_derive(o->seed, 1000 + (uint64_t)epoch));
        for (int i = 0; i < d->n; i++) t->order[i] = i;
        if (o->shuffle) lp_rng_shuffle(&rng, t->order, d->n);

        double t0 = lp_seconds(), last_draw = 0, loss_sum = 0;
        long long correct = 0;
        int seen = 0;
        float lr = o->optim.lr;
        for (int b = 0; b < steps_per_epoch; b++) {
            int start = b * o->batch_size;
            int n = d->n - start < o->batch_size ? d->n - start : o->batch_size;
            lp_dataset_gather(d, t->order + start, n, t->x, t->y);
            if (o->augment_shift > 0)
                lp_augment_shift(t->x, n, d->c, d->h, d->w, o->augment_shift, &rng, o->augment_fill);
            lr = o->schedule.type == LP_SCHEDULE_PLATEAU
                     ? (float)t->plateau.lr
                     : lp_schedule_lr(&o->schedule, o->optim.lr, step, steps_per_epoch, o->epochs);
            lp_graph_set_step(g, o->seed, (uint64_t)step);
            /* This rank's shard of the batch (all of it for one process; train_dist.h) */
            int lo, hi, batch_correct = 0;
            lp_dist_shard(n, &lo, &hi);
            float loss = 0;
            if (hi > lo) {
                lp_graph_set_batch_offset(g, lo);   /* dropout draws the masks of samples lo.. */
                loss = lp_graph_train_step(g, t->x + (size_t)lo * per_sample, t->y + lo, hi - lo);
                lp_graph_set_batch_offset(g, 0);
                batch_correct = count_correct(lp_graph_batch_logits(g), t->y + lo, hi - lo, k);
            }
            bool stop = lp_train_stop_requested();
            if (t->reduce) loss = lp_train_dist_step(t, loss, hi - lo, n, &batch_correct, &stop);
            if (!isfinite(loss))
                return lp_error_set(err, LP_ERR_NUMERIC,
                                    "loss became %s in epoch %d at step %lld (batch %d of %d): "
                                    "try a smaller learning rate (now %g)",
                                    isnan(loss) ? "NaN" : "infinite", epoch + 1, step + 1, b + 1,
                                    steps_per_epoch, lr);
            lp_optim_step(&t->optim, params, grads, lr);
            step++;
            loss_sum += (double)loss * n;
            correct += batch_correct;
            seen += n;
            if (o->progress) {
                double el = lp_seconds() - t0;
                if (el - last_draw > 0.1 || b == steps_per_epoch - 1) {
                    draw_progress(epoch + 1, o->epochs, seen, d->n, el, loss_sum / seen,
                                  (double)correct / seen);
                    last_draw = el;
                }
            }
            if (stop) {
                if (o->progress) fputc('\n', stderr);
                return lp_error_set(err, LP_ERR_INTERRUPTED,
                                    "interrupted in epoch %d at step %lld (batch %d of %d); "
                                    "epochs before it are kept",
                                    epoch + 1, step, b + 1, steps_per_epoch);
            }
        }
        lp_epoch_result r = {.epoch = epoch + 1, .step = step, .lr = lr};
        r.seconds = lp_seconds() - t0;
        r.train_loss = loss_sum / seen;
        r.train_acc = (double)correct / seen;
        r.images_per_s = seen / (r.seconds > 0 ? r.seconds : 1e-9);
        lp_trainer_evaluate(t, &r.test_loss, &r.test_acc);
        r.evaluation = &t->eval;
        r.val_loss = r.val_acc = NAN;
        if (t->val) evaluate_into(g, t->val, eval_batch_of(o), t->x, &r.val_loss, &r.val_acc, NULL);
        if (o->progress) fputc('\n', stderr);
        lp_status same = lp_train_dist_check_weights(t, epoch + 1, err);
        if (same) return same;
        /* Every step's loss was finite, but the last update may still have blown the
         * weights up (a loss is computed before its update): such an epoch must not
         * reach the hook, which would commit its checkpoint (as the best, at epoch 1). */
        bool weights_ok = finite_block(params, lp_graph_param_floats(g));
        bool val_ok = !t->val || isfinite(r.val_loss);
        if (!weights_ok || !isfinite(r.test_loss) || !val_ok)
            return lp_error_set(err, LP_ERR_NUMERIC,
                                "%s after the last step of epoch %d (step %lld): epoch %d is not "
                                "recorded; try a smaller learning rate (now %g)",
                                !weights_ok                    ? "the weights became NaN or infinite"
                                : !val_ok && isnan(r.val_loss) ? "the validation loss became NaN"
                                : !val_ok                      ? "the validation loss became infinite"
                                : isnan(r.test_loss)           ? "the test loss became NaN"
                                                               : "the test loss became infinite",
                                epoch + 1, step, epoch + 1, lr);
        /* Epoch-end state, before the hook so its checkpoint carries it: the plateau
         * schedule sets the next epoch's lr (ReduceLROnPlateau.step after validation),
         * the selection rule flags the best epoch and may end training. */
        if (o->schedule.type == LP_SCHEDULE_PLATEAU)
            lp_plateau_step(&t->plateau, &o->schedule.plateau, o->schedule.min_lr,
                            metric_of(&r, o->schedule.plateau.metric));
        lp_early_stop_config sel = selection_of(t);
        r.is_best = lp_early_stop_update(&t->select, &sel, metric_of(&r, sel.metric), r.epoch);
        r.stop = lp_early_stop_due(&t->select, &sel);
        if (!o->quiet && t->val)
            fprintf(log,
                    "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  "
                    "test loss %.4f acc %.2f%%  lr %.4g  %.2fs  %.0f img/s%s\n",
                    r.epoch, o->epochs, r.train_loss, 100 * r.train_acc, r.val_loss, 100 * r.val_acc,
                    r.test_loss, 100 * r.test_acc, r.lr, r.seconds, r.images_per_s, r.is_best ? "  *" : "");
        else if (!o->quiet)
            fprintf(log,
                    "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  "
                    "lr %.4g  %.2fs  %.0f img/s\n",
                    r.epoch, o->epochs, r.train_loss, 100 * r.train_acc, r.test_loss,
                    100 * r.test_acc, r.lr, r.seconds, r.images_per_s);
        fflush(log);
        if (last) *last = r;
        if (hook) {
            lp_status s = lp_dist_rank() == 0 ? hook(hook_ctx, &r, err) : LP_OK;
            s = lp_dist_agree(s, err);
            if (s) return s;
        }
        /* Every rank decides alike (same weights, same figures); agreeing anyway
         * means a disagreement can never leave one rank waiting for the others. */
        if (lp_dist_any(r.stop)) {
            lp_early_stop_reason(&t->select, &sel, t->stop_reason, sizeof t->stop_reason);
            if (!o->quiet && lp_dist_rank() == 0)
                fprintf(log, "stopping after epoch %d: %s\n", r.epoch, t->stop_reason);
            return LP_OK;
        }
        if (lp_dist_any(lp_train_stop_requested()))
            return lp_error_set(err, LP_ERR_INTERRUPTED,
                                "interrupted after epoch %d (it is kept)", epoch + 1);
    }
    snprintf(t->stop_reason, sizeof t->stop_reason, "epochs");
    return LP_OK;
}
