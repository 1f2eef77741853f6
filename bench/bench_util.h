/* SPDX-License-Identifier: Apache-2.0 */
/* bench_util: what every benchmark measures with. */
#ifndef LOGFERRY_BENCH_UTIL_H
#define LOGFERRY_BENCH_UTIL_H

/* CPU seconds (user + system) this process has used so far. */
double bench_cpu_seconds(void);

/* Seconds on the monotonic clock. */
double bench_wall_seconds(void);

#endif
