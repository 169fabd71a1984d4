# Sourced by scripts: throwaway Python virtual environments with the independent
# tools the interoperability tests run:
# - target/test-venv (MEDISLOT_TEST_PYTHON): aiosmtpd as a real SMTP server,
#   fhir.resources for FHIR R4 validation, fhirpy as a FHIR client, icalendar to
#   parse .ics, PyYAML;
# - target/test-venv-ical (MEDISLOT_TEST_ICAL_PYTHON): ical, the strict RFC 5545
#   parser. It needs pydantic 2 where fhir.resources 6 needs pydantic 1, so it
#   lives apart;
# - target/test-venv-conformance (MEDISLOT_TEST_SCHEMATHESIS, MEDISLOT_TEST_CONFORMANCE_PYTHON):
#   schemathesis, property-based testing against the OpenAPI document, and
#   jsonschema-rs, which also checks FHIR JSON against HL7's fhir.schema.json.

TEST_VENV=${TEST_VENV:-target/test-venv}
TEST_PY_PACKAGES=("fhir.resources==6.1.0" "pydantic==1.10.27" "fhirpy==2.3.1" "requests==2.34.2" "icalendar==6.3.2" "PyYAML==6.0.2" "aiosmtpd==1.4.6")
TEST_ICAL_VENV=${TEST_ICAL_VENV:-target/test-venv-ical}
TEST_ICAL_PACKAGES=("ical==14.3.1")
TEST_CONFORMANCE_VENV=${TEST_CONFORMANCE_VENV:-target/test-venv-conformance}
TEST_CONFORMANCE_PACKAGES=("schemathesis==4.32.5" "hypothesis==6.140.0" "jsonschema-rs==0.60.3")

# make_venv DIR IMPORTS PACKAGE...: DIR holds a virtual environment that can
# import IMPORTS, made afresh with PACKAGE... when it cannot.
make_venv() {
  local dir=$1 imports=$2
  shift 2
  if ! "$dir/bin/python" -c "import $imports" 2>/dev/null; then
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
      echo "Python 3 with venv is missing: installing Debian's packages" >&2
      if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
  fi
}

# The absolute path of DIR's interpreter.
venv_python() {
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")/bin/python"
}

ensure_test_python() {
  make_venv "$TEST_VENV" 'fhir.resources, fhirpy, requests, icalendar, yaml, aiosmtpd' "${TEST_PY_PACKAGES[@]}"
  make_venv "$TEST_ICAL_VENV" 'ical' "${TEST_ICAL_PACKAGES[@]}"
  make_venv "$TEST_CONFORMANCE_VENV" 'schemathesis, jsonschema_rs' "${TEST_CONFORMANCE_PACKAGES[@]}"
  MEDISLOT_TEST_PYTHON=$(venv_python "$TEST_VENV")
  MEDISLOT_TEST_ICAL_PYTHON=$(venv_python "$TEST_ICAL_VENV")
  MEDISLOT_TEST_CONFORMANCE_PYTHON=$(venv_python "$TEST_CONFORMANCE_VENV")
  MEDISLOT_TEST_SCHEMATHESIS="$(dirname "$MEDISLOT_TEST_CONFORMANCE_PYTHON")/schemathesis"
  export MEDISLOT_TEST_PYTHON MEDISLOT_TEST_ICAL_PYTHON MEDISLOT_TEST_CONFORMANCE_PYTHON MEDISLOT_TEST_SCHEMATHESIS
}
