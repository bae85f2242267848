"""Real logs for the retrieval-quality bench: this machine's package logs, with questions labelled
by construction.

Debian-family systems keep dpkg.log (one line per package action), apt's history.log (multi-line
records; an Install: line can be several kilobytes) and alternatives.log. They are real, written by
real tools, and every machine of that family has them, though with its own contents: the figures
they give are for the machine the bench ran on. Questions are made from sampled lines (seeded):

  dpkg          "when was PKG upgraded to VERSION?" / "when was PKG VERSION installed?"; any line
                about that package at that version (the action, its status steps) answers.
  apt history   "which command installed PKG?"; the record (Start-Date .. End-Date) whose Install:
                line names the package answers.
  alternatives  "what does the GROUP link point to?"; the "link group GROUP updated to point to"
                line, or the --install line that set that target, answers.

Nothing is copied when the files are missing (other systems): the bench then runs without them.
"""

from __future__ import annotations

import os
import random
import re
import shutil

SOURCES = {"dpkg.log": "/var/log/dpkg.log", "apt-history.log": "/var/log/apt/history.log",
           "alternatives.log": "/var/log/alternatives.log"}
_DPKG = re.compile(r"^\S+ \S+ (install|upgrade) (\S+?):\S+ \S+ (\S+)$")
_ALT = re.compile(r"link group (\S+) updated to point to (\S+)")


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().split("\n")


def add(corpus_dir: str, n_dpkg: int = 12, n_apt: int = 6, n_alt: int = 4, seed: int = 5) -> list[dict]:
    """Copy the host's package logs under corpus_dir/real and return labelled questions for them
    (relative paths, 1-based line ranges in "accept")."""
    have = {name: src for name, src in SOURCES.items() if os.path.isfile(src) and os.access(src, os.R_OK)}
    if "dpkg.log" not in have:
        return []
    real = os.path.join(corpus_dir, "real")
    os.makedirs(real, exist_ok=True)
    for name, src in have.items():
        shutil.copyfile(src, os.path.join(real, name))
    rng = random.Random(seed)
    out: list[dict] = []

    lines = _lines(os.path.join(real, "dpkg.log"))
    actions = set()
    for line in lines:
        m = _DPKG.match(line)
        if m:
            actions.add((m.group(1), m.group(2), m.group(3)))
    for verb, pkg, ver in rng.sample(sorted(actions), min(n_dpkg, len(actions))):
        q = f"when was {pkg} upgraded to {ver}?" if verb == "upgrade" else f"when was {pkg} {ver} installed?"
        # The action line and the "status ... installed" lines of that package and version all
        # answer "when" (dpkg logs each step of one install within the same second or two).
        ok = [i for i, line in enumerate(lines, 1) if f" {pkg}:" in line and line.rstrip().endswith(f" {ver}")]
        out.append({"question": q, "kind": "real", "path": "real/dpkg.log", "accept": [[i, i] for i in ok]})

    if "apt-history.log" in have:
        lines = _lines(os.path.join(real, "apt-history.log"))
        records, start = [], None
        for i, line in enumerate(lines, 1):
            if line.startswith("Start-Date:"):
                start = i
            elif line.startswith("End-Date:") and start is not None:
                records.append((start, i))
                start = None
        named = []
        for a, b in records:
            install = next((lines[i - 1] for i in range(a, b + 1) if lines[i - 1].startswith("Install: ")), "")
            for pkg in re.findall(r"(?:^Install: |, )([a-z0-9][a-z0-9.+-]+):", install):
                named.append((pkg, a, b))
        for pkg, a, b in rng.sample(named, min(n_apt, len(named))):
            out.append({"question": f"which command installed {pkg}?", "kind": "real", "path": "real/apt-history.log",
                        "accept": [[a, b]]})

    if "alternatives.log" in have:
        lines = _lines(os.path.join(real, "alternatives.log"))
        groups: dict[str, str] = {}
        for line in lines:
            m = _ALT.search(line)
            if m:
                groups[m.group(1)] = m.group(2)
        for group in rng.sample(sorted(groups), min(n_alt, len(groups))):
            # The "updated to point to" line, or the --install line that set that target.
            ok = [i for i, line in enumerate(lines, 1) if groups[group] in line and
                  (f"link group {group} " in line or f" {group} {groups[group]} " in line)]
            out.append({"question": f"what does the {group} link point to?", "kind": "real",
                        "path": "real/alternatives.log", "accept": [[i, i] for i in ok]})
    for k, q in enumerate(out):
        q["id"] = f"real-{k + 1}"
        q["line_start"], q["line_end"] = q["accept"][0]
    return out
