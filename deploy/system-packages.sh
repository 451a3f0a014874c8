#!/usr/bin/env bash
# The Debian packages the tests use, installed when missing (part of `make test`, so one command sets up a
# fresh machine):
# - prometheus: promtool lets tests/test_deploy.py also run `promtool check` and the alert-rule unit tests,
#   and tests/test_prometheus_alerts.py runs the server against a real worker; without it those tests skip
#   and the structural checks still run.
# - g++: builds the claims scoring kernel (setup.py).
# - valgrind: scripts/bench_instructions.py counts the embedded runtime's instructions under callgrind
#   (tests/test_bench.py runs it).
# - chromium and postgresql (+ a CJK font for the screenshots): the review console's browser tests (driven by
#   Playwright) and its store tests against a real PostgreSQL server (deploy/postgres/start.sh). Those are
#   never skipped: if the packages cannot be installed, this stops `make test` and says so.
set -euo pipefail

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "deploy/system-packages.sh: run as root (or install with apt-get yourself): $*" >&2
    return 1
  fi
  timeout 300 apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus || echo "deploy/system-packages.sh: could not install prometheus; its checks will be skipped"
  # the package starts a Prometheus server; the tests start their own
  (command -v systemctl >/dev/null && systemctl stop prometheus) >/dev/null 2>&1 || pkill -x prometheus || true
fi

if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install chromium postgresql fonts-wqy-zenhei \
    || { echo "deploy/system-packages.sh: could not install chromium and postgresql, which the console's tests need" >&2; exit 1; }
  # the package may start a cluster of its own; the tests start theirs
  (command -v systemctl >/dev/null && systemctl stop postgresql) >/dev/null 2>&1 || true
fi

# a C++ compiler builds the claims model's scoring kernel (setup.py); without one the install falls back to
# the slower Python path, and the test that holds CI to the compiled path fails
if ! command -v g++ >/dev/null 2>&1; then
  apt_install g++ || { echo "deploy/system-packages.sh: could not install g++, which builds the scoring kernel" >&2; exit 1; }
fi

if ! command -v callgrind_control >/dev/null 2>&1; then
  apt_install valgrind || { echo "deploy/system-packages.sh: could not install valgrind (scripts/bench_instructions.py)" >&2; exit 1; }
fi
