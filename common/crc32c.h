/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crc32c: CRC-32C (Castagnoli, iSCSI's). The spool's checksum of a stored
 * zstd frame: x86-64's SSE4.2 and ARMv8's CRC instructions compute it 8
 * bytes at a time, about 8 times fewer instructions than zlib's crc32
 * (docs/performance.md); a table does it elsewhere.
 */
#ifndef LOGFERRY_CRC32C_H
#define LOGFERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of p[0, len) ("123456789" gives 0xE3069283). */
uint32_t crc32c(const uint8_t *p, size_t len);
/* The same by the table alone: what crc32c does on a CPU without the instruction. */
uint32_t crc32c_portable(const uint8_t *p, size_t len);

#endif
