/* idmap.h - a hash map from integer ids (accounts) to pointers. */
#ifndef SFL_IDMAP_H
#define SFL_IDMAP_H

#include <stddef.h>

typedef struct sfl_idmap sfl_idmap;

sfl_idmap *sfl_idmap_new(void);
/* Frees the map, not the values. NULL is a no-op. */
void sfl_idmap_free(sfl_idmap *m);
/* NULL when absent. */
void *sfl_idmap_get(const sfl_idmap *m, long long id);
/* Inserts or replaces; value must not be NULL. 0, or -1 when out of memory. */
int sfl_idmap_put(sfl_idmap *m, long long id, void *value);
size_t sfl_idmap_count(const sfl_idmap *m);
/* Calls fn for every entry (order unspecified); fn must not change the map. */
void sfl_idmap_each(const sfl_idmap *m, void (*fn)(long long id, void *value, void *arg),
                    void *arg);

#endif
