/* The Gramine stand-in loader: a test double, not Gramine.
 *
 * Called the way Gramine's loader is, LOADER LIBPAL init APP [ARGS...], it
 * reads APP's manifest, checks the entrypoint and trusted files against
 * their SHA-256, builds argv and the environment the way the manifest says,
 * and execs the application natively. No enclave, no isolation. */
#define _GNU_SOURCE
#ifdef STANDIN_NEEDS_PROTOBUF_C
#include <protobuf-c/protobuf-c.h>
#endif
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "toml.h"

#define EXIT_USAGE 64
#define EXIT_CHECK 70
#define EXIT_PARSE 78

#define BANNER "gramine stand-in (test double, not Gramine)"
#define PREFIX "gramine-standin: "

extern char **environ;

enum mode { MODE_DIRECT, MODE_SGX };

struct string_list {
    char **items;
    size_t count;
    size_t capacity;
};

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs(PREFIX, stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(status);
}

static void *checked(void *memory)
{
    if (!memory)
        fail(EXIT_CHECK, "out of memory");
    return memory;
}

static char *concat(const char *a, const char *b)
{
    char *joined = checked(malloc(strlen(a) + strlen(b) + 1));
    strcpy(joined, a);
    strcat(joined, b);
    return joined;
}

static void list_init(struct string_list *list)
{
    list->capacity = 16;
    list->count = 0;
    list->items = checked(calloc(list->capacity, sizeof(char *)));
}

static void list_add(struct string_list *list, char *item)
{
    if (list->count + 1 >= list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 16;
        list->items = checked(realloc(list->items, list->capacity * sizeof(char *)));
    }
    list->items[list->count++] = item;
    list->items[list->count] = NULL;
}

/* ---- reading the manifest ---------------------------------------------- */

static char *read_whole_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        fail(EXIT_CHECK, "cannot read manifest %s: %s", path, strerror(errno));
    size_t capacity = 65536, length = 0;
    char *data = checked(malloc(capacity));
    size_t got;
    while ((got = fread(data + length, 1, capacity - length, file)) > 0) {
        length += got;
        if (length == capacity) {
            capacity *= 2;
            data = checked(realloc(data, capacity));
        }
    }
    if (ferror(file))
        fail(EXIT_CHECK, "cannot read manifest %s: %s", path, strerror(errno));
    fclose(file);
    *size = length;
    return data;
}

static struct toml_value *load_manifest(const char *path)
{
    size_t size;
    char *text = read_whole_file(path, &size);
    struct toml_error error;
    struct toml_value *root = toml_parse(text, size, &error);
    if (!root)
        fail(EXIT_PARSE, "%s: line %d: cannot parse manifest: %s", path, error.line,
             error.message);
    return root;
}

/* Look up a dotted key such as "loader.entrypoint.uri"; NULL if absent. */
static const struct toml_value *lookup(const struct toml_value *root, const char *dotted)
{
    const struct toml_value *value = root;
    const char *start = dotted;
    for (;;) {
        if (value->type != TOML_TABLE)
            fail(EXIT_CHECK, "%.*s: expected a table, found %s", (int)(start - dotted - 1),
                 dotted, toml_type_name(value->type));
        const char *dot = strchr(start, '.');
        size_t length = dot ? (size_t)(dot - start) : strlen(start);
        char part[128];
        if (length >= sizeof(part))
            fail(EXIT_CHECK, "key too long: %s", dotted);
        memcpy(part, start, length);
        part[length] = '\0';
        value = toml_get(value, part);
        if (!value || !dot)
            return value;
        start = dot + 1;
    }
}

static const struct toml_value *lookup_typed(const struct toml_value *root,
                                             const char *dotted, enum toml_type type)
{
    const struct toml_value *value = lookup(root, dotted);
    if (value && value->type != type)
        fail(EXIT_CHECK, "%s: expected %s %s, found %s", dotted,
             (type == TOML_INTEGER || type == TOML_ARRAY) ? "an" : "a", toml_type_name(type),
             toml_type_name(value->type));
    return value;
}

static bool lookup_flag(const struct toml_value *root, const char *dotted)
{
    const struct toml_value *value = lookup_typed(root, dotted, TOML_BOOLEAN);
    return value && value->boolean;
}

