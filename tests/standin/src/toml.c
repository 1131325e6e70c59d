/* A small recursive-descent parser for the TOML subset described in
 * toml.h. Errors unwind with longjmp to toml_parse, which reports the line;
 * memory is never freed because the loader execs or exits right after. */
#include "toml.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How a table or array came to exist; decides what may extend it. */
enum {
    MADE_BY_HEADER = 1 << 0,   /* [a.b] */
    MADE_IMPLICITLY = 1 << 1,  /* a in [a.b], before [a] itself */
    MADE_BY_DOTTED_KEY = 1 << 2, /* a in a.b = 1 */
    FROZEN = 1 << 3,           /* inline table or array literal */
    ARRAY_OF_TABLES = 1 << 4,  /* [[a]] */
};

#define MAX_KEY_PARTS 64

struct parser {
    const char *pos;
    const char *end;
    int line;
    struct toml_value *root;
    struct toml_value *current;
    struct toml_error *error;
    jmp_buf unwind;
};

struct buffer {
    char *data;
    size_t length;
    size_t capacity;
};

struct key_path {
    char *parts[MAX_KEY_PARTS];
    int count;
};

__attribute__((noreturn, format(printf, 2, 3)))
static void parse_fail(struct parser *p, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(p->error->message, sizeof(p->error->message), format, args);
    va_end(args);
    p->error->line = p->line;
    longjmp(p->unwind, 1);
}

static void *allocate(size_t size)
{
    void *memory = calloc(1, size);
    if (!memory) {
        fputs("gramine-standin: out of memory\n", stderr);
        exit(70);
    }
    return memory;
}

static void *grow(void *memory, size_t size)
{
    memory = realloc(memory, size);
    if (!memory) {
        fputs("gramine-standin: out of memory\n", stderr);
        exit(70);
    }
    return memory;
}

/* ---- buffers and values ------------------------------------------------ */

static void buffer_add(struct buffer *b, char c)
{
    if (b->length + 2 > b->capacity) {
        b->capacity = b->capacity ? 2 * b->capacity : 32;
        b->data = grow(b->data, b->capacity);
    }
    b->data[b->length++] = c;
    b->data[b->length] = '\0';
}

static char *buffer_take(struct buffer *b)
{
    if (!b->data)
        return allocate(1);
    return b->data;
}

static struct toml_value *new_value(enum toml_type type, unsigned flags)
{
    struct toml_value *value = allocate(sizeof(*value));
    value->type = type;
    value->flags = flags;
    return value;
}

static void append_item(struct toml_value *container, char *key, struct toml_value *item)
{
    if (container->count == container->capacity) {
        container->capacity = container->capacity ? 2 * container->capacity : 8;
        container->items =
            grow(container->items, container->capacity * sizeof(*container->items));
        if (container->type == TOML_TABLE)
            container->keys =
                grow(container->keys, container->capacity * sizeof(*container->keys));
    }
    if (container->type == TOML_TABLE)
        container->keys[container->count] = key;
    container->items[container->count++] = item;
}

const struct toml_value *toml_get(const struct toml_value *table, const char *key)
{
    if (!table || table->type != TOML_TABLE)
        return NULL;
    for (size_t i = 0; i < table->count; i++)
        if (strcmp(table->keys[i], key) == 0)
            return table->items[i];
    return NULL;
}

static struct toml_value *get_mutable(struct toml_value *table, const char *key)
{
    return (struct toml_value *)toml_get(table, key);
}

const char *toml_type_name(enum toml_type type)
{
    switch (type) {
    case TOML_STRING:
        return "string";
    case TOML_INTEGER:
        return "integer";
    case TOML_BOOLEAN:
        return "boolean";
    case TOML_ARRAY:
        return "array";
    case TOML_TABLE:
        return "table";
    }
    return "value";
}

/* ---- characters -------------------------------------------------------- */

static bool at_end(const struct parser *p) { return p->pos >= p->end; }

static int peek(const struct parser *p) { return at_end(p) ? -1 : (unsigned char)*p->pos; }

