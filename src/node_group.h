/*
 * node_group.h (private): the node-shared memory of the gradient exchange. One window per
 * node holds, in local rank 0's part, the step counters, the parameters (one or two
 * buffers) and the optimizer's state, and in every rank's part its slot (its gradient, or its
 * chunks in the exact strategy). Ranks of a node signal finished buckets through the
 * counters; the same-numbered ranks of all nodes form the cross communicator the node sums
 * travel in.
 */
#ifndef TRAINER_NODE_GROUP_H
#define TRAINER_NODE_GROUP_H

#include "trainer/dist.h"
#include "trainer/error.h"
#include "dist_impl.h"
#include "grad_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_node_group tr_node_group;

/* Builds the group (*g stays NULL, and 0 is returned, where the world cannot share memory:
 * one rank, or nodes with different rank counts). n_param_bufs (1 or 2) parameter buffers
 * of n_params floats, n_state state buffers, n_counters counters, a slot of slot_bytes per
 * rank; everything zeroed. Collective. */
int tr_node_group_create(tr_node_group **g, tr_dist *d, size_t n_params, int n_param_bufs, int n_state,
                         int n_counters, size_t slot_bytes, tr_err *err);
void tr_node_group_free(tr_node_group *g);

float *tr_node_group_params(tr_node_group *g, int i);
float *tr_node_group_state(tr_node_group *g, int i);
void *tr_node_group_slot(tr_node_group *g, int local_rank);

/* Several nodes: the communicator of the same local rank on every node (else MPI_COMM_NULL). */
MPI_Comm tr_node_group_cross(const tr_node_group *g);

/* Counter b: this rank has finished it in round r (rounds count from 1); complete once every
 * rank of the node has. */
void tr_node_group_signal(tr_node_group *g, int b, int64_t r);
bool tr_node_group_complete(const tr_node_group *g, int b, int64_t r);

/* Sums grads[off, off + n) over the cross communicator in place, in the wire's format;
 * nothing on one node. */
int tr_node_group_cross_sum(tr_node_group *g, tr_grad_wire *wire, float *grads, size_t off, size_t n, tr_err *err);

#endif
