/* The subproject of the Gramine source stand-in (a test double, not Gramine). */
int standin_marker_value(void) {
    return 42;
}
