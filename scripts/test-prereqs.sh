#!/usr/bin/env bash
# Makes sure what the test suite talks to is there: Debian's chromium, PostgreSQL and Redis
# on their local ports, redis-sentinel (the Sentinel tests start their own) and nginx (the gate's
# end-to-end test starts its own on a free port; the system service is never started). Installs or starts what is missing when running as root (CI and the
# project's machines); otherwise says exactly what is missing.
set -euo pipefail

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "test prerequisites: $1 (run as root to have it set up automatically)" >&2
    exit 1
  fi
}

if [ ! -x /usr/bin/chromium ]; then
  need_root "Debian's chromium is not installed at /usr/bin/chromium"
  echo "installing Debian's chromium ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v redis-sentinel >/dev/null; then
  need_root "Debian's redis-sentinel is not installed"
  echo "installing Debian's redis-sentinel ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-sentinel >/dev/null
fi

if [ ! -x /usr/sbin/nginx ]; then
  need_root "Debian's nginx is not installed at /usr/sbin/nginx"
  echo "installing Debian's nginx ..."
  apt-get update -qq
  # Only the binary is wanted: policy-rc.d keeps the package from starting the system service.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  need_root "PostgreSQL is not listening on 127.0.0.1:5432"
  echo "starting PostgreSQL ..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi

if ! port_open 6379; then
  need_root "Redis is not listening on 127.0.0.1:6379"
  echo "starting Redis ..."
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

for i in $(seq 1 30); do
  if port_open 5432 && port_open 6379; then exit 0; fi
  sleep 1
done
echo "test prerequisites: PostgreSQL or Redis did not come up" >&2
exit 1
