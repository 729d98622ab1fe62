/* mustache_json: renders templates with jansson values (volley render
 * --vars, tests). Objects are looked up with json_object_getn, strings keep
 * embedded NULs, integers print in decimal and reals in the shortest form
 * that reads back the same (1.210 prints "1.21"). */
#ifndef VOLLEY_MUSTACHE_JSON_H
#define VOLLEY_MUSTACHE_JSON_H

#include "templates/mustache.h"

#include <jansson.h>

extern const struct tpl_data_ops tpl_json_ops;

/* Returns the data for rendering with root (usually an object), which must
 * live as long as the render. */
struct tpl_data tpl_json_data(const json_t *root);

#endif
