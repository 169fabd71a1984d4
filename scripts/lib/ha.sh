# Sourced by scripts: makes Patroni, etcd and HAProxy available (Debian's packages),
# for scripts/ha-cluster and the high-availability tests.

ha_tools_present() {
  command -v patroni >/dev/null && command -v patronictl >/dev/null && command -v etcd >/dev/null \
    && command -v haproxy >/dev/null && command -v curl >/dev/null
}

ensure_ha_tools() {
  ha_tools_present && return 0
  echo "Patroni, etcd or HAProxy is missing: installing Debian's packages" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  # Debian's packages start nothing here: the scripts run every process themselves.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq patroni etcd-server etcd-client haproxy curl >/dev/null
  ha_tools_present || { echo "could not install patroni, etcd-server and haproxy" >&2; return 1; }
}