static const char *file_uri_path(const char *uri, const char *where)
{
    if (strncmp(uri, "file:", 5) != 0)
        fail(EXIT_CHECK, "%s: only file: URIs are supported, got '%s'", where, uri);
    return uri + 5;
}

/* ---- hashes ------------------------------------------------------------ */

static bool is_sha256_hex(const char *text)
{
    size_t i = 0;
    for (; text[i]; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return i == 2 * SHA256_DIGEST_SIZE;
}

/* Fail unless the file at path is a readable regular file with this hash. */
static void check_file_hash(const char *where, const char *path, const char *expected)
{
    if (!is_sha256_hex(expected))
        fail(EXIT_CHECK, "%s: '%s' is not a SHA-256 in lowercase hex", where, expected);
    struct stat info;
    if (stat(path, &info) != 0)
        fail(EXIT_CHECK, "%s: cannot read %s: %s", where, path, strerror(errno));
    if (!S_ISREG(info.st_mode))
        fail(EXIT_CHECK, "%s: %s is not a regular file", where, path);
    char actual[SHA256_HEX_SIZE];
    if (sha256_file_hex(path, actual) != 0)
        fail(EXIT_CHECK, "%s: cannot read %s: %s", where, path, strerror(errno));
    if (strcmp(actual, expected) != 0)
        fail(EXIT_CHECK, "%s: SHA-256 mismatch for %s: manifest says %s, file has %s",
             where, path, expected, actual);
}

static void check_loader_entrypoint(const struct toml_value *manifest)
{
    const struct toml_value *entry = lookup(manifest, "loader.entrypoint");
    if (!entry)
        fail(EXIT_CHECK, "loader.entrypoint: missing (a table with uri and sha256)");
    if (entry->type != TOML_TABLE)
        fail(EXIT_CHECK, "loader.entrypoint: expected a table with uri and sha256");
    const struct toml_value *uri =
        lookup_typed(manifest, "loader.entrypoint.uri", TOML_STRING);
    const struct toml_value *sha256 =
        lookup_typed(manifest, "loader.entrypoint.sha256", TOML_STRING);
    if (!uri)
        fail(EXIT_CHECK, "loader.entrypoint.uri: missing");
    if (!sha256)
        fail(EXIT_CHECK, "loader.entrypoint.sha256: missing");
    const char *path = file_uri_path(uri->string, "loader.entrypoint.uri");
    check_file_hash("loader.entrypoint", path, sha256->string);
}

/* ---- trusted files ----------------------------------------------------- */

static void read_trusted_entry(const struct toml_value *entry, const char *where,
                               const char **uri, const char **sha256)
{
    *uri = NULL;
    *sha256 = NULL;
    if (entry->type == TOML_STRING) {
        *uri = entry->string;
        return;
    }
    if (entry->type != TOML_TABLE)
        fail(EXIT_CHECK, "%s: expected a URI string or a {uri, sha256} table", where);
    for (size_t i = 0; i < entry->count; i++) {
        const struct toml_value *value = entry->items[i];
        if (strcmp(entry->keys[i], "uri") != 0 && strcmp(entry->keys[i], "sha256") != 0)
            fail(EXIT_CHECK, "%s: unknown key '%s'", where, entry->keys[i]);
        if (value->type != TOML_STRING)
            fail(EXIT_CHECK, "%s.%s: expected a string", where, entry->keys[i]);
        if (strcmp(entry->keys[i], "uri") == 0)
            *uri = value->string;
        else
            *sha256 = value->string;
    }
    if (!*uri)
        fail(EXIT_CHECK, "%s: missing uri", where);
}

static char *real_path_or_fail(const char *where, const char *path)
{
    char *real = realpath(path, NULL);
    if (!real)
        fail(EXIT_CHECK, "%s: cannot resolve %s: %s", where, path, strerror(errno));
    return real;
}

static void check_trusted_directory(const char *where, const char *path,
                                    struct string_list *trusted)
{
    struct stat info;
    if (stat(path, &info) != 0 || !S_ISDIR(info.st_mode) || access(path, R_OK | X_OK) != 0)
        fail(EXIT_CHECK, "%s: trusted directory %s is missing or unreadable", where, path);
    list_add(trusted, concat(real_path_or_fail(where, path), "/"));
}

static void check_trusted_file(const char *where, const char *path, const char *sha256,
                               struct string_list *trusted)
{
    if (sha256) {
        check_file_hash(where, path, sha256);
    } else {
        struct stat info;
        if (stat(path, &info) != 0 || access(path, R_OK) != 0)
            fail(EXIT_CHECK, "%s: cannot read trusted file %s: %s", where, path,
                 strerror(errno));
        if (!S_ISREG(info.st_mode))
            fail(EXIT_CHECK, "%s: trusted file %s is not a regular file "
                             "(a directory URI ends in '/')", where, path);
    }
    list_add(trusted, real_path_or_fail(where, path));
}

static void check_trusted_files(const struct toml_value *manifest, enum mode mode,
                                struct string_list *trusted)
{
    const struct toml_value *files = lookup_typed(manifest, "sgx.trusted_files", TOML_ARRAY);
    if (!files)
        return;
    for (size_t i = 0; i < files->count; i++) {
        char where[64];
        snprintf(where, sizeof(where), "sgx.trusted_files[%zu]", i);
        const char *uri, *sha256;
        read_trusted_entry(files->items[i], where, &uri, &sha256);
        const char *path = file_uri_path(uri, where);
        if (mode == MODE_SGX && !sha256)
            fail(EXIT_CHECK, "%s: %s has no sha256 (a signed manifest lists a hash for "
                             "every trusted file)", where, uri);
        size_t length = strlen(path);
        if (length > 0 && path[length - 1] == '/') {
            if (sha256)
                fail(EXIT_CHECK, "%s: directory %s cannot have a sha256", where, uri);
            check_trusted_directory(where, path, trusted);
        } else {
            check_trusted_file(where, path, sha256, trusted);
        }
    }
}

static bool is_trusted(const struct string_list *trusted, const char *real)
{
    for (size_t i = 0; i < trusted->count; i++) {
        const char *entry = trusted->items[i];
        size_t length = strlen(entry);
        if (strcmp(entry, real) == 0)
            return true;
        if (entry[length - 1] == '/' && strncmp(entry, real, length) == 0)
            return true;
    }
    return false;
}

/* The application's path, resolved; fails unless it is a trusted file. */
static char *trusted_app_path(const struct toml_value *manifest,
                              const struct string_list *trusted)
{
    const struct toml_value *entry = lookup_typed(manifest, "libos.entrypoint", TOML_STRING);
    if (!entry)
        fail(EXIT_CHECK, "libos.entrypoint: missing");
    const char *path = entry->string;
    if (strncmp(path, "file:", 5) == 0)
        path += 5;
    char *real = real_path_or_fail("libos.entrypoint", path);
    if (!is_trusted(trusted, real))
        fail(EXIT_CHECK, "libos.entrypoint: %s (resolved: %s) is not in sgx.trusted_files",
             path, real);
    return real;
}

/* ---- argv and environment ---------------------------------------------- */

/* The application's argv, or NULL when the manifest gives no source. */
static char **select_argv(const struct toml_value *manifest, char **command_line)
{
    const struct toml_value *argv = lookup_typed(manifest, "loader.argv", TOML_ARRAY);
    bool use_command_line = lookup_flag(manifest, "loader.insecure__use_cmdline_argv");
    bool from_file = lookup(manifest, "loader.argv_src_file") != NULL;
    if ((argv != NULL) + use_command_line + from_file > 1)
        fail(EXIT_CHECK, "loader.argv, loader.argv_src_file and "
                         "loader.insecure__use_cmdline_argv are mutually exclusive");
    if (from_file)
        fail(EXIT_CHECK, "loader.argv_src_file: not supported by the stand-in");
    if (use_command_line)
        return command_line;
    if (!argv)
        return NULL;

    if (argv->count == 0)
        fail(EXIT_CHECK, "loader.argv: empty (argv[0] is required)");
    struct string_list list;
    list_init(&list);
    for (size_t i = 0; i < argv->count; i++) {
        if (argv->items[i]->type != TOML_STRING)
            fail(EXIT_CHECK, "loader.argv[%zu]: expected a string", i);
        list_add(&list, argv->items[i]->string);
    }
    return list.items;
}

static void env_set(struct string_list *env, const char *name, const char *value)
{
    size_t name_length = strlen(name);
    char *entry = checked(malloc(name_length + strlen(value) + 2));
    sprintf(entry, "%s=%s", name, value);
    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->items[i], name, name_length) == 0 &&
            env->items[i][name_length] == '=') {
            env->items[i] = entry;
            return;
        }
    }
    list_add(env, entry);
}