static int peek_at(const struct parser *p, size_t ahead)
{
    return p->pos + ahead < p->end ? (unsigned char)p->pos[ahead] : -1;
}

static bool at_newline(const struct parser *p)
{
    return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

static void consume_newline(struct parser *p)
{
    p->pos += peek(p) == '\r' ? 2 : 1;
    p->line++;
}

static void skip_blanks(struct parser *p)
{
    while (peek(p) == ' ' || peek(p) == '\t')
        p->pos++;
}

static void skip_comment(struct parser *p)
{
    if (peek(p) != '#')
        return;
    while (!at_end(p) && !at_newline(p)) {
        int c = peek(p);
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            parse_fail(p, "control character in a comment");
        p->pos++;
    }
}

/* Blanks, comments and newlines, as allowed between array items. */
static void skip_blank_lines(struct parser *p)
{
    for (;;) {
        skip_blanks(p);
        skip_comment(p);
        if (!at_newline(p))
            return;
        consume_newline(p);
    }
}

static void expect_line_end(struct parser *p)
{
    skip_blanks(p);
    skip_comment(p);
    if (at_end(p))
        return;
    if (!at_newline(p))
        parse_fail(p, "unexpected '%c' after a value or header", *p->pos);
    consume_newline(p);
}

static bool is_bare_key_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* ---- strings ----------------------------------------------------------- */

static void add_utf8(struct parser *p, struct buffer *b, uint32_t code)
{
    if (code == 0)
        parse_fail(p, "NUL characters in strings are not supported");
    if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
        parse_fail(p, "escape \\U%08X is not a Unicode scalar value", (unsigned)code);
    if (code < 0x80) {
        buffer_add(b, (char)code);
    } else if (code < 0x800) {
        buffer_add(b, (char)(0xC0 | code >> 6));
        buffer_add(b, (char)(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
        buffer_add(b, (char)(0xE0 | code >> 12));
        buffer_add(b, (char)(0x80 | ((code >> 6) & 0x3F)));
        buffer_add(b, (char)(0x80 | (code & 0x3F)));
    } else {
        buffer_add(b, (char)(0xF0 | code >> 18));
        buffer_add(b, (char)(0x80 | ((code >> 12) & 0x3F)));
        buffer_add(b, (char)(0x80 | ((code >> 6) & 0x3F)));
        buffer_add(b, (char)(0x80 | (code & 0x3F)));
    }
}

static uint32_t read_hex_digits(struct parser *p, int digits)
{
    uint32_t code = 0;
    for (int i = 0; i < digits; i++) {
        int c = peek(p);
        int nibble;
        if (c >= '0' && c <= '9')
            nibble = c - '0';
        else if (c >= 'a' && c <= 'f')
            nibble = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            nibble = c - 'A' + 10;
        else
            parse_fail(p, "unicode escape needs %d hex digits", digits);
        code = code << 4 | (uint32_t)nibble;
        p->pos++;
    }
    return code;
}

/* After a backslash in a basic string. */
static void read_escape(struct parser *p, struct buffer *b)
{
    int c = peek(p);
    p->pos++;
    switch (c) {
    case 'b':
        buffer_add(b, '\b');
        return;
    case 't':
        buffer_add(b, '\t');
        return;
    case 'n':
        buffer_add(b, '\n');
        return;
    case 'f':
        buffer_add(b, '\f');
        return;
    case 'r':
        buffer_add(b, '\r');
        return;
    case '"':
        buffer_add(b, '"');
        return;
    case '\\':
        buffer_add(b, '\\');
        return;
    case 'u':
        add_utf8(p, b, read_hex_digits(p, 4));
        return;
    case 'U':
        add_utf8(p, b, read_hex_digits(p, 8));
        return;
    default:
        p->pos--;
        parse_fail(p, "invalid escape sequence in a string");
    }
}

/* A character of string content; newlines are handled by the callers. */
static void add_plain_char(struct parser *p, struct buffer *b)
{
    int c = peek(p);
    if ((c < 0x20 && c != '\t') || c == 0x7f)
        parse_fail(p, "control character 0x%02x in a string", c);
    buffer_add(b, (char)c);
    p->pos++;
}

static char *read_basic_string(struct parser *p)
{
    struct buffer b = {0};
    p->pos++;
    for (;;) {
        if (at_end(p) || at_newline(p))
            parse_fail(p, "unterminated string");
        if (peek(p) == '"')
            break;
        if (peek(p) == '\\') {
            p->pos++;
            read_escape(p, &b);
        } else {
            add_plain_char(p, &b);
        }
    }
    p->pos++;
    return buffer_take(&b);
}

static char *read_literal_string(struct parser *p)
{
    struct buffer b = {0};
    p->pos++;
    for (;;) {
        if (at_end(p) || at_newline(p))
            parse_fail(p, "unterminated string");
        if (peek(p) == '\'')
            break;
        add_plain_char(p, &b);
    }
    p->pos++;
    return buffer_take(&b);
}

/* At a run of closing quotes: up to two extra quotes belong to the
 * content. Returns true when the string ends here. */
static bool closes_multiline(struct parser *p, struct buffer *b, char quote)
{
    int run = 0;
    while (peek_at(p, (size_t)run) == quote)
        run++;
    if (run < 3)
        return false;
    if (run > 5)
        parse_fail(p, "too many quotes at the end of a multi-line string");
    for (int i = 0; i < run - 3; i++)
        buffer_add(b, quote);
    p->pos += run;
    return true;
}

/* Backslash at the end of a line: drop it and all whitespace after it. */
static bool skip_line_ending_backslash(struct parser *p)
{
    const char *save = p->pos;
    p->pos++;
    skip_blanks(p);
    if (!at_newline(p)) {
        p->pos = save;
        return false;
    }
    while (at_newline(p) || peek(p) == ' ' || peek(p) == '\t') {
        if (at_newline(p))
            consume_newline(p);
        else
            p->pos++;
    }
    return true;
}

static char *read_multiline_string(struct parser *p, char quote)
{
    struct buffer b = {0};
    p->pos += 3;
    if (at_newline(p))
        consume_newline(p);
    for (;;) {
        if (at_end(p))
            parse_fail(p, "unterminated multi-line string");
        if (peek(p) == quote && closes_multiline(p, &b, quote))
            break;
        if (at_newline(p)) {
            buffer_add(&b, '\n'); /* CRLF becomes LF, as in Python's tomllib */
            consume_newline(p);
        } else if (quote == '"' && peek(p) == '\\') {
            if (!skip_line_ending_backslash(p)) {
                p->pos++;
                read_escape(p, &b);
            }
        } else {
            add_plain_char(p, &b);
        }
    }
    return buffer_take(&b);
}

static char *read_string(struct parser *p)
{
    char quote = *p->pos;
    if (peek_at(p, 1) == quote && peek_at(p, 2) == quote)
        return read_multiline_string(p, quote);
    return quote == '"' ? read_basic_string(p) : read_literal_string(p);
}

/* ---- keys -------------------------------------------------------------- */

static char *read_simple_key(struct parser *p)
{
    int c = peek(p);
    if (c == '"' || c == '\'') {
        if (peek_at(p, 1) == c && peek_at(p, 2) == c)
            parse_fail(p, "multi-line strings cannot be keys");
        return c == '"' ? read_basic_string(p) : read_literal_string(p);
    }
    struct buffer b = {0};
    while (is_bare_key_char(peek(p))) {
        buffer_add(&b, *p->pos);
        p->pos++;
    }
    if (b.length == 0)
        parse_fail(p, "expected a key");
    return buffer_take(&b);
}

static void read_key(struct parser *p, struct key_path *key)
{
    key->count = 0;
    for (;;) {
        skip_blanks(p);
        if (key->count == MAX_KEY_PARTS)
            parse_fail(p, "key has more than %d parts", MAX_KEY_PARTS);
        key->parts[key->count++] = read_simple_key(p);
        skip_blanks(p);
        if (peek(p) != '.')
            return;
        p->pos++;
    }
}

/* ---- numbers and other scalars ----------------------------------------- */

static int digit_value(int c, int base)
{
    int value = -1;
    if (c >= '0' && c <= '9')
        value = c - '0';
    else if (c >= 'a' && c <= 'f')
        value = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        value = c - 'A' + 10;
    return value >= 0 && value < base ? value : -1;
}

/* Digits with single underscores between them, accumulated as a
 * magnitude; the limit allows for the sign applied afterwards. */
static unsigned long long read_digits(struct parser *p, int base, unsigned long long limit)
{
    unsigned long long magnitude = 0;
    bool last_was_digit = false;
    for (;;) {
        int c = peek(p);
        if (c == '_') {
            if (!last_was_digit || digit_value(peek_at(p, 1), base) < 0)
                parse_fail(p, "misplaced '_' in an integer");
            last_was_digit = false;
            p->pos++;
            continue;
        }
        int digit = digit_value(c, base);
        if (digit < 0)
            break;
        if (magnitude > (limit - (unsigned long long)digit) / (unsigned long long)base)
            parse_fail(p, "integer does not fit in 64 bits");
        magnitude = magnitude * (unsigned long long)base + (unsigned long long)digit;
        last_was_digit = true;
        p->pos++;
    }
    if (!last_was_digit)
        parse_fail(p, "expected digits");
    return magnitude;
}

static void reject_float_or_date(struct parser *p)
{
    int c = peek(p);
    if (c == '.' || c == 'e' || c == 'E' || c == ':' || c == '-' || c == 'T' ||
        c == 'i' || c == 'n')
        parse_fail(p, "floats and dates are not supported by the stand-in");
    if (is_bare_key_char(c))
        parse_fail(p, "invalid number");
}

static struct toml_value *read_integer(struct parser *p)
{
    struct toml_value *value = new_value(TOML_INTEGER, 0);
    int base = 10;
    if (peek(p) == '0' && (peek_at(p, 1) == 'x' || peek_at(p, 1) == 'o' ||
                           peek_at(p, 1) == 'b')) {
        base = peek_at(p, 1) == 'x' ? 16 : peek_at(p, 1) == 'o' ? 8 : 2;
        p->pos += 2;
        value->integer = (long long)read_digits(p, base, INT64_MAX);
        reject_float_or_date(p);
        return value;
    }

    bool negative = peek(p) == '-';
    if (peek(p) == '-' || peek(p) == '+')
        p->pos++;
    if (peek(p) == 'i' || peek(p) == 'n')
        parse_fail(p, "floats are not supported by the stand-in");
    if (peek(p) == '0' && digit_value(peek_at(p, 1), 10) >= 0)
        parse_fail(p, "leading zeros are not allowed in integers");
    unsigned long long limit = negative ? (unsigned long long)INT64_MAX + 1 : INT64_MAX;
    unsigned long long magnitude = read_digits(p, 10, limit);
    reject_float_or_date(p);
    value->integer = negative ? (long long)(0 - magnitude) : (long long)magnitude;
    return value;
}

static bool read_word(struct parser *p, const char *word)
{
    size_t length = strlen(word);
    if ((size_t)(p->end - p->pos) < length || memcmp(p->pos, word, length) != 0)
        return false;
    if (is_bare_key_char(peek_at(p, length)))
        return false;
    p->pos += length;
    return true;
}

/* ---- tables and arrays ------------------------------------------------- */

static struct toml_value *read_value(struct parser *p);
static void insert_key_value(struct parser *p, struct toml_value *table,
                             const struct key_path *key, struct toml_value *value);

static struct toml_value *read_array(struct parser *p)
{
    struct toml_value *array = new_value(TOML_ARRAY, FROZEN);
    p->pos++;
    for (;;) {
        skip_blank_lines(p);
        if (peek(p) == ']')
            break;
        append_item(array, NULL, read_value(p));
        skip_blank_lines(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) != ']')
            parse_fail(p, "expected ',' or ']' in an array");
        break;
    }
    p->pos++;
    return array;
}

static void freeze(struct toml_value *value)
{
    value->flags |= FROZEN;
    if (value->type == TOML_TABLE)
        for (size_t i = 0; i < value->count; i++)
            if (value->items[i]->type == TOML_TABLE)
                freeze(value->items[i]);
}

static struct toml_value *read_inline_table(struct parser *p)
{
    struct toml_value *table = new_value(TOML_TABLE, 0);
    p->pos++;
    skip_blanks(p);
    if (peek(p) == '}') {
        p->pos++;
        freeze(table);
        return table;
    }
    for (;;) {
        struct key_path key;
        read_key(p, &key);
        if (peek(p) != '=')
            parse_fail(p, "expected '=' after a key");
        p->pos++;
        skip_blanks(p);
        insert_key_value(p, table, &key, read_value(p));
        skip_blanks(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_blanks(p);
            if (peek(p) == '}')
                parse_fail(p, "trailing ',' in an inline table");
            continue;
        }
        if (peek(p) == '}')
            break;
        parse_fail(p, "expected ',' or '}' in an inline table");
    }
    p->pos++;
    freeze(table);
    return table;
}

static struct toml_value *read_value(struct parser *p)
{
    int c = peek(p);
    if (c == '"' || c == '\'') {
        struct toml_value *value = new_value(TOML_STRING, 0);
        value->string = read_string(p);
        return value;
    }
    if (c == '[')
        return read_array(p);
    if (c == '{')
        return read_inline_table(p);
    if ((c >= '0' && c <= '9') || c == '+' || c == '-')
        return read_integer(p);
    bool is_true = read_word(p, "true");
    if (is_true || read_word(p, "false")) {
        struct toml_value *value = new_value(TOML_BOOLEAN, 0);
        value->boolean = is_true;
        return value;
    }
    if (read_word(p, "inf") || read_word(p, "nan"))
        parse_fail(p, "floats are not supported by the stand-in");
    parse_fail(p, "expected a value");
}

static struct toml_value *add_table(struct toml_value *parent, char *key, unsigned flags)
{
    struct toml_value *table = new_value(TOML_TABLE, flags);
    append_item(parent, key, table);
    return table;
}

/* a.b.c = value: a and b are tables made (or extended) by dotted keys. */
static void insert_key_value(struct parser *p, struct toml_value *table,
                             const struct key_path *key, struct toml_value *value)
{
    for (int i = 0; i < key->count - 1; i++) {
        struct toml_value *child = get_mutable(table, key->parts[i]);
        if (!child) {
            table = add_table(table, key->parts[i], MADE_BY_DOTTED_KEY);
            continue;
        }
        if (child->type != TOML_TABLE || !(child->flags & MADE_BY_DOTTED_KEY) ||
            (child->flags & FROZEN))
            parse_fail(p, "key '%s' is already defined and cannot be extended",
                       key->parts[i]);
        table = child;
    }
    const char *last = key->parts[key->count - 1];
    if (toml_get(table, last))
        parse_fail(p, "duplicate key '%s'", last);
    append_item(table, key->parts[key->count - 1], value);
}

/* Walk the prefix of a header key, making implicit tables as needed. */
static struct toml_value *header_parent(struct parser *p, const struct key_path *key)
{
    struct toml_value *table = p->root;
    for (int i = 0; i < key->count - 1; i++) {
        struct toml_value *child = get_mutable(table, key->parts[i]);
        if (!child) {
            table = add_table(table, key->parts[i], MADE_IMPLICITLY);
        } else if (child->type == TOML_ARRAY && (child->flags & ARRAY_OF_TABLES)) {
            table = child->items[child->count - 1];
        } else if (child->type == TOML_TABLE && !(child->flags & FROZEN)) {
            table = child;
        } else {
            parse_fail(p, "key '%s' is not a table", key->parts[i]);
        }
    }
    return table;
}

static void read_header(struct parser *p)
{
    bool array_of_tables = peek_at(p, 1) == '[';
    p->pos += array_of_tables ? 2 : 1;
    struct key_path key;
    read_key(p, &key);
    if (peek(p) != ']' || (array_of_tables && peek_at(p, 1) != ']'))
        parse_fail(p, "expected '%s' to close a table header", array_of_tables ? "]]" : "]");
    p->pos += array_of_tables ? 2 : 1;

    struct toml_value *parent = header_parent(p, &key);
    char *name = key.parts[key.count - 1];
    struct toml_value *existing = get_mutable(parent, name);
    if (array_of_tables) {
        if (!existing) {
            existing = new_value(TOML_ARRAY, ARRAY_OF_TABLES);
            append_item(parent, name, existing);
        } else if (existing->type != TOML_ARRAY || !(existing->flags & ARRAY_OF_TABLES)) {
            parse_fail(p, "'%s' is already defined and is not an array of tables", name);
        }
        p->current = new_value(TOML_TABLE, MADE_BY_HEADER);
        append_item(existing, NULL, p->current);
        return;
    }
    if (!existing) {
        p->current = add_table(parent, name, MADE_BY_HEADER);
    } else if (existing->type == TOML_TABLE && existing->flags == MADE_IMPLICITLY) {
        existing->flags = MADE_BY_HEADER;
        p->current = existing;
    } else {
        parse_fail(p, "table '%s' is defined twice", name);
    }
}

static void read_key_value_line(struct parser *p)
{
    struct key_path key;
    read_key(p, &key);
    if (peek(p) != '=')
        parse_fail(p, "expected '=' after a key");
    p->pos++;
    skip_blanks(p);
    insert_key_value(p, p->current, &key, read_value(p));
}

/* ---- document ---------------------------------------------------------- */

/* Length of the UTF-8 sequence at s, or 0 if it is not valid UTF-8. */
static size_t utf8_sequence_length(const unsigned char *s, size_t left)
{
    if (s[0] < 0x80)
        return 1;
    size_t length;
    uint32_t code;
    if ((s[0] & 0xE0) == 0xC0) {
        length = 2;
        code = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        length = 3;
        code = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        length = 4;
        code = s[0] & 0x07;
    } else {
        return 0;
    }
    if (length > left)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        code = code << 6 | (s[i] & 0x3F);
    }
    static const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    return length;
}

static void check_encoding(struct parser *p)
{
    const unsigned char *s = (const unsigned char *)p->pos;
    size_t size = (size_t)(p->end - p->pos);
    for (size_t i = 0; i < size;) {
        if (s[i] == '\0')
            parse_fail(p, "NUL byte in the manifest");
        size_t length = utf8_sequence_length(s + i, size - i);
        if (length == 0)
            parse_fail(p, "invalid UTF-8");
        if (s[i] == '\n')
            p->line++;
        i += length;
    }
    p->line = 1;
}

struct toml_value *toml_parse(const char *text, size_t size, struct toml_error *error)
{
    struct parser p = {
        .pos = text, .end = text + size, .line = 1, .error = error,
    };
    p.root = new_value(TOML_TABLE, MADE_BY_HEADER);
    p.current = p.root;
    if (setjmp(p.unwind))
        return NULL;

    check_encoding(&p);
    while (!at_end(&p)) {
        skip_blanks(&p);
        if (peek(&p) == '[')
            read_header(&p);
        else if (peek(&p) != '#' && !at_newline(&p) && !at_end(&p))
            read_key_value_line(&p);
        expect_line_end(&p);
    }
    return p.root;
}

/* ---- JSON output (for the loader's dump mode) -------------------------- */

void json_write_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

void json_write_value(FILE *out, const struct toml_value *value)
{
    switch (value->type) {
    case TOML_STRING:
        json_write_string(out, value->string);
        return;
    case TOML_INTEGER:
        fprintf(out, "%lld", value->integer);
        return;
    case TOML_BOOLEAN:
        fputs(value->boolean ? "true" : "false", out);
        return;
    case TOML_ARRAY:
    case TOML_TABLE:
        break;
    }
    bool table = value->type == TOML_TABLE;
    fputc(table ? '{' : '[', out);
    for (size_t i = 0; i < value->count; i++) {
        if (i > 0)
            fputs(", ", out);
        if (table) {
            json_write_string(out, value->keys[i]);
            fputs(": ", out);
        }
        json_write_value(out, value->items[i]);
    }
    fputc(table ? '}' : ']', out);
}
