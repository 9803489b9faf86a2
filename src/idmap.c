/* idmap.c - open addressing, linear probing, power-of-two table, no
 * deletion (accounts come and stay for the life of a batch or a node). */
#include "idmap.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct slot {
    long long id;
    void *value; /* NULL = empty */
} slot;

struct sfl_idmap {
    slot *v;
    size_t cap, n;
};

static size_t hash(long long id, size_t cap)
{
    uint64_t x = (uint64_t)id;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

sfl_idmap *sfl_idmap_new(void)
{
    sfl_idmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = 16;
    m->v = calloc(m->cap, sizeof(slot));
    if (!m->v) {
        free(m);
        return NULL;
    }
    return m;
}

void sfl_idmap_free(sfl_idmap *m)
{
    if (!m)
        return;
    free(m->v);
    free(m);
}

void *sfl_idmap_get(const sfl_idmap *m, long long id)
{
    for (size_t i = hash(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->v[i].value)
            return NULL;
        if (m->v[i].id == id)
            return m->v[i].value;
    }
}

static void place(slot *v, size_t cap, long long id, void *value)
{
    size_t i = hash(id, cap);
    while (v[i].value && v[i].id != id)
        i = (i + 1) & (cap - 1);
    v[i].id = id;
    v[i].value = value;
}

int sfl_idmap_put(sfl_idmap *m, long long id, void *value)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap * 2;
        slot *v = calloc(cap, sizeof(slot));
        if (!v)
            return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->v[i].value)
                place(v, cap, m->v[i].id, m->v[i].value);
        free(m->v);
        m->v = v;
        m->cap = cap;
    }
    if (!sfl_idmap_get(m, id))
        m->n++;
    place(m->v, m->cap, id, value);
    return 0;
}

size_t sfl_idmap_count(const sfl_idmap *m)
{
    return m->n;
}

void sfl_idmap_each(const sfl_idmap *m, void (*fn)(long long id, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i].value)
            fn(m->v[i].id, m->v[i].value, arg);
}
