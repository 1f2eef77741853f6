/* SPDX-License-Identifier: Apache-2.0 */
/* tz: UTC offsets of a time zone from TZif files and POSIX TZ rules (see tz.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/civil.h"
#include "common/tz.h"

/* Larger TZif files are not zones (the largest tzdata file is under 4 KiB "slim", 100 KiB "fat"). */
#define TZ_FILE_MAX (1024 * 1024)
/* Transitions or types beyond this: not a real zone file. */
#define TZ_COUNT_MAX 100000
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

/* When DST starts or ends in a POSIX rule: Jn, n or Mm.w.d, at secs local time. */
struct tz_rule {
	char kind;                   /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' */
	int m, w, d;                 /* 'M': month, week (5: last), weekday (0: Sunday); else d */
	int32_t secs;                /* time of day of the change (may be < 0 or > 24 h) */
};

struct tz {
	char *name;
	int64_t *trans;              /* transition times, ascending */
	uint8_t *idx;                /* the type in force from each transition */
	int32_t *utoff;              /* UTC offset of each type */
	size_t ntrans, ntypes;
	bool has_rule;               /* rule applies after the last transition (or always) */
	bool has_dst;
	int32_t std_off, dst_off;    /* the rule's offsets, east of UTC positive */
	struct tz_rule start, end;
};

/* ------------------------------------------------------------ POSIX rules */

static bool
tz_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
tz_isalpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A zone abbreviation: 3 or more letters, or <...> (as "<+03>"). */
static const char *
tz_posix_abbr(const char *p)
{
	const char *s = p;

	if (*p == '<') {
		const char *e = strchr(p, '>');

		return e != NULL && e - p >= 4 ? e + 1 : NULL;
	}
	while (tz_isalpha(*p))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* A number of at most n digits, at most max. */
static const char *
tz_posix_num(const char *p, int n, long max, long *v)
{
	long x = 0;
	int i;

	for (i = 0; i < n && tz_isdigit(p[i]); i++)
		x = x * 10 + (p[i] - '0');
	if (i == 0 || x > max)
		return NULL;
	*v = x;
	return p + i;
}

/* [+-]hh[:mm[:ss]], hours up to maxh. */
static const char *
tz_posix_hms(const char *p, long maxh, int32_t *secs)
{
	long sign = 1, h, m = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if ((p = tz_posix_num(p, 3, maxh, &h)) == NULL)
		return NULL;
	if (*p == ':' && (p = tz_posix_num(p + 1, 2, 59, &m)) != NULL && *p == ':')
		p = tz_posix_num(p + 1, 2, 59, &s);
	if (p == NULL)
		return NULL;
	*secs = (int32_t)(sign * (h * 3600 + m * 60 + s));
	return p;
}

/* Jn, n or Mm.w.d, then [/time] (RFC 8536 allows -167..167 hours). */
static const char *
tz_posix_date(const char *p, struct tz_rule *r)
{
	long m, w, d;

	if (*p == 'J') {
		if ((p = tz_posix_num(p + 1, 3, 365, &d)) == NULL || d < 1)
			return NULL;
		r->kind = 'J';
		r->d = (int)d;
	} else if (*p == 'M') {
		if ((p = tz_posix_num(p + 1, 2, 12, &m)) == NULL || m < 1 || *p != '.' ||
		    (p = tz_posix_num(p + 1, 1, 5, &w)) == NULL || w < 1 || *p != '.' ||
		    (p = tz_posix_num(p + 1, 1, 6, &d)) == NULL)
			return NULL;
		r->kind = 'M';
		r->m = (int)m;
		r->w = (int)w;
		r->d = (int)d;
	} else {
		if ((p = tz_posix_num(p, 3, 365, &d)) == NULL)
			return NULL;
		r->kind = 'D';
		r->d = (int)d;
	}
	r->secs = 2 * 3600;
	if (*p == '/')
		p = tz_posix_hms(p + 1, 167, &r->secs);
	return p;
}

/* std offset [dst [offset] [,start[/time],end[/time]]], e.g. "EST5EDT,M3.2.0,M11.1.0". */
static int
tz_posix(struct tz *z, const char *s)
{
	const char *p = s;
	int32_t off;

	if ((p = tz_posix_abbr(p)) == NULL || (p = tz_posix_hms(p, 24, &off)) == NULL)
		return -EINVAL;
	/* POSIX counts hours west of Greenwich. */
	z->std_off = -off;
	z->dst_off = z->std_off;
	z->has_rule = true;
	z->has_dst = false;
	if (*p == '\0')
		return 0;
	if ((p = tz_posix_abbr(p)) == NULL)
		return -EINVAL;
	z->has_dst = true;
	z->dst_off = z->std_off + 3600;
	if (*p != '\0' && *p != ',') {
		if ((p = tz_posix_hms(p, 24, &off)) == NULL)
			return -EINVAL;
		z->dst_off = -off;
	}
	if (*p == '\0') {
		/* No rule: the US one, as glibc assumes. */
		z->start = (struct tz_rule){ 'M', 3, 2, 0, 2 * 3600 };
		z->end = (struct tz_rule){ 'M', 11, 1, 0, 2 * 3600 };
		return 0;
	}
	if (*p != ',' || (p = tz_posix_date(p + 1, &z->start)) == NULL || *p != ',' ||
	    (p = tz_posix_date(p + 1, &z->end)) == NULL || *p != '\0')
		return -EINVAL;
	return 0;
}

static int64_t
tz_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The day (since 1970-01-01) a rule names in year. */
static int64_t
tz_rule_day(const struct tz_rule *r, int64_t year)
{
	int64_t d0, day;
	int wd;

	switch (r->kind) {
	case 'J':
		/* Feb 29 is never counted: March 1st is always J60. */
		return civil_days(year, 1, 1) + r->d - 1 + (civil_is_leap(year) && r->d >= 60);
	case 'D':
		return civil_days(year, 1, 1) + r->d;
	default:
		d0 = civil_days(year, r->m, 1);
		/* 1970-01-01 was a Thursday (4). */
		wd = (int)(((d0 % 7) + 11) % 7);
		day = d0 + (r->d - wd + 7) % 7 + 7 * (r->w - 1);
		while (day >= d0 + civil_days_in_month(year, r->m))
			day -= 7;
		return day;
	}
}

static int32_t
tz_rule_offset(const struct tz *z, int64_t t)
{
	int64_t year, start, end;
	bool dst;

	if (!z->has_dst)
		return z->std_off;
	year = civil_year_of_day(tz_floor_div(t + z->std_off, 86400));
	/* Both changes happen at local time: standard time before DST, DST before its end. */
	start = tz_rule_day(&z->start, year) * 86400 + z->start.secs - z->std_off;
	end = tz_rule_day(&z->end, year) * 86400 + z->end.secs - z->dst_off;
	if (start < end)
		dst = t >= start && t < end;
	else
		dst = !(t >= end && t < start);   /* southern hemisphere: DST spans new year */
	return dst ? z->dst_off : z->std_off;
}

/* ------------------------------------------------------------ TZif files */

static uint32_t
tz_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
tz_be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)tz_be32(p) << 32 | tz_be32(p + 4));
}

