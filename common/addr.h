/* SPDX-License-Identifier: Apache-2.0 */
/*
 * addr: socket addresses as text for messages, "192.0.2.1:514" or
 * "[2001:db8::1]:514", the same way in every module that names a peer.
 */
#ifndef LOGFERRY_ADDR_H
#define LOGFERRY_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * Writes sa (IPv4 or IPv6) into out. Returns 0, or -EAFNOSUPPORT for
 * another family or NULL, with "?" in out.
 */
int addr_text(const struct sockaddr *sa, char *out, size_t len);

#endif
