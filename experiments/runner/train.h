/* train.h - the training loop: epochs of shuffled mini-batches, evaluation on the
 * test set, progress, Ctrl-C, and a hook after every epoch.
 *
 * The loop knows nothing of SQLite or YAML: the caller fills lp_train_options,
 * hands in a built graph and the data, and records each epoch in its hook
 * (the CLI commits metrics and a checkpoint there, in one transaction).
 *
 * Determinism: the shuffle and augmentation of epoch e come from a generator
 * seeded with (seed, e), so a run resumed at epoch e sees exactly the batches an
 * uninterrupted run would, with no generator state to save.
 */
#ifndef LP_TRAIN_H
#define LP_TRAIN_H

#include "dataset.h"
#include "early_stop.h"
#include "evaluate.h"
#include "graph.h"
#include "optim.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct lp_train_options {
    int epochs;
    int batch_size;
    uint64_t seed;
    bool shuffle;
    int augment_shift;        /* random translation of up to this many pixels (0 = off) */
    float augment_fill;       /* value of a blank pixel after normalisation */
    lp_optim_config optim;
    lp_schedule_config schedule;
    lp_early_stop_config early_stop;   /* also picks the best epoch when not enabled */
    int eval_batch;           /* batch size for evaluation (0: 500) */
    bool progress;            /* redraw a progress bar on stderr (a terminal) */
    bool quiet;               /* no per-epoch lines either */
    FILE *log;                /* where epoch lines go (stderr if NULL) */
} lp_train_options;

typedef struct lp_epoch_result {
    int epoch;                /* 1-based */
    long long step;           /* optimizer steps taken so far */
    double train_loss, train_acc;
    double val_loss, val_acc;   /* on the validation split; NaN without one */
    double test_loss, test_acc;
    double lr;                /* of the epoch's last step */
    bool is_best;             /* the best epoch so far by opt.early_stop's rule */
    bool stop;                /* early stopping ends training after this epoch */
    double seconds;           /* wall time of the training part */
    double images_per_s;
    /* The test pass's confusion matrix, per-class rows and misclassified images
     * (evaluate.h); owned by the trainer, valid during the hook. */
    const lp_evaluation *evaluation;
} lp_epoch_result;

/* Called after each epoch's evaluation. Return LP_OK to go on; anything else
 * stops training with that status (the error explains). */
typedef lp_status (*lp_epoch_hook)(void *ctx, const lp_epoch_result *r, lp_error *err);

typedef struct lp_trainer {
    lp_graph *graph;
    lp_optimizer optim;
    const lp_dataset *train, *test;
    const lp_dataset *val;    /* held-out training images, or NULL (set after init) */
    lp_train_options opt;
    int start_epoch;          /* 0 for a new run; E to resume after E committed epochs */
    /* State that changes per epoch and travels in checkpoints (set it to resume): */
    lp_plateau plateau;       /* the plateau schedule's lr, best, counters */
    lp_early_stop select;     /* best epoch and epochs since, for is_best and stopping */
    char stop_reason[192];    /* after lp_trainer_run returned LP_OK: why it ended */
    lp_evaluation eval;       /* of the last test pass (lp_trainer_evaluate) */
    /* private */
    int *order;
    float *x;
    int32_t *y;
    float *reduce;            /* the ranks' gradient sum (train_dist.h); NULL for one process */
} lp_trainer;

/* Prepare: plan the graph for the batch sizes, allocate the optimizer state and
 * the batch buffers (all allocation happens here, none in the loop). */
lp_status lp_trainer_init(lp_trainer *t, lp_graph *g, const lp_dataset *train,
                          const lp_dataset *test, const lp_train_options *opt, lp_error *err);
void lp_trainer_free(lp_trainer *t);

/* Run epochs start_epoch+1 .. opt.epochs, or until early stopping says so after an
 * epoch (recorded first; stop_reason then tells why, else it is "epochs"). Stops on NaN/Inf loss (LP_ERR_NUMERIC,
 * naming epoch and step), on Ctrl-C/SIGTERM (LP_ERR_INTERRUPTED), or when the
 * hook fails. An epoch whose steps all had finite losses but that ends with
 * non-finite weights or a non-finite test or validation loss also stops with LP_ERR_NUMERIC
 * before its hook runs, so a poisoned epoch is never recorded. The last epoch result is copied to *last if not NULL. */
/* Under mpirun (dist.h) every rank runs this loop on its shard of each batch and the
 * hook runs on rank 0 alone: what it returns (and a stop asked on any rank) ends the
 * loop on every rank alike; rank 0 evaluates the test set and shares its figures. */
lp_status lp_trainer_run(lp_trainer *t, lp_epoch_hook hook, void *hook_ctx, lp_epoch_result *last,
                         lp_error *err);

/* Loss and accuracy of g on d (eval mode), batches of `batch` (g planned for them
 * with lp_graph_plan_lanes). */
void lp_evaluate(lp_graph *g, const lp_dataset *d, int batch, double *loss, double *acc);

/* The same, also filling ev (initialised for the model's classes and d->n
 * misclassified images: evaluate.h) with the confusion matrix, per-class rows and the
 * misclassified images, from the same pass. */
void lp_evaluate_confusion(lp_graph *g, const lp_dataset *d, int batch, double *loss, double *acc,
                           lp_evaluation *ev);

/* The same on the trainer's test set, in batches of its eval_batch, through its
 * batch buffers: no allocation (what the epoch loop and `loupe bench` time). Fills
 * t->eval as lp_evaluate_confusion does. */
void lp_trainer_evaluate(lp_trainer *t, double *loss, double *acc);

/* Install SIGINT/SIGTERM handlers that ask the loop to stop after the current
 * batch; lp_train_stop_requested() tells whether one came. */
void lp_train_catch_signals(void);
bool lp_train_stop_requested(void);

#endif
