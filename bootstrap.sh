#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Generates ./configure from configure.ac and Makefile.am (needs autoconf,
# automake and pkg-config: packaging/install-deps.sh installs them).
set -eu
cd "$(dirname "$0")"
mkdir -p m4
autoreconf --install --force
