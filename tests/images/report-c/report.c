/* Print what this process was started with, as one JSON object on stdout:
 * the same report as report.py, for images that have no Python. The GSC
 * engine tests build it linked against musl, dynamically and statically.
 */
#include <stdio.h>
#include <unistd.h>

extern char **environ;

static void put_string(const char *text)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

static void put_environment(void)
{
    putchar('{');
    for (char **item = environ; *item; item++) {
        char *equals = *item;
        while (*equals && *equals != '=')
            equals++;
        if (item != environ)
            fputs(", ", stdout);
        char saved = *equals;
        *equals = '\0';
        put_string(*item);
        *equals = saved;
        fputs(": ", stdout);
        put_string(saved ? equals + 1 : "");
    }
    putchar('}');
}

int main(int argc, char **argv)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';

    fputs("{\"argv\": [", stdout);
    for (int i = 0; i < argc; i++) {
        if (i)
            fputs(", ", stdout);
        put_string(argv[i]);
    }
    fputs("], \"env\": ", stdout);
    put_environment();
    fputs(", \"cwd\": ", stdout);
    put_string(cwd);
    printf(", \"uid\": %u, \"gid\": %u}\n", (unsigned)getuid(), (unsigned)getgid());
    return fflush(stdout) == 0 ? 0 : 1;
}