/* RFC 8536: a header, v1 data, and from version 2 a header, 64-bit data and a footer rule. */
static int
tz_tzif(struct tz *z, const uint8_t *b, size_t n)
{
	size_t pos = 0, tsize = 4, block, timecnt, typecnt, charcnt, leapcnt, isstdcnt, isutcnt;
	bool v2;

	for (int pass = 0;; pass++) {
		if (n - pos < 44 || memcmp(b + pos, "TZif", 4) != 0)
			return -EINVAL;
		v2 = b[pos + 4] >= '2';
		isutcnt = tz_be32(b + pos + 20);
		isstdcnt = tz_be32(b + pos + 24);
		leapcnt = tz_be32(b + pos + 28);
		timecnt = tz_be32(b + pos + 32);
		typecnt = tz_be32(b + pos + 36);
		charcnt = tz_be32(b + pos + 40);
		if (timecnt > TZ_COUNT_MAX || typecnt > 256 || leapcnt > TZ_COUNT_MAX ||
		    charcnt > TZ_COUNT_MAX || isstdcnt > 256 || isutcnt > 256 || typecnt == 0)
			return -EINVAL;
		block = timecnt * tsize + timecnt + typecnt * 6 + charcnt + leapcnt * (tsize + 4) +
		    isstdcnt + isutcnt;
		pos += 44;
		if (n - pos < block)
			return -EINVAL;
		/* Version 2 and later repeat everything with 64-bit times: read those. */
		if (pass == 0 && v2) {
			pos += block;
			tsize = 8;
			continue;
		}
		break;
	}
	if ((z->trans = calloc(timecnt + 1, sizeof(*z->trans))) == NULL ||
	    (z->idx = calloc(timecnt + 1, 1)) == NULL ||
	    (z->utoff = calloc(typecnt, sizeof(*z->utoff))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < timecnt; i++) {
		const uint8_t *p = b + pos + i * tsize;

		z->trans[i] = tsize == 8 ? tz_be64(p) : (int64_t)(int32_t)tz_be32(p);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			return -EINVAL;
	}
	pos += timecnt * tsize;
	for (size_t i = 0; i < timecnt; i++) {
		if (b[pos + i] >= typecnt)
			return -EINVAL;
		z->idx[i] = b[pos + i];
	}
	pos += timecnt;
	for (size_t i = 0; i < typecnt; i++)
		z->utoff[i] = (int32_t)tz_be32(b + pos + i * 6);
	z->ntrans = timecnt;
	z->ntypes = typecnt;
	pos += block - timecnt * tsize - timecnt;
	/* The footer: "\n" rule "\n", for the times after the last transition. */
	if (tsize == 8 && pos < n && b[pos] == '\n') {
		const uint8_t *e = memchr(b + pos + 1, '\n', n - pos - 1);
		char rule[256];
		size_t len;

		if (e == NULL)
			return -EINVAL;
		len = (size_t)(e - (b + pos + 1));
		if (len >= sizeof(rule))
			return -EINVAL;
		memcpy(rule, b + pos + 1, len);
		rule[len] = '\0';
		if (len > 0 && tz_posix(z, rule) != 0)
			return -EINVAL;
	}
	return 0;
}

static int
tz_file(struct tz *z, const char *path)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t got = 0;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -ENOENT : -EINVAL;
		goto out;
	}
	if (st.st_size > TZ_FILE_MAX) {
		r = -EINVAL;
		goto out;
	}
	if ((b = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EINVAL;
			goto out;
		}
		got += (size_t)n;
	}
	r = tz_tzif(z, b, got);
