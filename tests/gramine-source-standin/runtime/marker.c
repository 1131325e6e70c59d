/* Gramine source stand-in (a test double, not Gramine): the runtime marker. */
int standin_marker_value(void);

int gsc_standin_runtime_marker(void) {
    return standin_marker_value();
}
