/*
 * storage-pattern: dom0's check of the storage scenario's scratch disk
 * after the guest (apps/blkcheck) has written it and gone.
 *
 *   storage-pattern check FILE SEED OFFSET BYTES SIZE FILL
 *     FILE must be SIZE bytes: [OFFSET, OFFSET+BYTES) the pattern for
 *     SEED, every other byte FILL (what the host filled the image with).
 *     Prints "ok" or the first differing byte; exit 0 or 1 (2: usage/IO).
 *   storage-pattern selftest
 *     Checks the formula against known values; exit 0 or 1.
 *
 * The pattern (apps/blkcheck/src/pattern.rs; change both together): the
 * disk is little-endian 64-bit words, the word at byte offset 8*i being
 * splitmix64(seed * 2^32 + i) with wrapping arithmetic.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint8_t pattern_byte(uint64_t seed, uint64_t offset)
{
	uint64_t w = splitmix64((seed << 32) + offset / 8);
	return (uint8_t)(w >> (8 * (offset % 8)));
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	*out = strtoull(s, &end, 0);
	return (errno || *end) ? -1 : 0;
}

static int selftest(void)
{
	/* The reference generator seeded with 0: its first two outputs. */
	if (splitmix64(0) != 0xE220A8397B1DCDAFull ||
	    splitmix64(0x9E3779B97F4A7C15ull) != 0x6E789E6AA1B965F4ull ||
	    pattern_byte(0, 0) != 0xAF || pattern_byte(0, 7) != 0xE2) {
		fprintf(stderr, "storage-pattern: self-test failed\n");
		return 1;
	}
	puts("ok");
	return 0;
}

static int check(int argc, char **argv)
{
	uint64_t seed, offset, bytes, size, fill, at = 0;
	static uint8_t buf[1 << 16];
	size_t n;
	FILE *f;

	if (argc != 8 || parse_u64(argv[3], &seed) || parse_u64(argv[4], &offset) ||
	    parse_u64(argv[5], &bytes) || parse_u64(argv[6], &size) ||
	    parse_u64(argv[7], &fill) || fill > 255 || offset % 8 || bytes % 8 ||
	    offset > size || bytes > size - offset) {
		fprintf(stderr, "usage: storage-pattern check FILE SEED OFFSET BYTES SIZE FILL\n");
		return 2;
	}
	f = fopen(argv[2], "rb");
	if (!f) {
		fprintf(stderr, "storage-pattern: %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		for (size_t k = 0; k < n; k++, at++) {
			int in = at >= offset && at - offset < bytes;
			uint8_t want = in ? pattern_byte(seed, at) : (uint8_t)fill;
			if (buf[k] != want) {
				printf("byte %" PRIu64 " (%s) is 0x%02x, want 0x%02x\n", at,
				       in ? "in the pattern" : "outside the pattern", buf[k], want);
				fclose(f);
				return 1;
			}
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "storage-pattern: reading %s failed\n", argv[2]);
		fclose(f);
		return 2;
	}
	fclose(f);
	if (at != size) {
		printf("the file has %" PRIu64 " bytes, want %" PRIu64 "\n", at, size);
		return 1;
	}
	puts("ok");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "selftest"))
		return selftest();
	if (argc >= 2 && !strcmp(argv[1], "check"))
		return check(argc, argv);
	fprintf(stderr, "usage: storage-pattern check FILE SEED OFFSET BYTES SIZE FILL | selftest\n");
	return 2;
}
