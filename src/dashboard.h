/* dashboard.h - the node's one-page dashboard (src/dashboard.html, embedded
 * at build time by cmake/embed_file.cmake). */
#ifndef SFL_DASHBOARD_H
#define SFL_DASHBOARD_H

#include <stddef.h>

extern const char sfl_dashboard_html[];
extern const size_t sfl_dashboard_html_len;

#endif
