#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through playwright-core (no browser download).
# Installs the chromium package when it is missing and this user may use apt; otherwise
# does nothing, and the browser tests skip with the reason.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/tmp/revise-chromium-install.log 2>&1 \
        || echo "chromium could not be installed (see /tmp/revise-chromium-install.log); browser tests will skip" >&2
else
    echo "chromium is missing and apt-get is not usable here; browser tests will skip" >&2
fi
exit 0
