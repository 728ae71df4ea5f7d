/*
 * ckpt_writer.h: checkpoints written on a helper thread, so the training loop does not wait
 * for the disk.
 *
 * The run builds each checkpoint in memory on its own thread (tr_ckpt_build: a copy of the
 * parameters, the optimizer state and the run's progress) and hands the image over; the
 * writer thread writes, syncs and renames it (tr_ckpt_write) and then, when asked, deletes
 * the checkpoints past keep_last. Images are written in the order they were handed over.
 * A failed write is sticky: the next hand-over and every wait return it (the message names
 * the file), and nothing more is written. Whoever announces that a checkpoint exists (the end
 * of training, a stop by a signal) waits first.
 */
#ifndef TRAINER_CKPT_WRITER_H
#define TRAINER_CKPT_WRITER_H

#include "trainer/ckpt.h"
#include "trainer/error.h"

#include <stdint.h>

typedef struct tr_ckpt_writer tr_ckpt_writer;

/* Starts the writer thread (which blocks every signal: handlers run on the caller's thread). */
int tr_ckpt_writer_open(tr_ckpt_writer **w, tr_err *err);

/* Takes `img` over (img->bytes is NULL afterwards) and queues it; unless rotate_dir is NULL,
 * tr_ckpt_rotate(rotate_dir, keep, newest) follows the write. Waits only while the queue is
 * full. Returns the error of an earlier write instead (the image is then freed, not written). */
int tr_ckpt_writer_submit(tr_ckpt_writer *w, tr_ckpt_image *img, const char *rotate_dir, int64_t keep,
                          int64_t newest, tr_err *err);

/* Waits until everything handed over is on disk (or failed): 0, or the first error. */
int tr_ckpt_writer_wait(tr_ckpt_writer *w, tr_err *err);

/* Waits, stops the thread and frees the writer (NULL is allowed). */
void tr_ckpt_writer_close(tr_ckpt_writer *w);

#endif
