/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backfill: `logferry-agent --backfill`, the operator's "reprocess history":
 * reads every file the configuration's file sources match, plain and
 * compressed, once, into the spool, and exits when all of it is committed.
 * The running agent ships the spool later.
 */
#ifndef LOGFERRY_BACKFILL_H
#define LOGFERRY_BACKFILL_H

/*
 * The daemon command (struct daemon_command): config is the loaded struct
 * agent_config. Files resume from their stored positions (archives read to
 * their end are skipped), files without one start at their start whatever
 * start_at says, and plain files are read to the end they have now, not
 * followed. Returns 0 once every matched file is read and the spool
 * committed, 1 on a failure (logged), also when a file could not be opened
 * or read (what was read stays in the spool; a run again goes on).
 */
int backfill_command(const char *config_file, void *config);

#endif