out:
	free(b);
	close(fd);
	return r;
}

/* ---------------------------------------------------------------- API */

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->idx);
	free(z->utoff);
	free(z);
}

/* name: an IANA name, a path or a POSIX rule (see tz_load). */
static int
tz_named(struct tz *z, const char *name)
{
	const char *dir = getenv("TZDIR");
	char path[PATH_MAX];
	int r;

	if (name[0] == ':')
		name++;
	if (strstr(name, "..") != NULL)
		return -EINVAL;
	if (name[0] == '/')
		return tz_file(z, name);
	if (dir == NULL || dir[0] == '\0')
		dir = TZ_DEFAULT_DIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	r = tz_file(z, path);
	if (r != -ENOENT && r != -ENOTDIR)
		return r;
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
		return 0;   /* no tzdata installed: UTC is still UTC */
	return tz_posix(z, name) == 0 ? 0 : -ENOENT;
}

int
tz_load(const char *name, struct tz **out)
{
	const char *env = getenv("TZ"), *shown = name;
	struct tz *z;
	int r = 0;

	if ((z = calloc(1, sizeof(*z))) == NULL)
		return -ENOMEM;
	if (name != NULL) {
		r = tz_named(z, name);
	} else if (env == NULL) {
		shown = "/etc/localtime";
		r = tz_file(z, shown);
		if (r == -ENOENT) {
			shown = "UTC";
			r = 0;
		}
	} else if (env[0] == '\0') {
		shown = "UTC";
	} else {
		shown = env;
		r = tz_named(z, env);
	}
	if (r == 0 && (z->name = strdup(shown)) == NULL)
		r = -ENOMEM;
	if (r != 0) {
		tz_free(z);
		return r;
	}
	*out = z;
	return 0;
}

const char *
tz_name(const struct tz *z)
{
	return z->name;
}

int32_t
tz_offset(const struct tz *z, int64_t t)
{
	size_t lo = 0, hi;

	if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		if (z->has_rule)
			return tz_rule_offset(z, t);
		if (z->ntrans == 0)
			return z->ntypes != 0 ? z->utoff[0] : 0;
		return z->utoff[z->idx[z->ntrans - 1]];
	}
	/* RFC 8536: before the first transition, the first type. */
	if (t < z->trans[0])
		return z->utoff[0];
	/* The last transition at or before t: trans[lo] <= t < trans[hi]. */
	hi = z->ntrans - 1;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->utoff[z->idx[lo]];
}

int64_t
tz_utc(const struct tz *z, int64_t local, int64_t near)
{
	/* Offsets change at most once within a day around any time in real zones. */
	int32_t oa = tz_offset(z, local - 86400), ob = tz_offset(z, local + 86400);
	int64_t ta = local - oa, tb = local - ob;
	bool va = tz_offset(z, ta) == oa, vb = tz_offset(z, tb) == ob;

	if (va && vb && ta != tb)
		return (ta > near ? ta - near : near - ta) <= (tb > near ? tb - near : near - tb) ?
		    ta : tb;
	if (va)
		return ta;
	if (vb)
		return tb;
	return ta;   /* skipped by the change: the offset before it */
}
