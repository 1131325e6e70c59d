/* Gramine source stand-in (a test double, not Gramine): libpal.so. */
#ifndef STANDIN_PAL
#error "STANDIN_PAL must name the PAL: sgx or direct"
#endif

const char gsc_standin_pal[] = "gramine source stand-in PAL: " STANDIN_PAL;

const char* gsc_standin_pal_name(void) {
    return gsc_standin_pal;
}
