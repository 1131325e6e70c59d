/* Installed as sgx/libpal.so in the Gramine stand-in: the file that
 * signing measures. It is never run; it only has to look like a PAL to
 * the signer: an ELF shared object with an entry point and separate
 * read-only, executable and writable (partly zero-filled) segments. */

static const char standin_identity[] = "gramine stand-in sgx libpal (test double, not Gramine)";

/* Initialised data: a writable segment with file contents. */
unsigned long standin_calls = 3;

/* Zero-filled data: memory size larger than file size. */
unsigned char standin_workspace[2 * 4096 + 321];

static unsigned long mix(unsigned long value, unsigned long salt)
{
    return (value ^ salt) * 0x9e3779b97f4a7c15UL + (value >> 7);
}

void standin_pal_entry(void)
{
    unsigned long state = standin_calls;
    for (unsigned long i = 0; i < sizeof(standin_workspace); i += 61) {
        state = mix(state, (unsigned char)standin_identity[i % (sizeof(standin_identity) - 1)]);
        standin_workspace[i] = (unsigned char)state;
    }
    standin_calls = state;
}
