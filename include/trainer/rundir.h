/*
 * rundir.h: one owner per run directory, and nothing of an earlier run lost.
 *
 * A training run owns its directory ([output] dir) for its whole life: rank 0 holds an
 * exclusive lock on DIR/.trainer-lock (flock: released by the kernel when the process ends,
 * however it ends) with its host, PID and start time written inside, so a second trainer in
 * the same directory (a second --resume, a requeued job while the old one still runs) is
 * refused with the holder named. On NFS, Linux emulates flock with byte-range locks that the
 * server enforces across clients (a crashed client's lock lasts until its lease expires,
 * about 90 s on NFSv4). On Lustre, flock works across clients with the `flock` mount option,
 * per node with `localflock`, and fails with `noflock`; where the file system cannot lock,
 * the run goes on with a warning that ownership is not enforced.
 *
 * A directory holds an earlier run when it has a checkpoint (ckpt-*.h5, best.h5) or a
 * metric log with rows (also one a resume kept as metrics.earlier-N.*). A new run (nothing
 * to resume) into such a directory is refused unless the user asks to replace it
 * (--overwrite: the earlier run's files are deleted) or resume = auto found no valid
 * checkpoint there (the earlier files are then moved into DIR/previous-N/ and the run says
 * so). Files the trainer did not write (a user's own config.ini) are never touched: only
 * files recognised as the trainer's by their contents, and never through a link.
 */
#ifndef TRAINER_RUNDIR_H
#define TRAINER_RUNDIR_H

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/error.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct tr_rundir {
    char dir[TR_PATH_MAX];
    int lock_fd; /* the held lock (-1: none) */
} tr_rundir;

/* Creates the directory (with parents), checks it is writable, and takes its lock.
 * TR_EIO naming the holder when another live process owns it. */
int tr_rundir_open(tr_rundir *r, const char *dir, tr_err *err);

/* Releases the lock (the directory and its files stay). Accepts a closed or zeroed one. */
void tr_rundir_close(tr_rundir *r);

/* Refuses (TR_ECONFIG naming the file) a directory where the run would write through or
 * over something not its own: a file under one of the run's names (checkpoints, best.h5,
 * metrics.*, steps.*) that the trainer did not write (recognised by its contents), that is
 * a symbolic link or has other hard links, or that is one of `reads` (the run's inputs,
 * compared by device and inode). config.ini is not refused: a user's own, a link or the run's
 * own configuration file is kept (tr_rundir_write_config). */
int tr_rundir_check_files(const tr_rundir *r, const char *const *reads, int n_reads, tr_err *err);

/* The earlier run's files in the directory ("ckpt-000000100.h5, best.h5, metrics.csv (12
 * rows)") into list; returns how many (0: none, the directory is free for a new run). */
int tr_rundir_earlier_run(const tr_rundir *r, char *list, size_t len);

/* Deletes the earlier run's files (checkpoints, metric log, its effective configuration). */
int tr_rundir_clear(tr_rundir *r, tr_err *err);

/* Moves the earlier run's files into a new DIR/previous-N/; its name goes to `where`. */
int tr_rundir_set_aside(tr_rundir *r, char *where, size_t len, tr_err *err);

/* Writes the effective configuration (through a temporary file and a rename) to
 * DIR/config.ini, or to DIR/effective-config.ini when DIR/config.ini is a file the trainer
 * did not write, a link, or the configuration file this run reads (never overwritten). */
int tr_rundir_write_config(const tr_rundir *r, const tr_config *c, tr_err *err);

/* [data] folds: DIR/folds.csv, every row of the training pool (its row in the file, or its
 * line in a text file: the header says which) and its fold, atomically; nothing without
 * folds. */
int tr_rundir_write_folds(const tr_rundir *r, const tr_data *d, tr_err *err);

/* The first line of every configuration file the trainer writes. */
#define TR_RUNDIR_CONFIG_HEADER "# effective configuration of a trainer run"

#endif
