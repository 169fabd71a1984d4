# Sourced by scripts: promtool, from Debian's prometheus package, for the tests
# that lint /metrics and unit-test the example alert rules; installed when missing.

ensure_promtool() {
  if ! command -v promtool >/dev/null; then
    echo "promtool is not installed: installing Debian's prometheus package" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  MEDISLOT_TEST_PROMTOOL=$(command -v promtool)
  export MEDISLOT_TEST_PROMTOOL
}
