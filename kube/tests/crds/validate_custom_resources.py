#!/usr/bin/env python3
"""Validates custom resources against the OpenAPI v3 schemas of their
CustomResourceDefinitions, strictly, with the `jsonschema` package (which
`kubernetes-validate` installs).

usage: validate_custom_resources.py CRD.yaml... -- RESOURCE.yaml...

Each resource is checked against the schema of its apiVersion's version in
the CRD of its group and kind. Strict: like `kubernetes-validate --strict`
(and the API server's strict field validation), an object schema with
`properties` and no `additionalProperties` admits no other field;
`x-kubernetes-preserve-unknown-fields` lifts that. Prints one line per
resource; exits 1 if any fails or has no CRD.
"""
import copy
import sys

import jsonschema
import yaml


def strict(schema):
    """A copy of an OpenAPI v3 (structural) schema that refuses unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def main(argv):
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    schemas = {}
    for path in argv[:split]:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(f"{group}/{version['name']}", kind)] = strict(schema)
    failed = False
    for path in argv[split + 1:]:
        with open(path) as f:
            for resource in yaml.safe_load_all(f):
                if not resource:
                    continue
                key = (resource.get("apiVersion"), resource.get("kind"))
                name = resource.get("metadata", {}).get("name")
                schema = schemas.get(key)
                if schema is None:
                    print(f"ERROR {path}: no CustomResourceDefinition for {key[1]} {key[0]}")
                    failed = True
                    continue
                validator = jsonschema.Draft4Validator(schema)
                errors = sorted(validator.iter_errors(resource), key=lambda e: list(e.path))
                if errors:
                    failed = True
                    for e in errors:
                        where = ".".join(str(p) for p in e.path) or "(root)"
                        print(f"ERROR {path}: {key[1]} {name}: {where}: {e.message}")
                else:
                    print(f"INFO {path} passed for {key[1]} {name} ({key[0]})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
