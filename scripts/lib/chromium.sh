# Sourced by scripts: Debian's Chromium and its WebDriver (chromedriver) for the
# browser tests, installed when missing.

ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "Chromium is not installed: installing Debian's chromium and chromium-driver" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  MEDISLOT_TEST_CHROMIUM=$(command -v chromium)
  export MEDISLOT_TEST_CHROMIUM
}
