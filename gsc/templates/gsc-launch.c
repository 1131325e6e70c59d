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
#ifndef GSC_LOADER_LIBS
#error "GSC_LOADER_LIBS must name the directory of the SGX loader's libraries"
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

    /* The SGX loader is linked against the Gramine image's C library, which
     * the build bundled: start it through the bundled dynamic linker so it
     * runs whatever C library the application image has, or none. */
    int bundled = !direct && access(GSC_LOADER_LIBS "/ld.so", X_OK) == 0;
    char **args = calloc((size_t)argc + 7, sizeof(char *));
    if (!args) {
        fprintf(stderr, "gsc: out of memory\n");
        return 2;
    }
    int n = 0;
    if (bundled) {
        args[n++] = GSC_LOADER_LIBS "/ld.so";
        args[n++] = "--library-path";
        args[n++] = GSC_LOADER_LIBS;
    }
    args[n++] = (char *)loader;
    args[n++] = (char *)pal;
    args[n++] = "init";
    args[n++] = GSC_APP;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    execv(args[0], args);
    fprintf(stderr, "gsc: cannot start %s: %s\n", args[0], strerror(errno));
    return 2;
}
