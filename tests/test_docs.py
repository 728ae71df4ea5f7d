#!/usr/bin/python3
"""The documentation holds together: every relative link and image in the repository's
Markdown files (README.md and the READMEs of src/, datasets/, datasets/configs/, tests/,
slurm/, scripts/bench/) names a file that exists, and every #anchor a heading of the file it
points into (GitHub's heading slugs); the README stays a page a newcomer reads (at most 300
lines) and lists every source file in its layout table. Controls: a broken link and a
missing anchor are caught.

    tests/test_docs.py TRAINER_BINARY SOURCE_DIR
"""
import glob
import os
import re
import sys
import tempfile

import checks

SRC = os.path.abspath(sys.argv[2])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path):
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        m = re.match(r"^#+ (.*)", line)
        if m and not fence:
            out.add(slug(m.group(1)))
    return out


def broken_links(path):
    """The links of one Markdown file that do not resolve, as 'target: why'."""
    bad, fence = [], False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                bad.append(f"{target}: no such file")
            elif anchor and dest.endswith(".md") and anchor not in headings(dest):
                bad.append(f"{target}: no heading #{anchor} there")
    return bad


docs = [p for p in glob.glob(os.path.join(SRC, "**", "*.md"), recursive=True)
        if not os.path.relpath(p, SRC).startswith("build")]
checks.check("the documentation files are found", len(docs) >= 7, str(len(docs)))
for doc in sorted(docs):
    bad = broken_links(doc)
    checks.check(f"{os.path.relpath(doc, SRC)}: every link resolves", not bad, "; ".join(bad))

readme = os.path.join(SRC, "README.md")
lines = open(readme, encoding="utf-8").read().split("\n")
checks.check(f"README.md is at most 300 lines ({len(lines)})", len(lines) <= 300)
text = "\n".join(lines)
missing = [os.path.basename(c) for c in glob.glob(os.path.join(SRC, "src", "*.c")) if f"`{os.path.basename(c)}`" not in text]
checks.check("the layout table names every source file", not missing, ", ".join(missing))

# controls: the checker sees a missing file and a missing anchor
with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
    f.write("# Probe\n\n[gone](no-such-file.md) [here](#probe) [nowhere](#no-such-heading)\n")
found = broken_links(f.name)
os.remove(f.name)
checks.check("control: a missing file and a missing anchor are caught, a good anchor is not",
             len(found) == 2 and "no such file" in found[0] and "no heading" in found[1], str(found))
checks.finish()
