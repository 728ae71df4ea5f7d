/*
 * sampler.h: which rows every rank trains on, micro-step by micro-step.
 *
 * An epoch's order is a permutation of the training rows that depends only on (seed, epoch)
 * (or the identity without shuffling). It is cut into global micro-batches of `batch` rows
 * (the last one ragged unless drop_last); `accumulate` consecutive micro-batches form one
 * optimizer step (a trailing partial group still steps). Rank r of P takes the contiguous
 * slice [floor(r G / P), floor((r+1) G / P)) of a micro-batch of G rows, so slices differ by
 * at most one row and no row is duplicated or padded.
 */
#ifndef TRAINER_SAMPLER_H
#define TRAINER_SAMPLER_H

#include "trainer/error.h"
#include "trainer/rng.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_sampler {
    int64_t n;          /* training rows */
    int64_t batch;      /* global rows per micro-batch */
    int64_t accumulate; /* micro-batches per optimizer step */
    bool shuffle, drop_last;
    int64_t block_rows, window_blocks; /* block shuffle (tr_sampler_use_blocks); 0: global */
    int64_t *blocks;                   /* (blocks) the block order of an epoch */
    int64_t *locality;                 /* (n) the rows in source order: blocks are runs of it */
    tr_rng rng;
    int rank, size;
    int64_t epoch;      /* the epoch `perm` belongs to (-1 before the first) */
    int64_t *perm;      /* (n) the epoch's row order */
    /* held once per node (tr_sampler_share): perm and locality are not ours to free */
    bool shared, writer;
    void (*barrier)(void *ctx);
    void *barrier_ctx;
} tr_sampler;

int tr_sampler_init(tr_sampler *s, int64_t n, int64_t batch, int64_t accumulate, bool shuffle, bool drop_last,
                    uint64_t seed, int rank, int size, tr_err *err);
/* Block shuffle instead of a global one: each epoch permutes blocks of `block_rows` rows
 * consecutive in the source, then the rows inside each window of `window_blocks` consecutive
 * blocks of that order; still a pure function of (seed, epoch), and reads runs of consecutive
 * rows. `source_row` (n entries, or NULL: the rows are in source order) says where each row
 * lies in its file: a shuffled split's training rows are not in file order. */
int tr_sampler_use_blocks(tr_sampler *s, int64_t block_rows, int64_t window_blocks, const int64_t *source_row,
                          tr_err *err);

void tr_sampler_free(tr_sampler *s);

/* Rows of order the sampler holds (perm, and locality with a block shuffle after a shuffled
 * split): what tr_sampler_share needs room for. */
int64_t tr_sampler_order_rows(const tr_sampler *s);
/* The order held once per node instead of once per rank: `shared` (node-shared memory of
 * tr_sampler_order_rows entries) replaces the sampler's own arrays. The `writer` (one rank of
 * the node) builds each epoch's order there; every rank of the node calls `barrier` before
 * (nobody still reads the old order) and after (everybody reads the new one), so
 * tr_sampler_set_epoch becomes collective over the node. The writer copies its locality in
 * first; the caller then passes the node barrier once before any rank reads it. */
void tr_sampler_share(tr_sampler *s, int64_t *shared, bool writer, void (*barrier)(void *ctx), void *ctx);

/* Block shuffle: the rows of the windows that hold positions [a, b) of the epoch's order, as
 * the blocks they were drawn from, each block's rows in source order (runs of the file, to read
 * ahead); returns how many were written to out (room for b - a + 2 windows + 2 blocks of rows)
 * and sets *next to the position after the last block written. Nothing without block shuffling. */
int64_t tr_sampler_block_rows(const tr_sampler *s, int64_t a, int64_t b, int64_t *out, int64_t *next);

/* Builds the order of `epoch` (0-based). */
void tr_sampler_set_epoch(tr_sampler *s, int64_t epoch);

/* Micro-batches per epoch, and optimizer steps per epoch. */
int64_t tr_sampler_micro_batches(const tr_sampler *s);
int64_t tr_sampler_steps(const tr_sampler *s);

/* Micro-batches in optimizer step `step` of the epoch (accumulate, or fewer at the end). */
int64_t tr_sampler_step_micro_batches(const tr_sampler *s, int64_t step);

/* Micro-batch j of the epoch: its global row count, and this rank's rows
 * (*rows points into the permutation; *n_rows of them). */
void tr_sampler_micro(const tr_sampler *s, int64_t j, int64_t *global_rows, const int64_t **rows, int64_t *n_rows);

/* Every rank's rows of optimizer step `step` of the epoch, in order (*rows points into the
 * permutation, *n of them): its micro-batches are consecutive there. */
void tr_sampler_step_rows(const tr_sampler *s, int64_t step, const int64_t **rows, int64_t *n);

/* Every rank's rows of micro-batch j (*rows points into the permutation, *n of them). */
void tr_sampler_micro_all(const tr_sampler *s, int64_t j, const int64_t **rows, int64_t *n);

/* The most rows any rank gets in one micro-batch (sizes the workspace). */
int64_t tr_sampler_max_local_rows(const tr_sampler *s);

/* Contiguous share [*begin, *end) of rank r of P in n items. */
void tr_share(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

/* Evaluation share: n rows cut into chunks of `chunk` rows, whole chunks dealt out as
 * contiguous ranges; rows [*begin, *end) are rank r's. Chunks (not ranks) fix how rows are
 * grouped into kernels, so results do not depend on the rank count. */
void tr_chunk_share(int64_t n, int64_t chunk, int rank, int size, int64_t *begin, int64_t *end);

#endif
