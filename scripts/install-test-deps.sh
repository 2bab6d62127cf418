#!/usr/bin/env bash
# System programs the test suite uses: Debian's chromium (the HTML report is checked in a
# real headless browser) and graphviz (block drawings with `dot`; a pure-Python fallback is
# tested too). Installs only what is missing; needs root (or sudo) and Debian's apt.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
