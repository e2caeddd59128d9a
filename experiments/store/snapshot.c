#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lp_status lp_snapshot_make(lp_graph *g, lp_optimizer *o, lp_snapshot *s, lp_error *err)
{
    memset(s, 0, sizeof *s);
    int np = lp_graph_num_params(g), nb = lp_graph_num_buffers(g);
    int ns = o ? np * lp_optim_num_states(o) : 0;
    s->params = calloc((size_t)np + (size_t)nb + 1, sizeof *s->params);
    s->states = calloc((size_t)ns + 1, sizeof *s->states);
    size_t names_size = 1;
    for (int k = 0; k < np && o; k++)
        names_size += (strlen(lp_graph_param_name(g, k)) + 16) * (size_t)lp_optim_num_states(o);
    s->names = malloc(names_size);
    if (!s->params || !s->states || !s->names) {
        lp_snapshot_free(s);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    }
    float *params = lp_graph_params(g);
    for (int k = 0; k < np; k++) {
        s->params[k] = (lp_tensor_ref){lp_graph_param_name(g, k), lp_graph_param_shape(g, k),
                                       params + lp_graph_param_offset(g, k)};
    }
    /* Buffers (running statistics) travel with the parameters, as in a PyTorch
     * state_dict: same section of a checkpoint, same safetensors file. */
    float *buffers = lp_graph_buffers(g);
    for (int k = 0; k < nb; k++)
        s->params[np + k] = (lp_tensor_ref){lp_graph_buffer_name(g, k), lp_graph_buffer_shape(g, k),
                                            buffers + lp_graph_buffer_offset(g, k)};
    s->n_params = np + nb;
    char *p = s->names;
    for (int j = 0; o && j < lp_optim_num_states(o); j++)
        for (int k = 0; k < np; k++) {
            int len = sprintf(p, "%s.%s", lp_graph_param_name(g, k), lp_optim_state_name(o, j));
            s->states[s->n_states++] = (lp_tensor_ref){p, lp_graph_param_shape(g, k),
                                                       lp_optim_state(o, j) + lp_graph_param_offset(g, k)};
            p += len + 1;
        }
    return LP_OK;
}

void lp_snapshot_free(lp_snapshot *s)
{
    free(s->params);
    free(s->states);
    free(s->names);
    memset(s, 0, sizeof *s);
}

lp_status lp_snapshot_encode(lp_graph *g, lp_optimizer *o, const lp_resume_state *resume,
                             void **buf, size_t *size, lp_error *err)
{
    lp_snapshot s;
    lp_status st = lp_snapshot_make(g, o, &s, err);
    if (st) return st;
    st = lp_checkpoint_encode(s.params, s.n_params, s.states, s.n_states, resume, buf, size, err);
    lp_snapshot_free(&s);
    return st;
}

lp_status lp_snapshot_restore(const void *buf, size_t size, lp_graph *g, lp_optimizer *o,
                              lp_resume_state *resume, const char *what, lp_error *err)
{
    lp_checkpoint ck;
    lp_status st = lp_checkpoint_decode(buf, size, &ck, err);
    if (st) return st;
    lp_snapshot s;
    st = lp_snapshot_make(g, o, &s, err);
    if (!st) st = lp_tensors_load(ck.params, ck.n_params, s.params, s.n_params, what, err);
    if (!st && o) st = lp_tensors_load(ck.states, ck.n_states, s.states, s.n_states, what, err);
    if (!st && resume) *resume = ck.resume;
    lp_snapshot_free(&s);
    lp_checkpoint_free(&ck);
    return st;
}
