/*
 * data_node.c: the loaded data held once per node (see data_node.h).
 *
 * Local rank 0 loads into its own memory, broadcasts the shapes (and its error, if any) to the
 * node, every rank agrees, then the sets' arrays are copied into one node-shared block (each
 * 64-byte aligned) and the loader's copies freed. The features of a view (dataset.h) are not
 * copied: every rank maps the same file region itself, and the page cache holds it once.
 */
#include "trainer/data_node.h"

#include <stdlib.h>
#include <string.h>

/* What the node's other ranks need to know to use the shared block. */
typedef struct node_header {
    int rc;
    char msg[sizeof(((tr_err *)0)->msg)];
    struct {
        int64_t rows, cols, tcols;
        bool origin_is_line, has_index, scaled;
        int map; /* a view of maps[map]; -1: plain */
        char source[TR_PATH_MAX + 64];
    } set[3];
    struct {
        char path[TR_PATH_MAX];
        int64_t offset, size, file_size;
        dev_t dev;
        ino_t ino;
    } map[2];
    char source[TR_PATH_MAX + 64];
    int64_t dropped, fingerprint;
    tr_scale_kind scale_kind;
    int64_t scale_cols;
} node_header;

/* Where set i's arrays lie in the shared block (offsets; SIZE_MAX: not in it). */
typedef struct set_layout {
    size_t x, y, origin, index;
} set_layout;

static size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }

static tr_dataset *set_of(tr_data *d, int i) { return i == 0 ? &d->train : i == 1 ? &d->val : &d->test; }

static size_t lay_out(const node_header *h, set_layout *lay)
{
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        const size_t rows = (size_t)h->set[i].rows;
        lay[i].x = lay[i].index = SIZE_MAX;
        if (h->set[i].map < 0) {
            lay[i].x = at;
            at += aligned(rows * (size_t)h->set[i].cols * sizeof(float));
        }
        lay[i].y = at;
        at += aligned(rows * (size_t)h->set[i].tcols * sizeof(float));
        lay[i].origin = at;
        at += aligned(rows * sizeof(int64_t));
        if (h->set[i].has_index) {
            lay[i].index = at;
            at += aligned(rows * sizeof(int64_t));
        }
    }
    return at;
}

static void describe(node_header *h, tr_data *d)
{
    for (int k = 0; k < 2; k++) {
        const tr_mapping *m = &d->maps[k];
        snprintf(h->map[k].path, sizeof h->map[k].path, "%s", m->path);
        h->map[k].offset = m->offset;
        h->map[k].size = (int64_t)m->size;
        h->map[k].file_size = m->file_size;
        h->map[k].dev = m->dev;
        h->map[k].ino = m->ino;
    }
    for (int i = 0; i < 3; i++) {
        const tr_dataset *s = set_of(d, i);
        h->set[i].rows = s->rows;
        h->set[i].cols = s->cols;
        h->set[i].tcols = s->tcols;
        h->set[i].origin_is_line = s->origin_is_line;
        h->set[i].has_index = s->index != NULL;
        h->set[i].scaled = s->center != NULL;
        h->set[i].map = -1;
        for (int k = 0; k < 2; k++)
            if (s->x_borrowed && d->maps[k].map && (const void *)s->X == d->maps[k].data)
                h->set[i].map = k;
        snprintf(h->set[i].source, sizeof h->set[i].source, "%s", s->source);
    }
    snprintf(h->source, sizeof h->source, "%s", d->source);
    h->dropped = d->dropped;
    h->fingerprint = d->fingerprint;
    h->scale_kind = d->scaler.kind;
    h->scale_cols = d->scaler.cols;
}