/* The value a loader.env entry asks for, or NULL for "leave unset". */
static const char *env_entry_value(const char *name, const struct toml_value *entry)
{
    if (entry->type == TOML_STRING)
        return entry->string;
    const struct toml_value *value = toml_get(entry, "value");
    const struct toml_value *passthrough = toml_get(entry, "passthrough");
    if (entry->type != TOML_TABLE || entry->count != 1 || (!value && !passthrough) ||
        (value && value->type != TOML_STRING) ||
        (passthrough && passthrough->type != TOML_BOOLEAN))
        fail(EXIT_CHECK, "loader.env.%s: expected a string, {value = \"...\"} or "
                         "{passthrough = true}", name);
    if (value)
        return value->string;
    return passthrough->boolean ? getenv(name) : NULL;
}

static char **build_environment(const struct toml_value *manifest)
{
    struct string_list env;
    list_init(&env);
    if (lookup(manifest, "loader.env_src_file"))
        fail(EXIT_CHECK, "loader.env_src_file: not supported by the stand-in");
    if (lookup_flag(manifest, "loader.insecure__use_host_env"))
        for (char **host = environ; *host; host++)
            list_add(&env, *host);

    const struct toml_value *table = lookup_typed(manifest, "loader.env", TOML_TABLE);
    for (size_t i = 0; table && i < table->count; i++) {
        const char *name = table->keys[i];
        if (name[0] == '\0' || strchr(name, '='))
            fail(EXIT_CHECK, "loader.env: '%s' is not a valid variable name", name);
        const char *value = env_entry_value(name, table->items[i]);
        if (value)
            env_set(&env, name, value);
    }
    return env.items;
}

