/* Gramine source stand-in (a test double, not Gramine): libsysdb.so. */
const char gsc_standin_libos[] = "gramine source stand-in: not a library OS";

const char* gsc_standin_libos_name(void) {
    return gsc_standin_libos;
}