/* The other ranks map the loader's files themselves; it must be the same file. */
static int map_like_loader(tr_data *d, const node_header *h, tr_err *err)
{
    for (int k = 0; k < 2; k++) {
        if (!h->map[k].path[0] || !h->map[k].size)
            continue;
        int rc = tr_map_file(&d->maps[k], h->map[k].path, h->map[k].offset, (size_t)h->map[k].size, err);
        if (!rc && (d->maps[k].dev != h->map[k].dev || d->maps[k].ino != h->map[k].ino ||
                    d->maps[k].file_size != h->map[k].file_size))
            rc = tr_fail(err, TR_EDATA, "%s: this rank sees another file than local rank 0 of its node (replaced "
                                        "while starting?)", h->map[k].path);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every rank runs the same sequence of world-wide agreements whatever the size of its node
 * (nodes may differ: 2 + 1 ranks); the node-level steps are no-ops on a node of one rank,
 * which keeps its own copy. */
int tr_data_load_node(tr_data *d, const tr_config *c, const tr_loss *L, tr_dist *dist, tr_err *err)
{
    memset(d, 0, sizeof *d);
    const bool loader = dist->local_rank == 0;
    node_header *h = calloc(1, sizeof *h);
    int rc = h ? 0 : tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc && loader) {
        rc = h->rc = tr_data_load(d, c, L, err);
        if (rc)
            snprintf(h->msg, sizeof h->msg, "%s", err->msg);
        else
            describe(h, d);
    }
    /* a rank that could not allocate the header takes part with a dummy; its failure is
     * agreed right after */
    static node_header dummy;
    const int brc = tr_dist_node_bcast(dist, h ? h : &dummy, sizeof *h, rc ? NULL : err);
    if (!rc && brc)
        rc = brc;
    if (!rc && !loader && h->rc)
        rc = tr_fail(err, h->rc, "%s", h->msg); /* the loader's message, on every rank of its node */
    if (!rc && !loader) {
        rc = map_like_loader(d, h, err);
        d->scaler.kind = h->scale_kind; /* the scaler is small: every rank keeps its own */
        d->scaler.cols = h->scale_cols;
        d->scaler.center = calloc((size_t)h->scale_cols + 1, sizeof(float));
        d->scaler.scale = calloc((size_t)h->scale_cols + 1, sizeof(float));
        if (!rc && (!d->scaler.center || !d->scaler.scale))
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    rc = tr_dist_agree(dist, rc);
    int64_t names_len = loader && d->class_names ? (int64_t)strlen(d->class_names) + 1 : 0;
    if (!rc)
        rc = tr_dist_agree(dist, tr_dist_node_bcast(dist, &names_len, sizeof names_len, err));
    if (!rc && !loader && names_len > 0 && !(d->class_names = malloc((size_t)names_len)))
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    rc = tr_dist_agree(dist, rc);
    if (!rc && names_len > 0)
        rc = tr_dist_agree(dist, tr_dist_node_bcast(dist, d->class_names, (size_t)names_len, err));
    if (!rc)
        rc = tr_dist_agree(dist, tr_dist_node_bcast(dist, d->scaler.center, (size_t)h->scale_cols * sizeof(float), err));
    if (!rc)
        rc = tr_dist_agree(dist, tr_dist_node_bcast(dist, d->scaler.scale, (size_t)h->scale_cols * sizeof(float), err));
    /* the shared block */
    set_layout lay[3];
    const size_t total = rc ? 0 : lay_out(h, lay);
    char *base = NULL;
    if (!rc)
        rc = tr_node_mem_alloc(dist, total, (void **)&base, &d->shared, err);
    const bool alone = !rc && !d->shared; /* a node of one rank: its sets stay as loaded */
    if (!rc && loader && !alone) {
        for (int i = 0; i < 3; i++) {
            tr_dataset *s = set_of(d, i);
            const size_t rows = (size_t)s->rows;
            if (rows > 0) {
                if (lay[i].x != SIZE_MAX)
                    memcpy(base + lay[i].x, s->X, rows * (size_t)s->cols * sizeof(float));
                memcpy(base + lay[i].y, s->y, rows * (size_t)s->tcols * sizeof(float));
                memcpy(base + lay[i].origin, s->origin, rows * sizeof(int64_t));
                if (lay[i].index != SIZE_MAX)
                    memcpy(base + lay[i].index, s->index, rows * sizeof(int64_t));
            }
            tr_dataset_free(s);
        }
    }
    if (!rc && !alone) {
        tr_dist_node_barrier(dist); /* the copies are in place before anyone reads them */
        snprintf(d->source, sizeof d->source, "%s", h->source);
        d->dropped = h->dropped;
        d->fingerprint = h->fingerprint;
        for (int i = 0; i < 3; i++) {
            const int k = h->set[i].map;
            tr_dataset *s = set_of(d, i);
            *s = (tr_dataset){.rows = h->set[i].rows,
                              .cols = h->set[i].cols,
                              .tcols = h->set[i].tcols,
                              .X = k >= 0 ? (float *)d->maps[k].data : (float *)(void *)(base + lay[i].x),
                              .y = (float *)(void *)(base + lay[i].y),
                              .origin = (int64_t *)(void *)(base + lay[i].origin),
                              .index = lay[i].index != SIZE_MAX ? (int64_t *)(void *)(base + lay[i].index) : NULL,
                              .origin_is_line = h->set[i].origin_is_line,
                              .borrowed = true,
                              .x_borrowed = k >= 0};
            if (h->set[i].scaled) {
                s->center = d->scaler.center;
                s->scale = d->scaler.scale;
            }
            snprintf(s->source, sizeof s->source, "%s", h->set[i].source);
        }
    }
    free(h);
    if (rc)
        tr_data_free(d);
    return rc;
}
