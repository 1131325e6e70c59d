/* Installed in the stand-in's runtime/glibc/ directory in place of
 * Gramine's patched glibc. Its name matches no system library, so putting
 * the directory on LD_LIBRARY_PATH changes nothing for native programs. */

const char standin_runtime_marker[] = "gramine stand-in runtime (test double, not Gramine)";
