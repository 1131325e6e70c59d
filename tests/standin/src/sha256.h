/* SHA-256 (FIPS 180-4) for the Gramine stand-in loader. */
#ifndef STANDIN_SHA256_H
#define STANDIN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (2 * SHA256_DIGEST_SIZE + 1)

struct sha256 {
    uint32_t state[8];
    uint8_t block[64];
    size_t block_used;
    uint64_t total_bytes;
};

void sha256_init(struct sha256 *ctx);
void sha256_update(struct sha256 *ctx, const void *data, size_t size);
void sha256_final(struct sha256 *ctx, uint8_t digest[SHA256_DIGEST_SIZE]);

/* Hash a whole file into lowercase hex; returns 0, or -1 with errno set. */
int sha256_file_hex(const char *path, char hex[SHA256_HEX_SIZE]);

#endif
