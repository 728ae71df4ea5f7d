/*
 * data_node.h: the loaded data held once per node.
 *
 * Local rank 0 of each node loads, splits and scales the configured data exactly as
 * tr_data_load does (every format: generators, CSV, IDX, HDF5), then moves the three sets
 * into node-shared memory (dist.h); the node's other ranks map the same bytes read-only. So a
 * node of 64 ranks holds one copy of the data, not 64, and every rank still sees every set
 * whole (the same row counts everywhere, as data.h promises). Alone on a node, a rank keeps
 * its own copy as before.
 */
#ifndef TRAINER_DATA_NODE_H
#define TRAINER_DATA_NODE_H

#include "trainer/data.h"
#include "trainer/dist.h"

/* tr_data_load on local rank 0, shared with the node. A failure anywhere fails every rank
 * (the loading rank's message is every rank of its node's message). Collective. */
int tr_data_load_node(tr_data *d, const tr_config *c, const tr_loss *L, tr_dist *dist, tr_err *err);

#endif
