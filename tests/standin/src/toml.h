/* The TOML subset that Gramine manifests use, for the stand-in loader.
 *
 * Supported: tables, dotted keys and headers, arrays of tables, basic and
 * literal strings (single- and multi-line, every TOML 1.0 escape),
 * integers (decimal, hex, octal, binary), booleans, arrays and inline
 * tables, comments. Floats and dates are rejected as unsupported. */
#ifndef STANDIN_TOML_H
#define STANDIN_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum toml_type { TOML_STRING, TOML_INTEGER, TOML_BOOLEAN, TOML_ARRAY, TOML_TABLE };

struct toml_value {
    enum toml_type type;
    unsigned flags; /* how a table or array was made; parser bookkeeping */
    char *string;   /* TOML_STRING: UTF-8, no NUL inside */
    long long integer;
    bool boolean;
    size_t count; /* TOML_ARRAY items, TOML_TABLE entries */
    size_t capacity;
    struct toml_value **items;
    char **keys; /* TOML_TABLE only, parallel to items */
};

struct toml_error {
    int line;
    char message[256];
};

/* Parse a whole document; NULL with *error filled in when it is invalid. */
struct toml_value *toml_parse(const char *text, size_t size, struct toml_error *error);

/* The value under key in a table, or NULL. */
const struct toml_value *toml_get(const struct toml_value *table, const char *key);

const char *toml_type_name(enum toml_type type);

void json_write_string(FILE *out, const char *text);
void json_write_value(FILE *out, const struct toml_value *value);

#endif
