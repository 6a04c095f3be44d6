#!/bin/sh
# Install the tools bench/run.py drives: CNCF Distribution, nginx and wrk (Debian packages).
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry nginx-light wrk
