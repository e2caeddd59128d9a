/* safetensors.h - export parameters to, and import them from, .safetensors files.
 *
 * The format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON
 *   {"__metadata__": {"format": "pt", ...},
 *    "conv1.weight": {"dtype": "F32", "shape": [8, 1, 3, 3], "data_offsets": [0, 288]}, ...}
 * then the raw little-endian tensor bytes, offsets relative to the end of the
 * header. loupe writes F32 only, in PyTorch layouts (conv weight [out, in, kh, kw],
 * dense weight [out, in]) under the graph's parameter names, so
 * `safetensors.torch.load_file` gives a state_dict a matching nn.Module accepts.
 *
 * Reading is strict: the header is parsed by a small JSON parser written for it
 * (UTF-8 checked, depth-limited, duplicate keys refused), and every tensor must be
 * F32, have the model's shape, and lie inside the data without overlap or holes.
 */
#ifndef LP_SAFETENSORS_H
#define LP_SAFETENSORS_H

#include "checkpoint.h"   /* lp_tensor_ref */

/* Largest header accepted (the reference implementation's limit). */
#define LP_SAFETENSORS_MAX_HEADER 100000000u

/* Encode tensors[n] and metadata (n_meta string pairs; "format": "pt" is added
 * unless given) into a malloc'd buffer. Names must be non-empty, unique and not
 * "__metadata__"; LP_ERR_ARG otherwise. */
lp_status lp_safetensors_encode(const lp_tensor_ref *tensors, int n, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta, void **out, size_t *out_size,
                                lp_error *err);

/* Same, written to path atomically (temp file in the same directory, fsync,
 * rename, fsync of the directory): a crash leaves the old file or the new one. */
lp_status lp_safetensors_write(const char *path, const lp_tensor_ref *tensors, int n,
                               const char *const *meta_keys, const char *const *meta_values, int n_meta,
                               lp_error *err);

/* Validate buf[size] as a safetensors file and copy its tensors into model[n]
 * by name (see lp_tensors_load: missing, extra or mis-shaped tensors are refused
 * naming the tensor; nothing is written unless all match). `what` names the
 * source in messages (a path). */
lp_status lp_safetensors_decode_into(const void *buf, size_t size, const lp_tensor_ref *model, int n,
                                     const char *what, lp_error *err);

/* Read path and lp_safetensors_decode_into the model. */
lp_status lp_safetensors_read(const char *path, const lp_tensor_ref *model, int n, lp_error *err);

/* Write buf[size] to path atomically (as lp_safetensors_write does). LP_ERR_IO
 * naming the path and the system's reason on failure; the temp file is removed. */
lp_status lp_file_write_atomic(const char *path, const void *buf, size_t size, lp_error *err);

#endif
