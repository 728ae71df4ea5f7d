#!/bin/bash
# Regenerates the configuration reference in datasets/configs/README.md from `trainer help config`
# (the key table in src/config.c is the single source; a test fails when they differ).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/trainer ]] || scripts/build.sh
ref=$(build/trainer help config)
/usr/bin/python3 - "$ref" <<'PY'
import sys, re
ref = sys.argv[1].rstrip("\n") + "\n"
doc = "datasets/configs/README.md"
text = open(doc).read()
begin, end = "<!-- config-reference:begin -->\n", "<!-- config-reference:end -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:i] + "\n" + ref + "\n" + text[j:])
PY
echo "datasets/configs/README.md: configuration reference updated"
