/* checkpoint.h - a versioned, self-describing, checksummed binary checkpoint.
 *
 * A checkpoint holds what a run needs to continue exactly where it stopped:
 * the parameters, the optimizer state and a small resume record. Tensors are
 * keyed by name and shape, never by position (the lesson of kann: reorder a
 * table and old models break), so loading checks each one against the model.
 *
 * Layout (all integers and floats little-endian; see docs/runs-db.md):
 *
 *   "LPCK"  u32 version (2; 1 is still read)  u32 flags (0)  u32 n_params  u32 n_states
 *   n_params + n_states tensors, each:
 *       u16 name_len (1..255)  name bytes (no NUL)
 *       u32 ndim (1..LP_MAX_DIMS)  u32 dims[ndim] (each >= 1)
 *       f32 data[prod(dims)]
 *   u32 resume_len (= 120; 64 in version 1)  resume record:
 *       i64 epoch  i64 step  u64 rng[4]  f64 lr  f64 schedule_pos
 *       version 2 adds the plateau schedule's and early stopping's state:
 *       f64 plateau_lr  f64 plateau_best  i64 plateau_bad_epochs  i64 plateau_cooldown
 *       f64 select_best  i64 select_best_epoch  i64 select_bad_epochs
 *   u32 CRC-32 (zlib) of every byte before it
 *
 * The trainer speaks plain data: (name, shape, float *) triples that view its
 * parameter and optimizer blocks. Nothing here knows the graph.
 *
 *   void *buf; size_t n;
 *   lp_checkpoint_encode(params, np, states, ns, &resume, &buf, &n, &err);
 *   ...
 *   lp_checkpoint ck;
 *   lp_checkpoint_decode(buf, n, &ck, &err);            // validates everything
 *   lp_tensors_load(ck.params, ck.n_params, model, nm, "checkpoint", &err);
 *   lp_checkpoint_free(&ck);
 */
#ifndef LP_CHECKPOINT_H
#define LP_CHECKPOINT_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_CHECKPOINT_MAGIC "LPCK"
#define LP_CHECKPOINT_VERSION 2
#define LP_CHECKPOINT_NAME_MAX 255
#define LP_CHECKPOINT_MAX_TENSORS 65536

/* A named view of a float tensor (row-major, PyTorch layout). `data` points at
 * numel(shape) floats; it is written only by the load helpers. */
typedef struct lp_tensor_ref {
    const char *name;
    lp_shape shape;
    float *data;
} lp_tensor_ref;

/* What a resumed run needs besides the tensors. */
typedef struct lp_resume_state {
    int64_t epoch;         /* epochs completed when saved */
    int64_t step;          /* optimizer steps taken */
    uint64_t rng[4];       /* generator state (lp_rng.s) */
    double lr;             /* learning rate in force when saved */
    double schedule_pos;   /* schedule position (fractional epoch) */
    /* version 2: ReduceLROnPlateau's lr, best, num_bad_epochs, cooldown_counter */
    double plateau_lr, plateau_best;
    int64_t plateau_bad_epochs, plateau_cooldown;
    /* version 2: the best-epoch / early-stopping rule's best, its epoch, epochs since */
    double select_best;
    int64_t select_best_epoch, select_bad_epochs;
    bool has_v2_state;     /* decoded from version 2 (not stored: the version says it) */
} lp_resume_state;

/* A decoded checkpoint: tensors own their names and data (one allocation). */
typedef struct lp_checkpoint {
    int version;
    int n_params;
    lp_tensor_ref *params;
    int n_states;
    lp_tensor_ref *states;   /* optimizer state: "fc1.weight.momentum", ... */
    lp_resume_state resume;
    void *mem_;              /* private: the block everything above lives in */
} lp_checkpoint;

/* Encode params[n_params], states[n_states] (may be NULL with 0) and resume
 * (NULL: all zero) into a malloc'd buffer *out of *out_size bytes; free() it.
 * Names must be 1..255 bytes, shapes valid: a violation is LP_ERR_ARG naming
 * the tensor. Duplicate names within a section are refused too. */
lp_status lp_checkpoint_encode(const lp_tensor_ref *params, int n_params, const lp_tensor_ref *states,
                               int n_states, const lp_resume_state *resume, void **out,
                               size_t *out_size, lp_error *err);

/* Decode buf[size] into *out after validating every field against the buffer
 * (magic, version, counts, name lengths, dims, sizes, checksum). Corruption is
 * LP_ERR_DATA with the reason and byte offset; *out is then zeroed. Free with
 * lp_checkpoint_free. Nothing of buf is referenced after return. */
lp_status lp_checkpoint_decode(const void *buf, size_t size, lp_checkpoint *out, lp_error *err);

void lp_checkpoint_free(lp_checkpoint *c);

/* Format version stored in buf, or -1 if buf does not start like a checkpoint. */
int lp_checkpoint_peek_version(const void *buf, size_t size);

/* CRC-32 (zlib polynomial) of buf[size]; any size. */
uint32_t lp_crc32(const void *buf, size_t size);

/* Copy src tensors into dst (the model's expected list) by name. Every dst
 * name must be present in src with the same shape, and every src tensor must
 * be wanted by dst; otherwise LP_ERR_SHAPE / LP_ERR_DATA naming the tensor,
 * e.g. "checkpoint tensor 'conv1.weight' has shape [8, 1, 3, 3], model expects
 * [16, 1, 3, 3]". `what` ("checkpoint", "file.safetensors") starts messages.
 * Nothing is written unless everything matches. */
lp_status lp_tensors_load(const lp_tensor_ref *src, int n_src, const lp_tensor_ref *dst, int n_dst,
                          const char *what, lp_error *err);

#endif