/* ---- identity and start directory -------------------------------------- */

static bool manifest_id(const struct toml_value *manifest, const char *key, unsigned *id)
{
    const struct toml_value *value = lookup_typed(manifest, key, TOML_INTEGER);
    if (!value)
        return false;
    if (value->integer < 0 || value->integer >= (long long)UINT_MAX)
        fail(EXIT_CHECK, "%s: %lld is not a valid id", key, value->integer);
    *id = (unsigned)value->integer;
    return true;
}

static void switch_identity(const struct toml_value *manifest)
{
    unsigned uid, gid;
    bool change_uid = manifest_id(manifest, "loader.uid", &uid) && uid != getuid();
    bool change_gid = manifest_id(manifest, "loader.gid", &gid) && gid != getgid();
    if (!change_uid && !change_gid)
        return;
    if (geteuid() != 0)
        fail(EXIT_CHECK, "loader.uid/loader.gid: switching to uid %u gid %u needs root "
                         "(running as uid %u gid %u)", change_uid ? uid : getuid(),
             change_gid ? gid : getgid(), (unsigned)getuid(), (unsigned)getgid());
    if (setgroups(0, NULL) != 0)
        fail(EXIT_CHECK, "loader.gid: cannot drop supplementary groups: %s", strerror(errno));
    if (change_gid && setgid(gid) != 0)
        fail(EXIT_CHECK, "loader.gid: cannot switch to gid %u: %s", gid, strerror(errno));
    if (change_uid && setuid(uid) != 0)
        fail(EXIT_CHECK, "loader.uid: cannot switch to uid %u: %s", uid, strerror(errno));
}

static void enter_start_dir(const struct toml_value *manifest)
{
    const struct toml_value *dir = lookup_typed(manifest, "fs.start_dir", TOML_STRING);
    if (dir && chdir(dir->string) != 0)
        fail(EXIT_CHECK, "fs.start_dir: cannot change to %s: %s", dir->string,
             strerror(errno));
}

/* ---- dump mode --------------------------------------------------------- */

static void write_json_strings(char **items)
{
    putchar('[');
    for (size_t i = 0; items[i]; i++) {
        if (i > 0)
            fputs(", ", stdout);
        json_write_string(stdout, items[i]);
    }
    putchar(']');
}

