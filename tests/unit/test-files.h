/* Small files the unit tests write into a directory of their own. Include after cmocka.h. */
#pragma once

#include "util.h"

#include <stdio.h>

/* dir/name holding text; returns the path (free it). */
static inline char *test_write_file(const char *dir, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}
