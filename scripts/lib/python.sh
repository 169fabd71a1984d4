# Sourced by scripts: a throwaway Python virtual environment with the
# independent clients the interoperability tests run (aiosmtpd as a real SMTP server, fhir.resources for FHIR R4
# validation, fhirpy as a FHIR client, icalendar to parse .ics, ical
# as the strict RFC 5545 parser); sets MEDISLOT_TEST_PYTHON.

TEST_VENV=${TEST_VENV:-target/test-venv}
TEST_PY_PACKAGES=("fhir.resources==6.1.0" "pydantic==1.10.27" "fhirpy==2.3.1" "requests==2.34.2" "icalendar==6.3.2" "ical==14.3.1" "PyYAML==6.0.2" "aiosmtpd==1.4.6")

ensure_test_python() {
  if ! "$TEST_VENV/bin/python" -c 'import fhir.resources, fhirpy, requests, icalendar, ical, yaml, aiosmtpd' 2>/dev/null; then
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
      echo "Python 3 with venv is missing: installing Debian's packages" >&2
      if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    rm -rf "$TEST_VENV"
    python3 -m venv "$TEST_VENV"
    "$TEST_VENV/bin/pip" install -q --disable-pip-version-check "${TEST_PY_PACKAGES[@]}"
  fi
  MEDISLOT_TEST_PYTHON="$(cd "$(dirname "$TEST_VENV")" && pwd)/$(basename "$TEST_VENV")/bin/python"
  export MEDISLOT_TEST_PYTHON
}
