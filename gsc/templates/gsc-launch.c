/* GSC's launcher: the entrypoint of a graminized image. It starts the
 * application under Gramine's SGX loader, or under the direct loader when
 * GRAMINE_MODE=direct (or the older GSC_PAL=Linux) asks for it and the image
 * was built with direct mode. It needs no shell in the image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GSC_PKGLIBDIR
#error "GSC_PKGLIBDIR must name Gramine's library directory"
#endif
#ifndef GSC_APP
#error "GSC_APP must name the application's manifest path without suffix"
#endif

static int wants_direct(void) {
    const char *mode = getenv("GRAMINE_MODE");
    const char *pal = getenv("GSC_PAL");
    if (mode && *mode) {
        if (strcmp(mode, "direct") == 0)
            return 1;
        if (strcmp(mode, "sgx") == 0)
            return 0;
        fprintf(stderr, "gsc: GRAMINE_MODE=%s is not 'sgx' or 'direct'\n", mode);
        exit(2);
    }
    return pal && strcmp(pal, "Linux") == 0;
}

static void require_file(const char *path, const char *hint) {
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "gsc: %s: %s; %s\n", path, strerror(errno), hint);
        exit(2);
    }
}

int main(int argc, char **argv) {
    int direct = wants_direct();
    if (direct && !GSC_DIRECT_ALLOWED) {
        fprintf(stderr, "gsc: this image was built without -L/--linux, so it cannot"
                        " run in Gramine's direct mode; unset GRAMINE_MODE and"
                        " GSC_PAL to run it under SGX\n");
        return 2;
    }
    const char *loader = direct ? GSC_PKGLIBDIR "/direct/loader"
                                : GSC_PKGLIBDIR "/sgx/loader";
    const char *pal = direct ? GSC_PKGLIBDIR "/direct/libpal.so"
                             : GSC_PKGLIBDIR "/sgx/libpal.so";
    if (direct)
        require_file(GSC_APP ".manifest", "the image is damaged; rebuild it");
    else
        require_file(GSC_APP ".manifest.sgx",
                     "the image is not signed yet: run 'gsc sign-image' first");

    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (!args) {
        fprintf(stderr, "gsc: out of memory\n");
        return 2;
    }
    args[0] = (char *)loader;
    args[1] = (char *)pal;
    args[2] = "init";
    args[3] = GSC_APP;
    for (int i = 1; i < argc; i++)
        args[3 + i] = argv[i];
    execv(loader, args);
    fprintf(stderr, "gsc: cannot start %s: %s\n", loader, strerror(errno));
    return 2;
}
