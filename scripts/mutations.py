#!/usr/bin/env python3
"""tests/mutations.txt, the one-line mutations the suite must kill (scripts/mutate.sh applies them).

  mutations.py list FILE        one line per entry: name<TAB>file<TAB>from<TAB>to (for mutate.sh)
  mutations.py check FILE ROOT  every entry's `from` occurs exactly once in ROOT/file: an entry whose
                                text has moved would be reported "not applied" only when someone runs
                                mutate.sh (two had silently gone stale); ctest runs this check.
Entries are blocks separated by blank lines, each with name:, file:, from:, to: lines (# comments).
"""
import os
import sys


def parse(path):
    entries = []
    for block in open(path).read().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ": " not in line:
                continue
            key, value = line.split(": ", 1)
            fields[key] = value
        if fields:
            missing = [k for k in ("name", "file", "from", "to") if k not in fields]
            if missing:
                sys.exit(f"{path}: the entry {fields.get('name', block[:60])!r} lacks {', '.join(missing)}")
            entries.append(fields)
    return entries


def main(argv):
    if len(argv) < 3 or argv[1] not in ("list", "check") or (argv[1] == "check" and len(argv) != 4):
        sys.exit(__doc__)
    entries = parse(argv[2])
    if argv[1] == "list":
        for e in entries:
            print("\t".join([e["name"], e["file"], e["from"], e["to"]]))
        return 0
    bad = 0
    for e in entries:
        path = os.path.join(argv[3], e["file"])
        count = open(path).read().count(e["from"]) if os.path.exists(path) else -1
        if count != 1:
            where = "no such file" if count < 0 else f"its text occurs {count} times"
            print(f"{argv[2]}: '{e['name']}' ({e['file']}): {where}, not once")
            bad += 1
    print(f"mutations: {len(entries)} entries, {bad} that would not apply")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