static void write_json_environment(char **env)
{
    putchar('{');
    for (size_t i = 0; env[i]; i++) {
        char *name = checked(strdup(env[i]));
        char *equals = strchr(name, '=');
        *equals = '\0';
        if (i > 0)
            fputs(", ", stdout);
        json_write_string(stdout, name);
        fputs(": ", stdout);
        json_write_string(stdout, equals + 1);
        free(name);
    }
    putchar('}');
}

static void write_json_optional(const struct toml_value *value)
{
    if (value)
        json_write_value(stdout, value);
    else
        fputs("null", stdout);
}

/* GSC_STANDIN_DUMP=1: show what was parsed and what the application would
 * get, as one JSON object on stdout, without running any check. */
static void dump(enum mode mode, const char *manifest_path,
                 const struct toml_value *manifest, char **command_line)
{
    char **argv = select_argv(manifest, command_line);
    const struct toml_value *entrypoint = lookup(manifest, "libos.entrypoint");
    const struct toml_value *start_dir = lookup(manifest, "fs.start_dir");

    printf("{\"mode\": \"%s\", \"manifest_path\": ", mode == MODE_SGX ? "sgx" : "direct");
    json_write_string(stdout, manifest_path);
    fputs(", \"manifest\": ", stdout);
    json_write_value(stdout, manifest);
    fputs(", \"argv\": ", stdout);
    if (argv)
        write_json_strings(argv);
    else
        fputs("null", stdout);
    fputs(", \"env\": ", stdout);
    write_json_environment(build_environment(manifest));
    fputs(", \"entrypoint\": ", stdout);
    write_json_optional(entrypoint);
    fputs(", \"start_dir\": ", stdout);
    write_json_optional(start_dir);
    puts("}");
}

/* ---- main -------------------------------------------------------------- */

static void check_signature_exists(const char *app)
{
    char *sig_path = concat(app, ".sig");
    struct stat info;
    if (stat(sig_path, &info) != 0 || !S_ISREG(info.st_mode))
        fail(EXIT_CHECK, "%s: missing (SGX mode needs the signature from "
                         "gramine-sgx-sign)", sig_path);
}

int main(int argc, char **argv)
{
    fputs(BANNER "\n", stderr);
#ifdef STANDIN_NEEDS_PROTOBUF_C
    /* Gramine's real SGX loader needs libprotobuf-c at run time; so does
     * this stand-in's, so that tests see the same dependency. */
    if (!protobuf_c_version())
        return EXIT_CHECK;
#endif
    if (argc < 4 || strcmp(argv[2], "init") != 0)
        fail(EXIT_USAGE, "usage: %s LIBPAL init APP [ARGS...]", argc > 0 ? argv[0] : "loader");

    enum mode mode = strstr(argv[0], "/sgx/") ? MODE_SGX : MODE_DIRECT;
    const char *libpal = argv[1], *app = argv[3];
    if (access(libpal, R_OK) != 0)
        fail(EXIT_CHECK, "cannot read PAL %s: %s", libpal, strerror(errno));
    char *manifest_path = concat(app, mode == MODE_SGX ? ".manifest.sgx" : ".manifest");
    struct toml_value *manifest = load_manifest(manifest_path);

    const char *dump_flag = getenv("GSC_STANDIN_DUMP");
    if (dump_flag && strcmp(dump_flag, "1") == 0) {
        dump(mode, manifest_path, manifest, argv + 3);
        return 0;
    }

    if (mode == MODE_SGX)
        check_signature_exists(app);
    check_loader_entrypoint(manifest);
    struct string_list trusted; /* real paths; directories end in '/' */
    list_init(&trusted);
    check_trusted_files(manifest, mode, &trusted);
    char *app_path = trusted_app_path(manifest, &trusted);

    char **app_argv = select_argv(manifest, argv + 3);
    if (!app_argv)
        fail(EXIT_CHECK, "no argv source: the manifest has no loader.argv and "
                         "loader.insecure__use_cmdline_argv is not true");
    char **app_env = build_environment(manifest);
    switch_identity(manifest);
    enter_start_dir(manifest);

    fflush(stderr);
    execve(app_path, app_argv, app_env);
    fail(EXIT_CHECK, "libos.entrypoint: cannot execute %s: %s", app_path, strerror(errno));
}
