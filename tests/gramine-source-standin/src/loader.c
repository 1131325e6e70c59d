/* Gramine source stand-in (a test double, not Gramine): the SGX loader. It
 * starts nothing: it only says what it is. */
#include <stdio.h>

int main(void) {
    fputs("gramine source stand-in (a test double, not Gramine): this loader"
          " does not run applications\n", stderr);
    return 64;
}
